"""Tracks the calls a process group queued on its ppuccl stream and
completes them: whoever waits synchronizes the stream itself, and a helper
thread fulfils the torch futures nobody waits on (DDP's buckets)."""
import collections
import threading

import torch

from ._lib import Result
from .errors import PpuError


class Job:
    """One queued call: its result, a copy-out to run once it is done, and
    the buffers to keep alive until then."""
    __slots__ = ("seq", "result", "finish", "keep", "fut", "error", "popped", "done", "settled")

    def __init__(self, result, finish=None, keep=None):
        self.result, self.finish, self.keep = result, finish, keep
        self.seq = self.fut = self.error = None
        self.popped = self.done = self.settled = False

    @property
    def attached(self):
        """Whether its call was queued on the stream (and the job tracked)."""
        return self.seq is not None


class Tracker:
    """Jobs in queue order; drain() synchronizes the stream and completes
    every job queued before it began (safe from several threads)."""

    def __init__(self, stream, comm):
        self._stream, self._comm = stream, comm
        self._pending = collections.deque()
        self._seq = 0
        self._cv = threading.Condition()
        self._watched = 0  # jobs not yet taken by a drain that have a future
        self._stop = False
        self.error = None  # the first failure; later calls refuse to run
        self._thread = threading.Thread(target=self._run, name="ppuccl-completion", daemon=True)
        self._thread.start()

    def add(self, result, finish=None, keep=None):
        """A Job for the call just queued on the stream."""
        return self.attach(Job(result, finish, keep))

    def attach(self, job):
        """Tracks job, whose call was just queued on the stream."""
        with self._cv:
            job.seq = self._seq
            self._seq += 1
            self._pending.append(job)
        return job

    def idle(self):
        """Whether nothing is queued or unfinished: a call may run on the
        caller's thread without passing one queued before it."""
        if self._pending or self.error is not None:
            return False
        if self._stream.drained():  # no library call needed (~1 us saved)
            return True
        try:
            return self._stream.query()
        except PpuError:  # a queued failure: the queued path reports it
            return False

    def completed(self, result):
        """A finished Job for a call that ran on the caller's thread."""
        job = Job(result)
        job.done = job.popped = True
        return job

    def failed(self, err):
        """A call on the caller's thread failed: later calls refuse."""
        with self._cv:
            if self.error is None:
                self.error = err

    def fail(self, job, err):
        """Completes a job whose call could not be queued."""
        with self._cv:
            job.error, job.done, job.popped = err, True, True
            job.keep = job.finish = None
            self._cv.notify_all()
        self._settle(job)

    def future(self, job):
        """The torch Future of job, fulfilled by the helper thread if need be."""
        assert job.attached or job.done, "a job's future before its call was queued"
        with self._cv:
            if job.fut is None:
                job.fut = torch.futures.Future()
                if not job.popped:
                    self._watched += 1
                    self._cv.notify_all()
            done = job.done
        if done:
            self._settle(job)
        return job.fut

    def wait(self, job):
        """Blocks until job is done; raises its error."""
        if not job.done:
            self.drain()
            with self._cv:
                while not job.done:
                    self._cv.wait()
        if job.error is not None:
            raise job.error

    def poll(self, job):
        """Whether job is done, without blocking."""
        if not job.done:
            try:
                idle = self._stream.query()
            except PpuError:  # failed work is finished work; drain reports it
                idle = True
            if idle:
                self.drain()
        return job.done

    def drain(self):
        with self._cv:
            hi = self._seq
        err = None
        try:
            self._stream.synchronize(self._comm)
            if self._comm.async_error() != Result.SUCCESS:
                raise PpuError(self._comm.async_error(), self._comm.last_error())
        except PpuError as e:
            err = e
        with self._cv:
            if err is not None and self.error is None:
                self.error = err
            err = self.error
            jobs = []
            while self._pending and self._pending[0].seq < hi:
                job = self._pending.popleft()
                job.popped = True
                self._watched -= job.fut is not None
                jobs.append(job)
        for job in jobs:
            self._complete(job, err)
        if jobs:
            with self._cv:
                for job in jobs:
                    job.done = True
                self._cv.notify_all()
            for job in jobs:
                self._settle(job)

    @staticmethod
    def _complete(job, err):
        job.error = err
        if err is None and job.finish is not None:
            try:
                job.finish()
            except Exception as e:  # a copy-out failed: report it on the job
                job.error = e
        job.keep = job.finish = None

    def _settle(self, job):
        """Fulfils job's future once (job is done)."""
        with self._cv:
            fut = job.fut
            if fut is None or job.settled:
                return
            job.settled = True
        if job.error is not None:
            fut.set_exception(job.error)
        else:
            fut.set_result(job.result)

    def _run(self):
        while True:
            with self._cv:
                while not self._watched and not self._stop:
                    self._cv.wait()
                if self._stop and not self._pending:
                    return
            self.drain()

    def close(self):
        """Completes what is queued, then ends the helper thread."""
        self.drain()
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join()
