"""Bad input raises clear errors: wrong dtypes, mismatched sizes,
non-contiguous buffers, destroyed communicators and groups, unsupported
torch.distributed calls."""
import os
import unittest

import numpy as np
import torch
import torch.distributed as dist

import ppuccl
import ppuccl.torch
from _ranks import run_ranks

PpuError = ppuccl.PpuError


class BindingErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.comm = ppuccl.Communicator(1, ppuccl.get_unique_id(), 0)

    @classmethod
    def tearDownClass(cls):
        cls.comm.destroy()

    def raises(self, exc, pattern, fn, *args, **kw):
        with self.assertRaisesRegex(exc, pattern) as cm:
            fn(*args, **kw)
        return cm.exception

    def test_wrong_dtype(self):
        c = self.comm
        self.raises(TypeError, r"ppu_allreduce: sendbuf has dtype \|b1 \(bool\), which ppuccl "
                    "does not support", c.allreduce, np.zeros(3, bool))
        self.raises(TypeError, "complex64", c.allreduce, np.zeros(3, np.complex64))
        self.raises(TypeError, "native byte order", c.allreduce, np.zeros(3, ">f4"))
        self.raises(TypeError, r"torch\.bool, which ppuccl does not support", c.allreduce,
                    torch.zeros(3, dtype=torch.bool))
        self.raises(TypeError, "torch.int16", c.broadcast, torch.zeros(3, dtype=torch.int16))
        self.raises(TypeError, "sendbuf is float32 but recvbuf is float64", c.allreduce,
                    np.zeros(3, np.float32), np.zeros(3, np.float64))
        self.raises(TypeError, "must be a numpy array or a CPU torch tensor, not list",
                    c.allreduce, [1.0, 2.0])

    def test_mismatched_sizes(self):
        c, f = self.comm, np.float32
        self.raises(ValueError, "ppu_allreduce: recvbuf has 4 elements; it must have 3",
                    c.allreduce, np.zeros(3, f), np.zeros(4, f))
        self.raises(ValueError, "ppu_allgather: recvbuf has 2 elements; it must have 3",
                    c.allgather, np.zeros(3, f), np.zeros(2, f))
        self.raises(ValueError, "ppu_reduce_scatter: sendbuf has 5 elements; it must have 3",
                    c.reduce_scatter, np.zeros(5, f), np.zeros(3, f))
        self.raises(ValueError, "ppu_alltoallv: counts and displacements reach element 9 of "
                    "sendbuf, which has 4", c.alltoallv, np.zeros(4, f), [4], [5],
                    np.zeros(4, f), [4], [0])
        self.raises(ValueError, "sendcounts must be 1 non-negative integers", c.alltoallv,
                    np.zeros(4, f), [2, 2], [0, 2], np.zeros(4, f), [4], [0])

    def test_not_contiguous_or_read_only(self):
        c = self.comm
        self.raises(ValueError, "ppu_allreduce: sendbuf is not C-contiguous", c.allreduce,
                    np.zeros((4, 4), np.float32)[:, 1])
        self.raises(ValueError, r"sendbuf is not contiguous \(shape \(4,\), strides \(4,\)\); "
                    r"pass t\.contiguous\(\)", c.allreduce, torch.zeros(4, 4)[:, 0])
        self.raises(ValueError, "not contiguous", c.allreduce, torch.zeros(3, 4).t())
        # after a good float32 tensor (what the fast path learns from), the
        # same dtype strided, sparse or as a subclass is still checked
        c.allreduce(torch.zeros(3))
        self.raises(ValueError, "not contiguous", c.allreduce, torch.zeros(3, 4).t())
        self.raises(ValueError, "has layout torch.sparse_coo", c.allreduce,
                    torch.zeros(3).to_sparse())
        self.raises(ValueError, "not contiguous", c.allreduce,
                    torch.nn.Parameter(torch.zeros(3, 4).t()))
        ro = np.zeros(3, np.float32)
        ro.flags.writeable = False
        self.raises(ValueError, "recvbuf is read-only", c.allreduce, np.zeros(3, np.float32), ro)

    def test_library_errors_carry_its_message_and_code(self):
        c = self.comm
        e = self.raises(PpuError, r"ppu_broadcast: root is 3; it must be 0\.\.0",
                        c.broadcast, np.zeros(2, np.float32), root=3)
        self.assertEqual(e.code, ppuccl.Result.INVALID_ARGUMENT)
        self.assertIn("PPU_INVALID_ARGUMENT", str(e))
        e = self.raises(PpuError, "peer is the calling rank 0", c.send, np.zeros(2, np.int8), 0)
        self.assertEqual(e.code, ppuccl.Result.INVALID_USAGE)
        self.raises(PpuError, "ppu_comm_init_rank: rank is 5; it must be 0..1",
                    ppuccl.Communicator, 2, ppuccl.get_unique_id(), 5)
        self.raises(PpuError, "no group is open", ppuccl.group_end)
        self.raises(ValueError, "unknown reduction op 'xor'", c.allreduce,
                    np.zeros(2, np.float32), op="xor")
        self.raises(ValueError, "unique_id must be 128 bytes", ppuccl.Communicator, 1, b"x", 0)
        env = {k: os.environ.pop(k) for k in ("PPU_RANK", "PPU_WORLD_SIZE") if k in os.environ}
        try:
            self.raises(PpuError, "set PPU_RANK and PPU_WORLD_SIZE",
                        ppuccl.Communicator.from_env)
        finally:
            os.environ.update(env)

    def test_destroyed_communicator_and_stream(self):
        c = ppuccl.Communicator(1, ppuccl.get_unique_id(), 0)
        c.destroy()
        c.destroy()  # idempotent
        e = self.raises(PpuError, "ppu_allreduce: the communicator was destroyed",
                        c.allreduce, np.zeros(2, np.float32))
        self.assertEqual(e.code, ppuccl.Result.INVALID_USAGE)
        self.raises(PpuError, "ppu_barrier: the communicator was destroyed", c.barrier)
        a = ppuccl.Communicator(1, ppuccl.get_unique_id(), 0)
        a.abort()
        self.raises(PpuError, "destroyed or aborted", a.split, 0)
        s = ppuccl.Stream()
        s.destroy()
        self.raises(PpuError, "the stream was destroyed", self.comm.barrier, stream=s)


