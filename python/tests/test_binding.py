"""The ppuccl binding against numpy/torch references: every collective,
datatype and reduction op, with 2-4 forked ranks."""
import unittest

import numpy as np

import ppuccl
from _ranks import run_ranks
from refdata import NP_DTYPES, OPS, pattern, reference, values


def check(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
        bad = np.flatnonzero(got.ravel() != want.ravel())[:5] if got.shape == want.shape else []
        raise AssertionError(f"{what}: wrong result ({got.dtype}{got.shape} vs "
                             f"{want.dtype}{want.shape}); first bad indices {list(bad)}: "
                             f"got {got.ravel()[bad]} want {want.ravel()[bad]}")


def _reductions(rank, n, uid, counts):
    comm = ppuccl.Communicator(n, uid, rank)
    for dt in NP_DTYPES:
        for op in OPS:
            for count in counts:
                what = f"{dt} {op} count {count}"
                ref = reference(op, n, count, dt)
                a = values(op, rank, n, count, dt)
                out = np.zeros_like(a)
                check(comm.allreduce(a, out, op=op), ref, "allreduce " + what)
                comm.allreduce(a, op=op)  # in place
                check(a, ref, "allreduce in place " + what)
                root = count % n
                b = values(op, rank, n, count, dt)
                r = np.zeros_like(b)
                comm.reduce(b, r, op=op, root=root)
                if rank == root:
                    check(r, ref, f"reduce root {root} " + what)
                big = values(op, rank, n, count * n, dt)
                rs = np.zeros(count, dt)
                want = reference(op, n, count * n, dt)[count * rank:count * (rank + 1)]
                check(comm.reduce_scatter(big, rs, op=op), want, "reduce_scatter " + what)
    comm.destroy()


def _movement(rank, n, uid, counts):
    comm = ppuccl.Communicator(n, uid, rank)
    assert (comm.rank, comm.size) == (rank, n)
    for dt in NP_DTYPES:
        for count in counts:
            what = f"{dt} count {count}"
            for root in range(n):
                b = pattern(rank, count, dt) if rank == root else np.zeros(count, dt)
                check(comm.broadcast(b, root=root), pattern(root, count, dt),
                      f"broadcast root {root} {what}")
            rb = np.zeros(count, dt)
            comm.broadcast(pattern(0, count, dt) if rank == 0 else None, rb, root=0)
            check(rb, pattern(0, count, dt), "broadcast out of place " + what)
            ag = np.zeros(count * n, dt)
            comm.allgather(pattern(rank, count, dt), ag)
            check(ag, np.concatenate([pattern(r, count, dt) for r in range(n)]),
                  "allgather " + what)
            # all-to-all: block p from rank r holds pattern(r, salt=p)
            send = np.concatenate([pattern(rank, count, dt, p) for p in range(n)])
            recv = np.zeros_like(send)
            comm.alltoall(send, recv)
            check(recv, np.concatenate([pattern(r, count, dt, rank) for r in range(n)]),
                  "alltoall " + what)
        _alltoallv(comm, rank, n, dt)
        _sendrecv(comm, rank, n, dt)
    comm.barrier()
    comm.destroy()


def _alltoallv(comm, rank, n, dt):
    # rank r sends (r + p) % 3 + 1 elements to rank p, blocks packed with a gap of 2
    cnt = lambda r, p: (r + p) % 3 + 1  # noqa: E731
    scnt = [cnt(rank, p) for p in range(n)]
    sdsp = [sum(scnt[:p]) + 2 * p for p in range(n)]
    rcnt = [cnt(p, rank) for p in range(n)]
    rdsp = [sum(rcnt[:p]) for p in range(n)]
    send = np.zeros(sdsp[-1] + scnt[-1], dt)
    for p in range(n):
        send[sdsp[p]:sdsp[p] + scnt[p]] = pattern(rank, scnt[p], dt, 10 * p)
    recv = np.zeros(sum(rcnt), dt)
    comm.alltoallv(send, scnt, sdsp, recv, rcnt, rdsp)
    want = np.concatenate([pattern(p, rcnt[p], dt, 10 * rank) for p in range(n)])
    check(recv, want, f"alltoallv {dt}")


def _sendrecv(comm, rank, n, dt):
    right, left = (rank + 1) % n, (rank - 1) % n
    got = np.zeros(5, dt)
    with ppuccl.group():
        comm.send(pattern(rank, 5, dt), right)
        comm.recv(got, left)
    check(got, pattern(left, 5, dt), f"send/recv ring {dt}")
    if rank == 0:
        comm.send(pattern(0, 9, dt, 1), 1)
    elif rank == 1:
        x = np.zeros(9, dt)
        check(comm.recv(x, 0), pattern(0, 9, dt, 1), f"send/recv pair {dt}")


def _streams_groups_split(rank, n, uid):
    comm = ppuccl.Communicator(n, uid, rank)
    with ppuccl.Stream() as s:
        outs = []
        for k in range(6):  # queued in order on one stream
            a = np.full(1000, rank + k, np.float64)
            outs.append((k, comm.allreduce(a, op="sum", stream=s)))
        comm.barrier(stream=s)
        s.synchronize()
        assert s.query()
        for k, a in outs:
            check(a, np.full(1000, sum(range(n)) + n * k, np.float64), f"stream allreduce {k}")
        # a group on a stream: arrays made inside are kept alive by the binding
        with ppuccl.group():
            comm.send(pattern(rank, 100, "int32"), (rank + 1) % n, stream=s)
            got = comm.recv(np.zeros(100, np.int32), (rank - 1) % n, stream=s)
        s.synchronize()
        check(got, pattern((rank - 1) % n, 100, "int32"), "group on a stream")
    sub = comm.split(rank % 2, key=-rank)  # reversed order inside each half
    members = [r for r in range(n) if r % 2 == rank % 2]
    assert sub.size == len(members) and sub.rank == members[::-1].index(rank), sub
    x = np.array([rank], np.int64)
    check(sub.allreduce(x), np.array([sum(members)], np.int64), "split allreduce")
    sub.destroy()
    none = comm.split(None if rank == 0 else 1)
    assert (none is None) == (rank == 0)
    if none is not None:
        none.destroy()
    assert comm.async_error() == ppuccl.Result.SUCCESS
    comm.destroy()


def _torch_tensors(rank, n, uid):
    import torch
    comm = ppuccl.Communicator(n, uid, rank)
    for dt in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8,
               torch.uint8, torch.int32, torch.int64):
        npdt = "float32" if dt == torch.bfloat16 else str(dt)[6:]
        for op in OPS:
            t = torch.from_numpy(values(op, rank, n, 300, "float32")).to(dt)
            ptr = t.data_ptr()
            comm.allreduce(t, op=op)
            assert t.data_ptr() == ptr
            want = torch.from_numpy(reference(op, n, 300, npdt).astype("float32")).to(dt)
            assert torch.equal(t, want), f"torch allreduce {dt} {op}"
        t2 = torch.arange(12, dtype=dt).reshape(3, 4) if rank == 1 else torch.zeros(3, 4, dtype=dt)
        comm.broadcast(t2, root=1)
        assert torch.equal(t2, torch.arange(12, dtype=dt).reshape(3, 4)), f"torch bcast {dt}"
        out = torch.zeros(n, 2, dtype=dt)
        comm.allgather(torch.full((2,), rank, dtype=dt), out)
        assert torch.equal(out, torch.arange(n, dtype=dt)[:, None].expand(n, 2)), dt
        # a view of a larger tensor is fine when it is contiguous (no copy)
        big = torch.zeros(4, 6, dtype=dt)
        comm.allreduce(torch.ones(6, dtype=dt), big[2])
        assert torch.equal(big[2], torch.full((6,), n, dtype=dt)) and big[1].sum() == 0, dt
    comm.destroy()


