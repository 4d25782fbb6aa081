"""ppu_stream_t: an in-order queue of calls served by a library thread."""
import ctypes
import threading

from ._lib import Result, lib
from .errors import PpuError, check


class Stream:
    """A ppuccl stream. Buffers of queued calls are kept alive until a
    synchronize() or query() sees the stream idle."""

    def __init__(self):
        h = ctypes.c_void_p()
        check(lib.ppu_stream_create(ctypes.byref(h)), "ppu_stream_create")
        self._h = h.value
        self._keep = []
        self._lock = threading.Lock()
        self._comm_handle = None  # the last communicator that queued work

    @property
    def handle(self):
        if self._h is None:
            raise PpuError(Result.INVALID_USAGE, "the stream was destroyed")
        return self._h

    def keep(self, objs, comm_handle=None):
        """Holds objs until the stream's queued work has finished."""
        with self._lock:
            self._keep.append(objs)
            self._comm_handle = comm_handle or self._comm_handle

    def _release(self, upto):
        with self._lock:
            del self._keep[:upto]

    def synchronize(self, comm=None):
        """Waits for the queued work; raises the first error it raised."""
        h = self.handle
        with self._lock:
            n = len(self._keep)
        rc = lib.ppu_stream_synchronize(h)
        self._release(n)
        check(rc, "ppu_stream_synchronize",
              comm._handle if comm is not None else self._comm_handle)

    def query(self):
        """True when idle, False while work is queued; raises a queued error."""
        h = self.handle
        with self._lock:
            n = len(self._keep)
        rc = lib.ppu_stream_query(h)
        if rc == Result.IN_PROGRESS:
            return False
        self._release(n)
        check(rc, "ppu_stream_query", self._comm_handle)
        return True

    def drained(self):
        """True when every call queued here was seen finished by an earlier
        synchronize() or query(): idle for sure, without asking the library.
        False means "ask query()" (work may still be queued)."""
        return not self._keep

    def destroy(self):
        """Waits for queued work, then frees the stream (idempotent)."""
        if self._h is not None:
            h, self._h = self._h, None
            lib.ppu_stream_destroy(h)
            with self._lock:
                self._keep.clear()

    close = destroy

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()
