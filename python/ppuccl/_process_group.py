"""ProcessGroupPPU: a torch.distributed ProcessGroup over a ppuccl
communicator. Every call is queued on the group's ppuccl stream, so
communication overlaps the caller's compute, and returns a Work:

- to torch.distributed's Python API (dist.all_reduce(..., async_op=True)),
  a PPUWork whose wait() synchronizes the stream and raises the library's
  error;
- to C++ callers (DDP's reducer, broadcast_coalesced), a Work made by
  _create_work_from_future: torch 1.13 loses the Python half of a Work
  subclass handed to C++, and such a Work's wait() does not raise, but
  DDP reads the future's value, which does.
"""
import sys
import threading

import torch
import torch.distributed.distributed_c10d as c10d
from torch._C._distributed_c10d import ProcessGroup, Work, _create_work_from_future

from ._buffers import as_buffer
from ._completion import Job, Tracker
from .comm import Communicator, group
from ._lib import Op, Result
from .errors import PpuError
from .stream import Stream

_OPS = {"SUM": Op.SUM, "PRODUCT": Op.PROD, "MIN": Op.MIN, "MAX": Op.MAX, "AVG": Op.AVG}
_OPS_SEEN = {}  # torch's op value -> Op, for the ops met so far


class UnsupportedError(RuntimeError):
    """The ppu backend does not implement this call (it never falls back)."""


_C10D_FILE = c10d.all_reduce.__code__.co_filename  # frames of torch's Python API


def _flat(t):
    return t.reshape(-1)


class PPUWork(Work):
    """The Work the Python API gets: wait() waits for the group's stream."""

    def __init__(self, tracker, job, pg=None):
        super().__init__()
        self._tracker, self._job, self._pg = tracker, job, pg

    def _issued(self):
        if not self._job.attached and not self._job.done:
            self._pg._flush_p2p()  # a deferred send/recv: issue the batch now

    def wait(self, timeout=None):
        """Waits for the call (the library's PPU_TIMEOUT_MS bounds it)."""
        self._issued()
        self._tracker.wait(self._job)
        return True

    synchronize = wait

    def is_completed(self):
        self._issued()
        return self._tracker.poll(self._job)

    def is_success(self):
        return self._job.done and self._job.error is None

    def exception(self):
        return self._job.error

    def result(self):
        self.wait()
        return self._job.result

    def get_future(self):
        self._issued()
        return self._tracker.future(self._job)

    def source_rank(self):
        raise RuntimeError("ppu backend: source_rank is only known for receives from any source, "
                           "which are not supported")


