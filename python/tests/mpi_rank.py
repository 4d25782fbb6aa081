"""One rank under mpirun (test_mpirun.py): the binding from the
environment, then the "ppu" backend with env_from_mpirun()."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import ppuccl  # noqa: E402
import ppuccl.torch  # noqa: E402

comm = ppuccl.Communicator.from_env()
n = comm.size
a = comm.allreduce(np.full(4, comm.rank + 1, np.int64))
assert (a == n * (n + 1) // 2).all(), a
comm.destroy()
ppuccl.torch.env_from_mpirun()
dist.init_process_group("ppu")
t = torch.full((3,), float(dist.get_rank()))
dist.all_reduce(t, op=dist.ReduceOp.MAX)
assert t.tolist() == [n - 1.0] * 3, t
dist.destroy_process_group()
print(f"mpi_rank {os.environ['RANK']}: ok")
