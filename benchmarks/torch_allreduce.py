#!/usr/bin/env python3
"""all_reduce latency and bandwidth through torch.distributed, for the
"ppu" (ppuccl) and "gloo" backends. Run one rank per process:

    /usr/bin/python3 python/launch.py -n 4 benchmarks/torch_allreduce.py --backend ppu

Rank 0 prints, per size, the median over repeats of the time per call
(each repeat times a loop of calls), algorithm bandwidth (bytes / time)
and bus bandwidth (algbw * 2(n-1)/n, as nccl-tests count it)."""
import argparse
import os
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

# bytes, calls per repeat, repeats
PLAN = {8: (50, 11), 1 << 20: (10, 9), 25 << 20: (2, 7)}


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1].upper()] if s[-1].upper() in mult else int(s)


def bench(nbytes, calls, repeats):
    t = torch.ones(max(1, nbytes // 4))
    for _ in range(2):
        dist.all_reduce(t)
    times = []
    for _ in range(repeats):
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(calls):
            dist.all_reduce(t)
        times.append((time.perf_counter() - t0) / calls)
    # every rank's median; the slowest rank decides
    med = torch.tensor([sorted(times)[len(times) // 2]], dtype=torch.float64)
    dist.all_reduce(med, op=dist.ReduceOp.MAX)
    return med.item()


def main():
    ap = argparse.ArgumentParser(description="all_reduce through torch.distributed")
    ap.add_argument("--backend", default="ppu", choices=["ppu", "gloo"])
    ap.add_argument("--sizes", default="8,1M,25M", help="comma list of byte sizes")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.backend == "ppu":
        import ppuccl.torch  # noqa: F401
    dist.init_process_group(a.backend)
    n, rank = dist.get_world_size(), dist.get_rank()
    if rank == 0:
        print(f"torch_allreduce: backend {a.backend}, {n} ranks, float32 sum")
        print(f"{'bytes':>10} {'time_us':>10} {'algbw_GB/s':>11} {'busbw_GB/s':>11}")
    for s in a.sizes.split(","):
        nbytes = parse_size(s)
        calls, repeats = PLAN.get(nbytes, (5, 7))
        sec = bench(nbytes, calls, repeats)
        if rank == 0:
            alg = nbytes / sec / 1e9
            print(f"{nbytes:>10} {sec * 1e6:>10.1f} {alg:>11.3f} {alg * 2 * (n - 1) / n:>11.3f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
