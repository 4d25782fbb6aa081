"""Communicators (ppu_comm_t), their collectives, and groups."""
import contextlib
import ctypes
import threading

from ._buffers import as_buffer
from ._lib import SPLIT_NOCOLOR, UNIQUE_ID_BYTES, Op, Result, UniqueId, lib
from .errors import PpuError, check

_tls = threading.local()  # open group: depth, buffers to keep, its stream

_OP_NAMES = {"sum": Op.SUM, "prod": Op.PROD, "product": Op.PROD, "max": Op.MAX,
             "min": Op.MIN, "avg": Op.AVG, "mean": Op.AVG}


def get_unique_id():
    """ppu_get_unique_id: starts the rendezvous root here; 128 bytes to hand
    to every rank."""
    uid = UniqueId()
    check(lib.ppu_get_unique_id(ctypes.byref(uid)), "ppu_get_unique_id")
    return bytes(uid)


def version():
    """The library's version as (major, minor, patch)."""
    v = ctypes.c_int()
    check(lib.ppu_get_version(ctypes.byref(v)), "ppu_get_version")
    return v.value // 10000, v.value // 100 % 100, v.value % 100


def _depth():
    return getattr(_tls, "depth", 0)


def group_start():
    """ppu_group_start: record calls until the matching group_end."""
    check(lib.ppu_group_start(), "ppu_group_start")
    if _depth() == 0:
        _tls.keep, _tls.stream = [], None
    _tls.depth = _depth() + 1


def group_end():
    """ppu_group_end: the outermost one issues the recorded calls."""
    if _depth() == 0:
        check(lib.ppu_group_end(), "ppu_group_end")  # raises: no open group
        return
    _tls.depth -= 1
    rc = lib.ppu_group_end()
    if _tls.depth == 0:
        keep, stream = _tls.keep, _tls.stream
        _tls.keep, _tls.stream = [], None
        if rc == Result.SUCCESS and stream is not None:
            stream.keep(keep)  # a failed ppu_group_end queued nothing
    check(rc, "ppu_group_end")


@contextlib.contextmanager
def group():
    """with ppuccl.group(): calls inside are issued together at the end."""
    group_start()
    try:
        yield
    finally:
        group_end()


def parse_op(op):
    """An Op from an Op, its value, or a name such as "sum"."""
    if type(op) is Op:
        return op
    if isinstance(op, str):
        try:
            return _OP_NAMES[op.lower()]
        except KeyError:
            raise ValueError(f"unknown reduction op {op!r}; use one of "
                             f"{', '.join(_OP_NAMES)}") from None
    try:
        return Op(op)
    except ValueError:
        raise ValueError(f"unknown reduction op {op!r}") from None


def _same_type(fn, a, b, an="sendbuf", bn="recvbuf"):
    if a.dtype != b.dtype:
        raise TypeError(f"{fn}: {an} is {a.dtype.name.lower()} but {bn} is "
                        f"{b.dtype.name.lower()}; they must match")


def _want(fn, what, have, need):
    if have != need:
        raise ValueError(f"{fn}: {what} has {have} elements; it must have {need}")