def _windows(rank, n, uid):
    """Collectives on ppuccl.mem_alloc arrays registered as windows (the
    zero-copy path), numpy and torch, against the references."""
    import torch
    comm = ppuccl.Communicator(n, uid, rank)
    count = 5000
    a = ppuccl.mem_alloc(count * n, "float32")
    b = ppuccl.mem_alloc((n, count), "float32")
    t = ppuccl.mem_alloc(count, "float32", torch=True)
    assert isinstance(t, torch.Tensor) and t.numel() == count
    with comm.window_register(a), comm.window_register(b), comm.window_register(t):
        for op in OPS:
            ref = reference(op, n, count, "float32")
            a[:count] = values(op, rank, n, count, "float32")
            comm.allreduce(a[:count], b[0], op=op)
            check(b[0], ref, f"window allreduce {op}")
            comm.allreduce(a[:count], op=op)
            check(a[:count], ref, f"window allreduce in place {op}")
        a[:count] = rank
        comm.allgather(a[:count], b)
        check(b, np.repeat(np.arange(n, dtype="float32"), count).reshape(n, count),
              "window allgather")
        t.copy_(torch.full((count,), float(rank + 1)))
        comm.allreduce(t)
        assert torch.equal(t, torch.full((count,), float(n * (n + 1) // 2))), "torch window"
    comm.destroy()


class Binding(unittest.TestCase):
    def test_windows(self):
        run_ranks(3, _windows)


    def test_reductions_3_ranks(self):
        run_ranks(3, _reductions, [1, 7, 3000])

    def test_reductions_4_ranks_large(self):
        run_ranks(4, _reductions, [40000])

    def test_movement_2_ranks(self):
        run_ranks(2, _movement, [1, 3000])

    def test_movement_4_ranks(self):
        run_ranks(4, _movement, [5, 20000])

    def test_streams_groups_split(self):
        run_ranks(4, _streams_groups_split)

    def test_torch_tensors(self):
        run_ranks(2, _torch_tensors)

    def test_one_rank_and_version(self):
        self.assertEqual(ppuccl.version(), (0, 1, 0))
        uid = ppuccl.get_unique_id()
        self.assertEqual(len(uid), ppuccl.UNIQUE_ID_BYTES)
        with ppuccl.Communicator(1, uid, 0) as c:
            a = np.arange(5, dtype=np.float32)
            c.allreduce(a, op=ppuccl.AVG)
            np.testing.assert_array_equal(a, np.arange(5, dtype=np.float32))

    def test_stream_keeps_by_absolute_count(self):
        """A synchronize or query lets go only of what was kept before it
        began: a call kept while it ran stays held, and the stream does not
        read as drained (the torch backend runs calls inline on that)."""
        with ppuccl.Stream() as s:
            self.assertTrue(s.drained())
            s.keep("a")
            first = s._mark()       # a synchronize begins (sees "a")
            s.keep("b")             # another thread queues "b" meanwhile
            second = s._mark()      # a query begins (sees "a", "b")
            s._release(second)      # the query ends: both done
            self.assertTrue(s.drained())
            s.keep("c")             # a new call
            s._release(first)       # the synchronize ends late: "c" stays
            self.assertEqual(s._keep, ["c"])
            self.assertFalse(s.drained())
            s.synchronize()         # the stream is idle: lets go of "c"
            self.assertTrue(s.drained())

    def test_init_all_threads(self):
        import threading
        comms = ppuccl.Communicator.init_all(3)
        res = [None] * 3

        def work(i):
            res[i] = comms[i].allreduce(np.full(4, i + 1, np.int32), np.zeros(4, np.int32))
        th = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        for i in range(3):
            np.testing.assert_array_equal(res[i], np.full(4, 6, np.int32))
            comms[i].destroy()


if __name__ == "__main__":
    unittest.main()