def _mismatch(rank, n):
    """Ranks that call different counts fail with the library's sentence."""
    os.environ["PPU_TIMEOUT_MS"] = "5000"
    dist.init_process_group("ppu")
    w = dist.all_reduce(torch.ones(10 * (rank + 1)), async_op=True)
    try:
        w.wait()
    except Exception as e:  # the Work carries the stream's error
        assert "mismatched calls" in str(e) or "PPU_" in str(e), e
    else:
        raise AssertionError("mismatched all_reduce did not fail")
    try:
        dist.all_reduce(torch.ones(3))
    except PpuError as e:
        assert "an earlier call failed" in str(e), e
    else:
        raise AssertionError("a call after a failure did not fail")


def _backend_errors(rank, n):
    dist.init_process_group("ppu")
    t = torch.ones(4)

    def expect(exc, text, fn, *a, **kw):
        try:
            fn(*a, **kw)
        except exc as e:
            assert text in str(e), f"{text!r} not in {str(e)!r}"
        else:
            raise AssertionError(f"no {exc.__name__} for {text!r}")

    expect(RuntimeError, "ppu backend all_reduce: ReduceOp.BAND is not supported",
           dist.all_reduce, t, op=dist.ReduceOp.BAND)
    expect(RuntimeError, "ppu backend reduce: ReduceOp.BXOR", dist.reduce, t, 0,
           op=dist.ReduceOp.BXOR)
    expect(TypeError, "ppu backend all_reduce: ppu_allreduce: sendbuf has dtype torch.bool",
           dist.all_reduce, torch.ones(3, dtype=torch.bool))
    expect(ValueError, "ppu backend broadcast: ppu_broadcast: sendbuf is not contiguous",
           dist.broadcast, torch.zeros(4, 4)[:, 1], 0)
    expect(ValueError, "ppu backend all_gather: tensors must all be torch.float32 with 4",
           dist.all_gather, [torch.zeros(4), torch.zeros(5)][:n] + [torch.zeros(4)] * (n - 2),
           t)
    expect(ValueError, "the list of outputs has 1 tensors; it must have one per rank",
           dist.all_gather, [torch.zeros(4)], t)
    expect(ValueError, "recvbuf has 5 elements; it must have 8", dist.all_gather_into_tensor,
           torch.zeros(5), t)
    expect(RuntimeError, "ppu backend send: tags are not supported", dist.send, t, 1 - rank,
           tag=3)
    expect(RuntimeError, "a receive from any source is not supported", dist.recv, t)
    dist.barrier()
    sub = dist.new_group([0, 1])
    pg = dist.distributed_c10d._get_default_group()
    pg.shutdown()
    expect(PpuError, "ppu backend all_reduce: the process group was shut down",
           dist.all_reduce, t)
    dist.all_reduce(t, group=sub)  # other groups still work
    dist.destroy_process_group()
    expect(RuntimeError, "Default process group has not been initialized", dist.all_reduce, t)
    expect(PpuError, "ppu backend all_reduce: the process group was destroyed", dist.all_reduce,
           t, group=sub)


class BackendErrors(unittest.TestCase):
    def test_backend_errors(self):
        run_ranks(2, _backend_errors, uid=False)

    def test_mismatched_calls_across_ranks(self):
        run_ranks(2, _mismatch, uid=False)


if __name__ == "__main__":
    unittest.main()
