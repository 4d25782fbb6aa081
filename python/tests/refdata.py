"""Per-rank inputs whose reductions are exact in every datatype, and their
references computed with numpy."""
import numpy as np

NP_DTYPES = ["int8", "uint8", "int32", "uint32", "int64", "uint64", "float16", "float32",
             "float64"]
OPS = ["sum", "prod", "max", "min", "avg"]


def values(op, rank, n, count, dtype="float32"):
    """Rank's input: small integers (products at most 2**n, sums a multiple
    of n so the average is exact)."""
    i = np.arange(count, dtype=np.int64)
    if op == "prod":
        v = 1 + (i + rank) % 2
    elif op in ("sum", "avg"):
        c = rank if rank < n - 1 else -(n - 1) * (n - 2) // 2  # offsets sum to 0
        v = 4 + i % 5 + c
    else:
        v = (i * 7 + rank * 3) % 11
    return v.astype(dtype)


def reference(op, n, count, dtype="float32"):
    """The reduction of every rank's values(op, ...)."""
    x = np.stack([values(op, r, n, count, "int64") for r in range(n)])
    red = {"sum": x.sum(0), "prod": x.prod(0), "max": x.max(0), "min": x.min(0),
           "avg": x.sum(0) // n}[op]
    return red.astype(dtype)


def pattern(rank, count, dtype="float32", salt=0):
    """Distinct small integers per rank and position."""
    return ((np.arange(count) + 13 * rank + salt) % 97).astype(dtype)
