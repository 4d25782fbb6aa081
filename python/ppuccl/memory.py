"""Symmetric memory (ppu_mem_alloc) as numpy arrays or torch tensors, and
windows over it (ppu_comm_window_register): collectives on buffers in
windows read and write the ranks' memory directly (see ppuccl.h)."""
import ctypes
import weakref

from ._buffers import _NUMPY, as_buffer
from ._lib import lib
from .errors import check


def _free(ptr):
    lib.ppu_mem_free(ptr)


def mem_alloc(shape, dtype="float32", torch=False):
    """A new array of shape and dtype (numpy names) in memory the ranks of a
    server can map; a torch tensor over it with torch=True. The memory is
    freed when the last array, view or tensor over it is gone (a window
    keeps its array alive until deregistered)."""
    import numpy as np
    dt = np.dtype(dtype)
    if dt.name not in _NUMPY:
        raise TypeError(f"mem_alloc: dtype {dt.name} is not one ppuccl supports "
                        f"({', '.join(_NUMPY)})")
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (int(shape),)
    count = 1
    for s in shape:
        if int(s) < 0:
            raise ValueError(f"mem_alloc: shape {shape} has a negative dimension")
        count *= int(s)
    nbytes = max(count * dt.itemsize, 1)
    ptr = ctypes.c_void_p()
    check(lib.ppu_mem_alloc(nbytes, ctypes.byref(ptr)), "ppu_mem_alloc")
    raw = (ctypes.c_char * nbytes).from_address(ptr.value)
    weakref.finalize(raw, _free, ptr.value)
    arr = np.frombuffer(raw, dtype=dt, count=count).reshape(shape)
    if torch:
        import torch as _torch
        return _torch.from_numpy(arr)
    return arr


class Window:
    """A registered window (ppu_comm_window_register); deregister() or use
    it as a context manager."""

    def __init__(self, comm, buf):
        fn = "ppu_comm_window_register"
        b = as_buffer(buf, fn, "buf", writable=True)
        self._comm, self._buf = comm, buf  # keeps the memory alive
        h = comm.handle_for(fn)
        win = ctypes.c_void_p()
        check(lib.ppu_comm_window_register(h, b.ptr, b.count * b.itemsize, ctypes.byref(win)),
              fn, h)
        self._win = win.value

    def deregister(self):
        if self._win is None:
            return
        fn = "ppu_comm_window_deregister"
        h = self._comm.handle_for(fn)
        win, self._win = self._win, None
        check(lib.ppu_comm_window_deregister(h, win), fn, h)
        self._buf = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.deregister()
        return False