class Communicator:
    """A ppuccl communicator. Collectives take numpy arrays or CPU torch
    tensors (contiguous) and an optional Stream; with stream=None they
    run before returning. They return the receive buffer."""

    def __init__(self, nranks, unique_id, rank):
        """ppu_comm_init_rank: collective over the nranks ranks sharing unique_id."""
        if not isinstance(unique_id, (bytes, bytearray)) or len(unique_id) != UNIQUE_ID_BYTES:
            raise ValueError(f"unique_id must be {UNIQUE_ID_BYTES} bytes from get_unique_id()")
        h = ctypes.c_void_p()
        uid = UniqueId.from_buffer_copy(bytes(unique_id))
        check(lib.ppu_comm_init_rank(ctypes.byref(h), int(nranks), uid, int(rank)),
              "ppu_comm_init_rank")
        self._adopt(h.value)

    def _adopt(self, handle):
        self._handle = handle
        n, r = ctypes.c_int(), ctypes.c_int()
        check(lib.ppu_comm_count(handle, ctypes.byref(n)), "ppu_comm_count", handle)
        check(lib.ppu_comm_user_rank(handle, ctypes.byref(r)), "ppu_comm_user_rank", handle)
        self.size, self.rank = n.value, r.value

    @classmethod
    def _wrap(cls, handle):
        c = cls.__new__(cls)
        c._adopt(handle)
        return c

    @classmethod
    def from_env(cls):
        """ppu_comm_init_env: PPU_RANK/PPU_WORLD_SIZE/PPU_ROOT_ADDR or mpirun's."""
        h = ctypes.c_void_p()
        check(lib.ppu_comm_init_env(ctypes.byref(h)), "ppu_comm_init_env")
        return cls._wrap(h.value)

    @classmethod
    def from_store(cls, store, rank, size, key="ppuccl_unique_id"):
        """Rank 0 makes the unique id and sets it under key in a key-value
        store (a torch.distributed Store); the others get it from there."""
        if rank == 0:
            uid = get_unique_id()
            store.set(key, uid)
        else:
            uid = bytes(store.get(key))
        return cls(size, uid, rank)

    @classmethod
    def init_all(cls, n):
        """ppu_comm_init_all: n communicators in this process, rank i at [i];
        drive each from its own thread or stream."""
        hs = (ctypes.c_void_p * n)()
        check(lib.ppu_comm_init_all(hs, int(n)), "ppu_comm_init_all")
        return [cls._wrap(h) for h in hs]

    # ---- lifetime ------------------------------------------------------
    def handle_for(self, fn):
        """The ppu_comm_t, or PpuError naming fn when destroyed."""
        if self._handle is None:
            raise PpuError(Result.INVALID_USAGE,
                           f"{fn}: the communicator was destroyed or aborted")
        return self._handle

    @property
    def closed(self):
        return self._handle is None

    def destroy(self):
        """ppu_comm_destroy: waits for queued work, then frees (idempotent)."""
        if self._handle is not None:
            h, self._handle = self._handle, None
            check(lib.ppu_comm_destroy(h), "ppu_comm_destroy", h)

    def abort(self):
        """ppu_comm_abort: stops in-flight work, then frees."""
        if self._handle is not None:
            h, self._handle = self._handle, None
            check(lib.ppu_comm_abort(h), "ppu_comm_abort", h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()

    def __repr__(self):
        state = "destroyed" if self._handle is None else f"rank {self.rank} of {self.size}"
        return f"<ppuccl.Communicator {state}>"

    def async_error(self):
        """ppu_comm_get_async_error as a Result."""
        e = ctypes.c_int()
        h = self.handle_for("ppu_comm_get_async_error")
        check(lib.ppu_comm_get_async_error(h, ctypes.byref(e)), "ppu_comm_get_async_error", h)
        return Result(e.value)

    def last_error(self):
        """ppu_get_last_error for this communicator."""
        from ._lib import last_error
        return last_error(self._handle)

    def split(self, color, key=0):
        """ppu_comm_split: a new Communicator, or None for color None/NOCOLOR."""
        h = self.handle_for("ppu_comm_split")
        out = ctypes.c_void_p()
        c = SPLIT_NOCOLOR if color is None else int(color)
        check(lib.ppu_comm_split(h, c, int(key), ctypes.byref(out)), "ppu_comm_split", h)
        return Communicator._wrap(out.value) if out.value else None

    # ---- plumbing ------------------------------------------------------
    def _issue(self, fn, rc, stream, keep):
        check(rc, fn, self._handle)
        if _depth() > 0:
            _tls.keep.append(keep)
            _tls.stream = stream
        elif stream is not None:
            stream.keep(keep, self._handle)

    @staticmethod
    def _sh(stream):
        return None if stream is None else stream.handle

    # ---- collectives ---------------------------------------------------
    def allreduce(self, sendbuf, recvbuf=None, op=Op.SUM, stream=None):
        """ppu_allreduce; in place when recvbuf is None."""
        fn = "ppu_allreduce"
        h = self.handle_for(fn)
        s = as_buffer(sendbuf, fn, "sendbuf", writable=recvbuf is None)
        r = s if recvbuf is None else as_buffer(recvbuf, fn, "recvbuf", writable=True)
        _same_type(fn, s, r)
        _want(fn, "recvbuf", r.count, s.count)
        rc = lib.ppu_allreduce(s.ptr, r.ptr, s.count, s.dtype, parse_op(op), h, self._sh(stream))
        self._issue(fn, rc, stream, (sendbuf, recvbuf))
        return sendbuf if recvbuf is None else recvbuf

    def broadcast(self, sendbuf, recvbuf=None, root=0, stream=None):
        """ppu_broadcast of root's sendbuf into every recvbuf (in place when
        recvbuf is None; sendbuf may be None off the root)."""
        fn = "ppu_broadcast"
        h = self.handle_for(fn)
        if recvbuf is None:
            r = s = as_buffer(sendbuf, fn, "sendbuf", writable=True)
        else:
            r = as_buffer(recvbuf, fn, "recvbuf", writable=True)
            s = r if sendbuf is None or self.rank != root else as_buffer(sendbuf, fn, "sendbuf")
            _same_type(fn, s, r)
            _want(fn, "recvbuf", r.count, s.count)
        rc = lib.ppu_broadcast(s.ptr, r.ptr, r.count, r.dtype, int(root), h, self._sh(stream))
        self._issue(fn, rc, stream, (sendbuf, recvbuf))
        return sendbuf if recvbuf is None else recvbuf

    def reduce(self, sendbuf, recvbuf=None, op=Op.SUM, root=0, stream=None):
        """ppu_reduce into recvbuf on root (in place there when recvbuf is None)."""
        fn = "ppu_reduce"
        h = self.handle_for(fn)
        on_root = self.rank == root
        s = as_buffer(sendbuf, fn, "sendbuf", writable=on_root and recvbuf is None)
        r = None
        if on_root:
            r = s if recvbuf is None else as_buffer(recvbuf, fn, "recvbuf", writable=True)
            _same_type(fn, s, r)
            _want(fn, "recvbuf", r.count, s.count)
        rc = lib.ppu_reduce(s.ptr, r.ptr if r else None, s.count, s.dtype, parse_op(op),
                            int(root), h, self._sh(stream))
        self._issue(fn, rc, stream, (sendbuf, recvbuf))
        return sendbuf if recvbuf is None else recvbuf

    def allgather(self, sendbuf, recvbuf, stream=None):
        """ppu_allgather: rank i's sendbuf lands in block i of recvbuf."""
        fn = "ppu_allgather"
        h = self.handle_for(fn)
        s = as_buffer(sendbuf, fn, "sendbuf")
        r = as_buffer(recvbuf, fn, "recvbuf", writable=True)
        _same_type(fn, s, r)
        _want(fn, "recvbuf", r.count, s.count * self.size)
        rc = lib.ppu_allgather(s.ptr, r.ptr, s.count, s.dtype, h, self._sh(stream))
        self._issue(fn, rc, stream, (sendbuf, recvbuf))
        return recvbuf

    def reduce_scatter(self, sendbuf, recvbuf, op=Op.SUM, stream=None):
        """ppu_reduce_scatter: rank i gets the reduction of block i."""
        fn = "ppu_reduce_scatter"
        h = self.handle_for(fn)
        s = as_buffer(sendbuf, fn, "sendbuf")
        r = as_buffer(recvbuf, fn, "recvbuf", writable=True)
        _same_type(fn, s, r)
        _want(fn, "sendbuf", s.count, r.count * self.size)
        rc = lib.ppu_reduce_scatter(s.ptr, r.ptr, r.count, s.dtype, parse_op(op), h,
                                    self._sh(stream))
        self._issue(fn, rc, stream, (sendbuf, recvbuf))
        return recvbuf

    def alltoall(self, sendbuf, recvbuf, stream=None):
        """ppu_alltoall: block p of sendbuf goes to rank p."""
        fn = "ppu_alltoall"
        h = self.handle_for(fn)
        s = as_buffer(sendbuf, fn, "sendbuf")
        r = as_buffer(recvbuf, fn, "recvbuf", writable=True)
        _same_type(fn, s, r)
        _want(fn, "recvbuf", r.count, s.count)
        if s.count % self.size:
            raise ValueError(f"{fn}: sendbuf has {s.count} elements, not a multiple of the "
                             f"{self.size} ranks")
        rc = lib.ppu_alltoall(s.ptr, r.ptr, s.count // self.size, s.dtype, h, self._sh(stream))
        self._issue(fn, rc, stream, (sendbuf, recvbuf))
        return recvbuf

    def alltoallv(self, sendbuf, sendcounts, sdispls, recvbuf, recvcounts, rdispls,
                  stream=None):
        """ppu_alltoallv; counts and displacements in elements, one per rank."""
        fn = "ppu_alltoallv"
        h = self.handle_for(fn)
        s = as_buffer(sendbuf, fn, "sendbuf")
        r = as_buffer(recvbuf, fn, "recvbuf", writable=True)
        _same_type(fn, s, r)
        arrs = []
        for name, vals, buf in (("sendcounts", sendcounts, s), ("sdispls", sdispls, s),
                                ("recvcounts", recvcounts, r), ("rdispls", rdispls, r)):
            vals = [int(v) for v in vals]
            if len(vals) != self.size or min(vals) < 0:
                raise ValueError(f"{fn}: {name} must be {self.size} non-negative integers")
            arrs.append(vals)
        for cnt, dsp, buf, name in ((arrs[0], arrs[1], s, "sendbuf"),
                                    (arrs[2], arrs[3], r, "recvbuf")):
            end = max((d + c for c, d in zip(cnt, dsp) if c), default=0)
            if end > buf.count:
                raise ValueError(f"{fn}: counts and displacements reach element {end} of "
                                 f"{name}, which has {buf.count}")
        c = [(ctypes.c_size_t * self.size)(*a) for a in arrs]
        rc = lib.ppu_alltoallv(s.ptr, c[0], c[1], r.ptr, c[2], c[3], s.dtype, h,
                               self._sh(stream))
        self._issue(fn, rc, stream, (sendbuf, recvbuf))
        return recvbuf

    def send(self, buf, peer, stream=None):
        """ppu_send of the whole buffer to peer."""
        fn = "ppu_send"
        h = self.handle_for(fn)
        b = as_buffer(buf, fn, "sendbuf")
        rc = lib.ppu_send(b.ptr, b.count, b.dtype, int(peer), h, self._sh(stream))
        self._issue(fn, rc, stream, (buf,))
        return buf

    def recv(self, buf, peer, stream=None):
        """ppu_recv of the whole buffer from peer."""
        fn = "ppu_recv"
        h = self.handle_for(fn)
        b = as_buffer(buf, fn, "recvbuf", writable=True)
        rc = lib.ppu_recv(b.ptr, b.count, b.dtype, int(peer), h, self._sh(stream))
        self._issue(fn, rc, stream, (buf,))
        return buf

    def window_register(self, buf):
        """Registers buf (from ppuccl.mem_alloc; collective) as a window:
        collectives on buffers in windows then read and write the ranks'
        memory directly. Returns a Window (deregister() or with-block)."""
        from .memory import Window
        return Window(self, buf)

    def barrier(self, stream=None):
        """ppu_barrier."""
        fn = "ppu_barrier"
        h = self.handle_for(fn)
        self._issue(fn, lib.ppu_barrier(h, self._sh(stream)), stream, ())
