#!/usr/bin/python3
"""Busbw against size (log x), one line per run, from the perf tools' -J
JSON (out-of-place rows) or bound_allreduce's text rows.

usage: plot_compare.py OUT.png TITLE LABEL=FILE[,FILE...] [LABEL=...]
A FILE ending in .json is a perf tool's -J output; anything else is
bound_allreduce's output (size in column 1, busbw in column 5). Several
files for one label (rounds of the same run) plot the median per size."""
import json
import statistics
import sys

import os

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from plotting import label_size, plt  # noqa: E402


def series(path):
    if path.endswith(".json"):
        with open(path) as f:
            rows = json.load(f)["rows"]
        return [(r["size"], r["out_of_place"]["busbw_gbps"]) for r in rows
                if "out_of_place" in r]
    pts = []
    with open(path) as f:
        for line in f:
            w = line.split()
            if w and not line.startswith("#") and w[0].isdigit() and len(w) >= 5:
                pts.append((int(w[0]), float(w[4])))
    return pts


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, title = sys.argv[1], sys.argv[2]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    sizes = set()
    for arg in sys.argv[3:]:
        label, _, paths = arg.partition("=")
        per = {}
        for path in paths.split(","):
            for size, bw in series(path):
                per.setdefault(size, []).append(bw)
        pts = sorted((size, statistics.median(v)) for size, v in per.items())
        if not pts:
            continue
        xs, ys = zip(*pts)
        sizes.update(xs)
        style = "--" if "bound" in label else "-"
        ax.plot(xs, ys, style, marker="o", markersize=3, label=label)
    ax.set_xscale("log", base=2)
    ticks = sorted(sizes)[::max(1, len(sizes) // 12)]
    ax.set_xticks(ticks, [label_size(t) for t in ticks])
    ax.set_xlabel("size (bytes)")
    ax.set_ylabel("busbw (GB/s)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("# wrote " + out)


if __name__ == "__main__":
    main()
