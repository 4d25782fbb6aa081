"""examples/train_ddp.py with 4 ranks on "ppu" and on "gloo": the final
parameters must agree to floating-point tolerance."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LAUNCH = os.path.join(ROOT, "python", "launch.py")
TRAIN = os.path.join(ROOT, "examples", "train_ddp.py")
RANKS, STEPS = 4, 30


def train(backend, out):
    cmd = [sys.executable, LAUNCH, "-n", str(RANKS), "--timeout", "120", TRAIN,
           "--backend", backend, "--steps", str(STEPS), "--save", out]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if p.returncode:
        raise AssertionError(f"{backend} training failed ({p.returncode}):\n{p.stdout}\n"
                             f"{p.stderr[-3000:]}")
    m = re.search(r"time per step ([\d.]+) ms median", p.stdout)
    return float(m.group(1)), p.stdout


class DDP(unittest.TestCase):
    def test_ppu_matches_gloo(self):
        with tempfile.TemporaryDirectory() as d:
            ms = {}
            for b in ("ppu", "gloo"):
                ms[b], _ = train(b, os.path.join(d, b + ".pt"))
            ppu = torch.load(os.path.join(d, "ppu.pt"))
            gloo = torch.load(os.path.join(d, "gloo.pt"))
        self.assertEqual(ppu.keys(), gloo.keys())
        diff = max((ppu[k] - gloo[k]).abs().max().item() for k in ppu)
        moved = max((ppu[k]).abs().max().item() for k in ppu)
        print(f"\nDDP {RANKS} ranks, {STEPS} steps: ppu {ms['ppu']:.2f} ms/step, "
              f"gloo {ms['gloo']:.2f} ms/step, largest parameter difference {diff:.3g}",
              file=sys.stderr)
        self.assertGreater(moved, 0)
        self.assertLess(diff, 1e-5, "ppu and gloo trained to different parameters")


if __name__ == "__main__":
    unittest.main()
