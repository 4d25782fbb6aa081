"""Importing ppuccl.torch registers the torch.distributed backend "ppu":
torch.distributed.init_process_group("ppu") then runs collectives on
ppuccl. Rank 0 of each group puts ppuccl's unique id in the group's store."""
import atexit
import os
import sys
import weakref

import torch.distributed as dist

from ._process_group import PPUWork, ProcessGroupPPU, UnsupportedError

BACKEND = "ppu"
_groups = weakref.WeakSet()


def _create(store, rank, size, timeout):
    pg = ProcessGroupPPU(store, rank, size, timeout)
    _groups.add(pg)
    return pg


def shutdown(wait=True):
    """Frees the ppuccl resources of every "ppu" group of this process
    (at exit with wait=False: calls still running are aborted)."""
    for pg in list(_groups):
        try:
            pg.shutdown(wait)
        except Exception as e:  # one broken group must not keep the others
            print(f"ppuccl.torch: shutting down a group failed: {e}", file=sys.stderr)


def env_from_mpirun(master_addr="127.0.0.1"):
    """Fills RANK/WORLD_SIZE/LOCAL_RANK from Open MPI's variables and a
    default MASTER_ADDR, so init_process_group("ppu") works under mpirun
    (export MASTER_PORT with mpirun -x)."""
    for ours, mpi in (("RANK", "OMPI_COMM_WORLD_RANK"), ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"),
                      ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK")):
        if mpi in os.environ:
            os.environ.setdefault(ours, os.environ[mpi])
    os.environ.setdefault("MASTER_ADDR", master_addr)


if BACKEND.upper() not in dist.Backend._plugins:
    dist.Backend.register_backend(BACKEND, _create)
    atexit.register(shutdown, False)

__all__ = ["BACKEND", "PPUWork", "ProcessGroupPPU", "UnsupportedError", "shutdown",
           "env_from_mpirun"]
