"""ppuccl for Python: communicators, collectives and streams over
libppuccl.so (ctypes), on numpy arrays and CPU torch tensors in place.
`import ppuccl.torch` registers the torch.distributed backend "ppu"."""
from ._lib import SPLIT_NOCOLOR, UNIQUE_ID_BYTES, DataType, Op, Result, error_string
from ._lib import lib as _lib_handle
from .comm import (Communicator, get_unique_id, group, group_end, group_start, parse_op,
                   version)
from .errors import PpuError
from .memory import Window, mem_alloc
from .stream import Stream

SUM, PROD, MAX, MIN, AVG = Op.SUM, Op.PROD, Op.MAX, Op.MIN, Op.AVG
library_path = _lib_handle._name

__all__ = ["Communicator", "Stream", "PpuError", "Result", "DataType", "Op", "get_unique_id",
           "group", "group_start", "group_end", "version", "error_string", "parse_op",
           "SUM", "PROD", "MAX", "MIN", "AVG", "SPLIT_NOCOLOR", "UNIQUE_ID_BYTES",
           "library_path", "mem_alloc", "Window"]
