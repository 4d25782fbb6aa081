"""The "ppu" torch.distributed backend: every collective through
torch.distributed with 2-4 ranks, against references computed locally."""
import unittest

import torch
import torch.distributed as dist

import ppuccl.torch  # noqa: F401  registers "ppu"
from _ranks import run_ranks
from refdata import reference, values

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8,
          torch.int32, torch.int64]
OPS = {"sum": dist.ReduceOp.SUM, "prod": dist.ReduceOp.PRODUCT, "max": dist.ReduceOp.MAX,
       "min": dist.ReduceOp.MIN, "avg": dist.ReduceOp.AVG}


def tv(op, rank, n, count, dt):
    return torch.from_numpy(values(op, rank, n, count, "float32")).to(dt)


def tref(op, n, count, dt):
    return torch.from_numpy(reference(op, n, count, "float64").astype("float32")).to(dt)


def same(got, want, what):
    if got.dtype != want.dtype or not torch.equal(got, want):
        raise AssertionError(f"{what}: got {got.flatten()[:8].tolist()} "
                             f"want {want.flatten()[:8].tolist()}")


def _init():
    torch.set_num_threads(1)
    dist.init_process_group("ppu")
    assert dist.get_backend() == "ppu"
    return dist.get_rank(), dist.get_world_size()


