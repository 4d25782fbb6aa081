#!/usr/bin/env python3
"""Trains a small MLP with DistributedDataParallel on synthetic data from a
fixed seed, for a fixed number of steps, on backend "ppu" (ppuccl) or
"gloo". Rank 0 prints the time per step and can save the final parameters.

Start the ranks with the env:// variables, e.g.
    /usr/bin/python3 python/launch.py -n 4 examples/train_ddp.py --backend ppu
"""
import argparse
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))


def make_model(inp, hidden, out):
    return torch.nn.Sequential(
        torch.nn.Linear(inp, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, out))


def make_data(seed, n, inp, out):
    """Inputs and class labels of a fixed random teacher network."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, inp, generator=g)
    w = torch.randn(inp, out, generator=g)
    return x, (x @ w).argmax(dim=1)


def main():
    ap = argparse.ArgumentParser(description="DDP training of a small MLP")
    ap.add_argument("--backend", default="ppu", choices=["ppu", "gloo"])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    ap.add_argument("--batch", type=int, default=32, help="samples per rank per step")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--inp", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    ap.add_argument("--save", help="rank 0 writes the final parameters here (torch.save)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    if a.backend == "ppu":
        import ppuccl.torch  # noqa: F401  registers "ppu"
    dist.init_process_group(a.backend)
    rank, world = dist.get_rank(), dist.get_world_size()

    torch.manual_seed(a.seed)
    model = DDP(make_model(a.inp, a.hidden, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = make_data(a.seed + 1, a.batch * world * a.steps, a.inp, 10)
    loss_fn = torch.nn.CrossEntropyLoss()

    times = []
    for step in range(a.steps):
        lo = (step * world + rank) * a.batch
        xb, yb = x[lo:lo + a.batch], y[lo:lo + a.batch]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()  # DDP all-reduces gradient buckets here, overlapping backward
        opt.step()
        times.append(time.perf_counter() - t0)

    timed = sorted(times[a.warmup:] or times)
    med = timed[len(timed) // 2]
    mean = sum(timed) / len(timed)
    total = torch.tensor([loss.item()])
    dist.all_reduce(total)
    if rank == 0:
        nparam = sum(p.numel() for p in model.parameters())
        print(f"train_ddp: backend {a.backend}, {world} ranks, {a.steps} steps, {nparam} "
              f"parameters, final loss {total.item() / world:.6f}")
        print(f"train_ddp: time per step {med * 1e3:.2f} ms median, {mean * 1e3:.2f} ms mean "
              f"(steps {a.warmup}..{a.steps - 1})")
        if a.save:
            torch.save({k: v.detach().clone() for k, v in model.module.state_dict().items()},
                       a.save)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
