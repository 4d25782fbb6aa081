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
        self._keep = []  # entry i: what call self._released + i holds
        self._released = 0  # entries let go so far
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

    def _mark(self):
        """Where the kept list ends now (before asking the library)."""
        with self._lock:
            return self._released + len(self._keep)

    def _release(self, upto):
        """Lets go of what calls before mark upto held. By absolute count:
        a synchronize and a query on two threads, with a call queued
        between them, must not drop the new call's entry."""
        with self._lock:
            k = upto - self._released
            if k > 0:
                del self._keep[:k]
                self._released = upto

    def synchronize(self, comm=None):
        """Waits for the queued work; raises the first error it raised."""
        h = self.handle
        n = self._mark()
        rc = lib.ppu_stream_synchronize(h)
        self._release(n)
        check(rc, "ppu_stream_synchronize",
              comm._handle if comm is not None else self._comm_handle)

    def query(self):
        """True when idle, False while work is queued; raises a queued error."""
        h = self.handle
        n = self._mark()
        rc = lib.ppu_stream_query(h)
        if rc == Result.IN_PROGRESS:
            return False
        self._release(n)
        check(rc, "ppu_stream_query", self._comm_handle)
        return True

    def drained(self):
        """True when every call kept here was seen finished by an earlier
        synchronize() or query(): idle, without asking the library, for a
        caller that serialises what is queued on this stream (the torch
        backend's issue lock). Another thread's call may be queued and not
        yet kept. False means "ask query()"."""
        with self._lock:
            return not self._keep

    def destroy(self):
        """Waits for queued work, then frees the stream (idempotent)."""
        if self._h is not None:
            h, self._h = self._h, None
            lib.ppu_stream_destroy(h)
            with self._lock:
                self._released += len(self._keep)
                self._keep.clear()

    close = destroy

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()