class ProcessGroupPPU(ProcessGroup):
    """The "ppu" backend: one ppuccl communicator, stream and completion
    thread per process group."""

    def __init__(self, store, rank, size, timeout=None):
        super().__init__(rank, size)
        self._comm = Communicator.from_store(store, rank, size)
        self._stream = Stream()
        self._done = Tracker(self._stream, self._comm)
        self._seen_in_torch = False  # registered in torch's group map once
        self._p2p = []  # sends and receives not issued yet: (call, tensor, peer, job)
        # held from "is anything queued?" to the call being issued (or run,
        # on the caller's thread): another thread (a future's callback)
        # cannot queue work between the check and the call
        self._issue_lock = threading.RLock()

    # ---- plumbing ------------------------------------------------------
    def getBackendName(self):
        return "ppu"

    @property
    def communicator(self):
        """The ppuccl Communicator behind this group."""
        return self._comm

    def shutdown(self, wait=True):
        """Frees the stream and communicator; later calls raise PpuError.
        wait=True waits for queued calls; wait=False aborts them when the
        stream is still busy (at exit, so a lost peer cannot hang it)."""
        if self._comm.closed:
            return
        try:
            busy = not self._stream.query()
        except PpuError:  # failed work is finished work
            busy = False
        if not wait and busy:
            self._p2p = []
            self._comm.abort()
        else:
            self._flush_p2p()
        self._done.close()
        self._stream.destroy()
        self._comm.destroy()

    def _check_usable(self, name):
        if self._comm.closed:
            raise PpuError(Result.INVALID_USAGE,
                           f"ppu backend {name}: the process group was shut down")
        if self in c10d._pg_map:
            self._seen_in_torch = True
        elif self._seen_in_torch:
            raise PpuError(Result.INVALID_USAGE,
                           f"ppu backend {name}: the process group was destroyed "
                           f"(torch.distributed.destroy_process_group)")
        err = self._done.error
        if err is not None:
            raise PpuError(err.code, f"ppu backend {name}: an earlier call failed: "
                                     f"{err.message}")

    def _launch(self, name, issue, result, finish=None, keep=None):
        """Runs issue(stream) and returns its Work. A synchronous call of
        torch's Python API (async_op=False: it waits on the Work at once)
        finding nothing queued runs on the caller's thread (stream None):
        no hand-off to the stream's thread and back, which was most of an
        8-byte all_reduce's time through torch. Everything else is queued
        on the group's stream."""
        self._check_usable(name)
        caller = sys._getframe(2)
        api = caller.f_code.co_filename == _C10D_FILE
        with self._issue_lock:
            self._flush_p2p()
            inline = api and caller.f_locals.get("async_op") is False and self._done.idle()
            try:
                issue(None if inline else self._stream)
            except (TypeError, ValueError) as e:
                raise type(e)(f"ppu backend {name}: {e}") from None
            except PpuError as e:
                # a failure that broke the communicator ends the group, as a
                # queued one does; a bad argument, refused before anything
                # ran, does not (nor does it on the queued path)
                if inline and self._comm.async_error() != Result.SUCCESS:
                    self._done.failed(e)
                raise
            if inline:
                if finish is not None:
                    finish()
                return PPUWork(self._done, self._done.completed(result))
            job = self._done.add(result, finish, keep)
        if api:
            return PPUWork(self._done, job)
        return _create_work_from_future(self._done.future(job))

    def _one(self, name, tensors):
        if len(tensors) != 1:
            raise UnsupportedError(f"ppu backend {name}: takes one tensor per rank, got "
                                   f"{len(tensors)} (multi-device lists are not supported)")
        return tensors[0]

    @staticmethod
    def _op(name, reduce_op):
        op = getattr(reduce_op, "op", reduce_op)  # torch >= 1.13 wraps the enum
        known = _OPS_SEEN.get(int(op))  # a pybind enum's name costs ~0.9 us
        if known is not None:
            return known
        op_name = op.name
        try:
            _OPS_SEEN[int(op)] = _OPS[op_name]
            return _OPS[op_name]
        except KeyError:
            raise UnsupportedError(f"ppu backend {name}: ReduceOp.{op_name} is not supported "
                                   f"(SUM, PRODUCT, MIN, MAX, AVG are)") from None

    def _same(self, name, tensors, like):
        for t in tensors:
            if t.dtype != like.dtype or t.numel() != like.numel():
                raise ValueError(f"ppu backend {name}: tensors must all be {like.dtype} with "
                                 f"{like.numel()} elements; got {t.dtype} with {t.numel()}")

    def _list(self, name, lists, what):
        if len(lists) != 1:
            raise UnsupportedError(f"ppu backend {name}: takes one list of {what} per rank")
        if len(lists[0]) != self.size():
            raise ValueError(f"ppu backend {name}: the list of {what} has {len(lists[0])} "
                             f"tensors; it must have one per rank ({self.size()})")
        return lists[0]

    # ---- reductions ----------------------------------------------------
    def allreduce(self, tensors, opts=None):
        t = self._one("all_reduce", tensors)
        op = self._op("all_reduce", opts.reduceOp)
        return self._launch("all_reduce",
                            lambda s: self._comm.allreduce(t, op=op, stream=s), [t])

    def allreduce_coalesced(self, tensors, opts=None):
        op = self._op("all_reduce_coalesced", opts.reduceOp)

        def issue(s):
            with group():
                for t in tensors:
                    self._comm.allreduce(t, op=op, stream=s)
        return self._launch("all_reduce_coalesced", issue, list(tensors))

    def reduce(self, tensors, opts=None):
        t = self._one("reduce", tensors)
        op = self._op("reduce", opts.reduceOp)
        return self._launch("reduce", lambda s: self._comm.reduce(
            t, op=op, root=opts.rootRank, stream=s), [t])

    def reduce_scatter(self, outputs, input_lists, opts=None):
        out = self._one("reduce_scatter", outputs)
        ins = self._list("reduce_scatter", input_lists, "inputs")
        self._same("reduce_scatter", ins, out)
        op = self._op("reduce_scatter", opts.reduceOp)
        flat = torch.cat([_flat(x) for x in ins])
        return self._launch("reduce_scatter", lambda s: self._comm.reduce_scatter(
            flat, out, op=op, stream=s), [out], keep=flat)

    def _reduce_scatter_base(self, output, inp, opts=None):
        op = self._op("reduce_scatter_tensor", opts.reduceOp)
        return self._launch("reduce_scatter_tensor", lambda s: self._comm.reduce_scatter(
            inp, output, op=op, stream=s), [output])

    # ---- data movement -------------------------------------------------
    def broadcast(self, tensors, opts=None):
        t = self._one("broadcast", tensors)
        return self._launch("broadcast", lambda s: self._comm.broadcast(
            t, root=opts.rootRank, stream=s), [t])

    def allgather(self, output_lists, inputs, opts=None):
        t = self._one("all_gather", inputs)
        outs = self._list("all_gather", output_lists, "outputs")
        self._same("all_gather", outs, t)
        flat = torch.empty(t.numel() * self.size(), dtype=t.dtype)

        def finish():
            for i, o in enumerate(outs):
                o.copy_(flat[i * t.numel():(i + 1) * t.numel()].view_as(o))
        return self._launch("all_gather", lambda s: self._comm.allgather(
            t, flat, stream=s), [outs], finish)

    def _allgather_base(self, output, inp, opts=None):
        return self._launch("all_gather_into_tensor", lambda s: self._comm.allgather(
            inp, output, stream=s), [output])

    def allgather_coalesced(self, output_lists, inputs, opts=None):
        raise UnsupportedError("ppu backend: all_gather_coalesced is not supported")

    def gather(self, output_lists, inputs, opts=None):
        t = self._one("gather", inputs)
        root, me = opts.rootRank, self.rank()
        outs = self._list("gather", output_lists, "outputs") if me == root else []
        self._same("gather", outs, t)

        def issue(s):
            with group():
                for p, o in enumerate(outs):
                    if p != me:
                        self._comm.recv(o, p, stream=s)
                if me != root:
                    self._comm.send(t, root, stream=s)
            if outs:
                outs[me].copy_(t)
        return self._launch("gather", issue, outs or [t])

    def scatter(self, outputs, input_lists, opts=None):
        t = self._one("scatter", outputs)
        root, me = opts.rootRank, self.rank()
        ins = self._list("scatter", input_lists, "inputs") if me == root else []
        self._same("scatter", ins, t)

        def issue(s):
            with group():
                for p, x in enumerate(ins):
                    if p != me:
                        self._comm.send(x, p, stream=s)
                if me != root:
                    self._comm.recv(t, root, stream=s)
            if ins:
                t.copy_(ins[me])
        return self._launch("scatter", issue, [t])

    def alltoall_base(self, output, inp, output_split_sizes, input_split_sizes, opts=None):
        name = "all_to_all_single"
        if not output_split_sizes and not input_split_sizes:
            return self._launch(name, lambda s: self._comm.alltoall(
                inp, output, stream=s), [output])
        scnt, sdsp = self._splits(name, inp, input_split_sizes)
        rcnt, rdsp = self._splits(name, output, output_split_sizes)
        return self._launch(name, lambda s: self._comm.alltoallv(
            inp, scnt, sdsp, output, rcnt, rdsp, stream=s), [output])

    def _splits(self, name, t, sizes):
        """Element counts and displacements for splits along dim 0."""
        n = self.size()
        rows = t.shape[0] if t.dim() else 1
        row = t.numel() // rows if rows else 0
        sizes = list(sizes) or ([rows // n] * n if rows % n == 0 else [])
        if len(sizes) != n or sum(sizes) != rows or min(sizes) < 0:
            raise ValueError(f"ppu backend {name}: split sizes {sizes} do not divide the "
                             f"{rows} rows among {n} ranks")
        counts = [s * row for s in sizes]
        displs = [sum(counts[:i]) for i in range(n)]
        return counts, displs

    def alltoall(self, outputs, inputs, opts=None):
        name = "all_to_all"
        n = self.size()
        if len(outputs) != n or len(inputs) != n:
            raise ValueError(f"ppu backend {name}: needs {n} input and {n} output tensors")
        self._same_dtype(name, list(inputs) + list(outputs))
        send = torch.cat([_flat(x) for x in inputs])
        recv = torch.empty(sum(o.numel() for o in outputs), dtype=outputs[0].dtype)
        scnt = [x.numel() for x in inputs]
        rcnt = [o.numel() for o in outputs]
        sdsp = [sum(scnt[:i]) for i in range(n)]
        rdsp = [sum(rcnt[:i]) for i in range(n)]

        def finish():
            for o, d, c in zip(outputs, rdsp, rcnt):
                o.copy_(recv[d:d + c].view_as(o))
        return self._launch(name, lambda s: self._comm.alltoallv(
            send, scnt, sdsp, recv, rcnt, rdsp, stream=s), list(outputs), finish,
            keep=send)

    @staticmethod
    def _same_dtype(name, tensors):
        if len({t.dtype for t in tensors}) > 1:
            raise TypeError(f"ppu backend {name}: tensors have different dtypes "
                            f"{sorted({str(t.dtype) for t in tensors})}")

    # ---- point to point and barrier ------------------------------------
    def _tag(self, name, tag):
        if tag:
            raise UnsupportedError(f"ppu backend {name}: tags are not supported (got tag "
                                   f"{tag}); sends and receives match in issue order")

    def send(self, tensors, dst, tag=0):
        return self._p2p_call("send", tensors, dst, tag)

    def recv(self, tensors, src, tag=0):
        return self._p2p_call("recv", tensors, src, tag)

    def _p2p_call(self, name, tensors, peer, tag):
        """Sends and receives wait in a list until a wait() on one of them or
        the next other call, then go out together as one ppuccl group, so
        batch_isend_irecv and exchanges between pairs cannot deadlock."""
        t = self._one(name, tensors)
        self._tag(name, tag)
        self._check_usable(name)
        if not 0 <= peer < self.size() or peer == self.rank():
            raise ValueError(f"ppu backend {name}: peer {peer} must be another rank of "
                             f"0..{self.size() - 1}")
        try:
            as_buffer(t, f"ppu_{name}", "sendbuf" if name == "send" else "recvbuf")
        except (TypeError, ValueError) as e:
            raise type(e)(f"ppu backend {name}: {e}") from None
        job = Job([t])
        with self._issue_lock:
            self._p2p.append((name, t, peer, job))
        if sys._getframe(2).f_code.co_filename == _C10D_FILE:
            return PPUWork(self._done, job, self)
        self._flush_p2p()
        return _create_work_from_future(self._done.future(job))

    def _flush_p2p(self):
        with self._issue_lock:
            calls, self._p2p = self._p2p, []
            if not calls:
                return
            try:
                with group():
                    for name, t, peer, _ in calls:
                        getattr(self._comm, name)(t, peer, stream=self._stream)
            except Exception as e:
                for *_, job in calls:
                    self._done.fail(job, e)
                raise
            for *_, job in calls:
                self._done.attach(job)

    def recv_anysource(self, tensors, tag=0):
        raise UnsupportedError("ppu backend recv: a receive from any source is not supported; "
                               "name the source rank")

    def barrier(self, opts=None):
        return self._launch("barrier", lambda s: self._comm.barrier(stream=s), [])

    def monitored_barrier(self, timeout=None, wait_all_ranks=False):
        raise UnsupportedError("ppu backend: monitored_barrier is not supported")
