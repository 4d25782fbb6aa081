"""What the project's plots share (sim/plot_sim.py, scripts/plot_compare.py):
matplotlib without a display, and byte sizes as axis labels."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label_size(b):
    """8 -> "8B", 65536 -> "64K", 3 << 30 -> "3G" (powers of 1024)."""
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if b >= div:
            return "%g%s" % (b / div, unit)
    return "%dB" % b

__all__ = ["plt", "label_size"]