def _reductions(rank, n):
    _init()
    for dt in DTYPES:
        for name, op in OPS.items():
            what = f"{dt} {name}"
            t = tv(name, rank, n, 333, dt)
            dist.all_reduce(t, op=op)
            same(t, tref(name, n, 333, dt), "all_reduce " + what)
            t = tv(name, rank, n, 50, dt)
            dist.reduce(t, dst=n - 1, op=op)
            if rank == n - 1:
                same(t, tref(name, n, 50, dt), "reduce " + what)
            full = tv(name, rank, n, 8 * n, dt)
            want = tref(name, n, 8 * n, dt)[8 * rank:8 * rank + 8]
            out = torch.zeros(8, dtype=dt)
            dist.reduce_scatter(out, list(full.chunk(n)), op=op)
            same(out, want, "reduce_scatter " + what)
            out.zero_()
            dist.reduce_scatter_tensor(out, full, op=op)
            same(out, want, "reduce_scatter_tensor " + what)
    ts = [torch.full((3,), float(rank)), torch.ones(5)]
    dist.all_reduce_coalesced(ts)
    same(ts[0], torch.full((3,), float(sum(range(n)))), "all_reduce_coalesced")
    same(ts[1], torch.full((5,), float(n)), "all_reduce_coalesced second tensor")
    # async: the Work and its future complete once the stream ran the call
    t = torch.ones(1 << 16)
    w = dist.all_reduce(t, async_op=True)
    fut = w.get_future()
    w.wait()
    same(fut.wait()[0], torch.full((1 << 16,), float(n)), "async all_reduce")
    assert w.is_completed()
    w = dist.all_reduce(torch.ones(10), async_op=True)
    while not w.is_completed():  # polling alone finishes it
        pass
    works = [dist.all_reduce(torch.full((100,), float(k)), async_op=True) for k in range(5)]
    for w in works:
        w.wait()
    # a synchronous call with nothing queued runs on the caller's thread:
    # no job is queued on the stream for it
    pg = dist.distributed_c10d._get_default_group()
    seq = pg._done._seq
    t = torch.full((7,), float(rank))
    dist.all_reduce(t)
    dist.broadcast(t, src=0)
    dist.barrier()
    assert pg._done._seq == seq, "synchronous calls were queued on the stream"
    same(t, torch.full((7,), float(sum(range(n)))), "synchronous all_reduce")
    # behind queued work, a synchronous call queues too and keeps the order
    a = torch.full((1 << 15,), float(rank + 1))
    w = dist.all_reduce(a, async_op=True)
    b = torch.full((3,), 2.0)
    dist.all_reduce(b, op=dist.ReduceOp.PRODUCT)
    assert pg._done._seq > seq + 1, "a call behind queued work ran before it"
    w.wait()
    same(a, torch.full((1 << 15,), float(n * (n + 1) // 2)), "async all_reduce before a sync one")
    same(b, torch.full((3,), float(2 ** n)), "sync all_reduce behind an async one")
    dist.destroy_process_group()


def _movement(rank, n):
    _init()
    for dt in DTYPES:
        src = torch.arange(24, dtype=dt).reshape(4, 6)
        b = src.clone() if rank == 1 else torch.zeros(4, 6, dtype=dt)
        dist.broadcast(b, src=1)
        same(b, src, f"broadcast {dt}")
        outs = [torch.zeros(3, dtype=dt) for _ in range(n)]
        dist.all_gather(outs, torch.full((3,), rank, dtype=dt))
        for r, o in enumerate(outs):
            same(o, torch.full((3,), r, dtype=dt), f"all_gather {dt}")
        flat = torch.zeros(n * 3, dtype=dt)
        dist.all_gather_into_tensor(flat, torch.full((3,), rank, dtype=dt))
        same(flat, torch.arange(n, dtype=dt).repeat_interleave(3), f"all_gather_into_tensor {dt}")
        # all_to_all_single, equal and uneven splits
        inp = torch.arange(n * 2, dtype=dt) + 10 * rank
        out = torch.zeros(n * 2, dtype=dt)
        dist.all_to_all_single(out, inp)
        want = torch.cat([torch.arange(2 * rank, 2 * rank + 2, dtype=dt) + 10 * r
                          for r in range(n)])
        same(out, want, f"all_to_all_single {dt}")
        ins = [torch.full((p + 1, 2), 10 * rank + p, dtype=dt) for p in range(n)]
        inp = torch.cat(ins)
        out = torch.zeros(n * (rank + 1), 2, dtype=dt)
        dist.all_to_all_single(out, inp, [rank + 1] * n, [p + 1 for p in range(n)])
        want = torch.cat([torch.full((rank + 1, 2), 10 * r + rank, dtype=dt) for r in range(n)])
        same(out, want, f"all_to_all_single uneven {dt}")
        out = torch.zeros(n, 2, dtype=dt)  # input split equally, output splits given
        dist.all_to_all_single(out, torch.arange(2 * n, dtype=dt).reshape(n, 2) + 10 * rank,
                               [1] * n, [])
        same(out, torch.stack([torch.arange(2 * rank, 2 * rank + 2, dtype=dt) + 10 * r
                               for r in range(n)]), f"all_to_all_single one-sided {dt}")
        outs = [torch.zeros(rank + 1, dtype=dt) for _ in range(n)]
        dist.all_to_all(outs, [torch.full((p + 1,), 10 * rank + p, dtype=dt) for p in range(n)])
        for r, o in enumerate(outs):
            same(o, torch.full((rank + 1,), 10 * r + rank, dtype=dt), f"all_to_all {dt}")
    # gather / scatter (point to point inside a group)
    g = [torch.zeros(2) for _ in range(n)] if rank == 0 else None
    dist.gather(torch.full((2,), float(rank)), g, dst=0)
    if rank == 0:
        same(torch.stack(g), torch.arange(n, dtype=torch.float32)[:, None].expand(n, 2), "gather")
    s = torch.zeros(3)
    dist.scatter(s, [torch.full((3,), float(p)) for p in range(n)] if rank == n - 1 else None,
                 src=n - 1)
    same(s, torch.full((3,), float(rank)), "scatter")
    # send / recv, blocking and async
    if rank == 0:
        dist.send(torch.arange(5.), dst=1)
    elif rank == 1:
        x = torch.zeros(5)
        dist.recv(x, src=0)
        same(x, torch.arange(5.), "send/recv")
    right, left = (rank + 1) % n, (rank - 1) % n
    got = torch.zeros(4, dtype=torch.int64)
    reqs = [dist.isend(torch.full((4,), rank, dtype=torch.int64), right),
            dist.irecv(got, left)]
    for q in reqs:
        q.wait()
    same(got, torch.full((4,), left, dtype=torch.int64), "isend/irecv ring")
    # large messages both ways at once: issued together, they cannot deadlock
    big = torch.zeros(1 << 20)
    reqs = dist.batch_isend_irecv([dist.P2POp(dist.isend, torch.full((1 << 20,), rank + 0.5),
                                              right),
                                   dist.P2POp(dist.irecv, big, left)])
    for q in reqs:
        q.wait()
    same(big, torch.full((1 << 20,), left + 0.5), "batch_isend_irecv ring")
    if rank < 2:
        big.zero_()
        a = dist.isend(torch.full((1 << 20,), float(rank)), 1 - rank)
        b = dist.irecv(big, 1 - rank)
        fut = b.get_future()
        a.wait()
        same(fut.wait()[0], torch.full((1 << 20,), float(1 - rank)), "isend/irecv pair")
    dist.barrier()
    # a subgroup gets its own communicator through the store
    sub = dist.new_group([0, n - 1])
    if rank in (0, n - 1):
        t = torch.tensor([rank + 1.0])
        dist.all_reduce(t, group=sub)
        same(t, torch.tensor([float(n + 1)]), "new_group all_reduce")
    dist.barrier()
    dist.destroy_process_group()


def _objects_and_ddp(rank, n):
    _init()
    objs = [None] * n
    dist.all_gather_object(objs, {"rank": rank})
    assert objs == [{"rank": r} for r in range(n)], objs
    lst = [f"hello {rank}"]
    dist.broadcast_object_list(lst, src=0)
    assert lst == ["hello 0"]
    torch.manual_seed(rank)  # different weights: DDP must broadcast rank 0's
    m = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 3))
    w = m.module.weight.detach().clone()
    ws = [torch.zeros_like(w) for _ in range(n)]
    dist.all_gather(ws, w)
    assert all(torch.equal(x, ws[0]) for x in ws), "DDP did not sync parameters"
    m(torch.full((2, 8), float(rank))).sum().backward()
    gs = [torch.zeros_like(w) for _ in range(n)]
    dist.all_gather(gs, m.module.weight.grad)
    assert all(torch.equal(x, gs[0]) for x in gs), "DDP gradients differ between ranks"
    dist.destroy_process_group()


class Backend(unittest.TestCase):
    def test_reductions_2_ranks(self):
        run_ranks(2, _reductions, uid=False)

    def test_reductions_3_ranks(self):
        run_ranks(3, _reductions, uid=False)

    def test_movement_2_ranks(self):
        run_ranks(2, _movement, uid=False)

    def test_movement_4_ranks(self):
        run_ranks(4, _movement, uid=False)

    def test_objects_and_ddp_sync(self):
        run_ranks(3, _objects_and_ddp, uid=False)


if __name__ == "__main__":
    unittest.main()
