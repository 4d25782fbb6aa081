#!/usr/bin/python3
"""Plot ppu-sim's JSON: busbw against size (log x), one line per algorithm.

usage: plot_sim.py RESULT.json OUT.png [MORE.json ...]
With several JSON files (one per cluster size): one line per file, the
fastest algorithm's busbw at each size."""
import json
import sys

import os

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from plotting import label_size, plt  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    inputs = [sys.argv[1]] + sys.argv[3:]
    out = sys.argv[2]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    title = None
    first_chips = None
    allx = []
    for path in inputs:
        with open(path) as f:
            d = json.load(f)
        p = d["params"]
        lines = {}
        for r in d["rows"]:
            if "busbw" not in r:
                continue
            if len(inputs) == 1:
                lines.setdefault(r["algo"], {})[r["bytes"]] = r["busbw"]
            else:  # one line per cluster: the fastest algorithm at each size
                line = lines.setdefault("%d chips" % p["ranks"], {})
                line[r["bytes"]] = max(line.get(r["bytes"], 0), r["busbw"])
        for name, pts in sorted(lines.items(), key=lambda kv: kv[0]):
            xs = sorted(pts)
            allx.extend(xs)
            ax.plot(xs, [pts[x] for x in xs], marker="o", ms=3, label=name)
        if first_chips is None:
            first_chips = p["ranks"]
        if len(inputs) == 1:
            title = "%s on %d chips (%d x %s), ppu-sim" % (p["collective"], p["ranks"],
                                                             p["servers"], p["wiring"])
        else:
            title = "%s busbw, %d to %d chips (%s servers), fastest algorithm, ppu-sim" % (
                p["collective"], first_chips, p["ranks"], p["wiring"])
    ax.set_xscale("log", base=2)
    ticks = ax.get_xticks()
    ax.set_xticks([t for t in ticks if t >= 1])
    ax.set_xticklabels([label_size(int(t)) for t in ax.get_xticks()])
    if allx:
        ax.set_xlim(min(allx) / 1.5, max(allx) * 1.5)
    ax.set_xlabel("size (bytes)")
    ax.set_ylabel("busbw (GB/s)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
