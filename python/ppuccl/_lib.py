"""Finds libppuccl.so and declares its C functions for ctypes."""
import ctypes
import ctypes.util
import enum
import os

UNIQUE_ID_BYTES = 128
SPLIT_NOCOLOR = -1


class Result(enum.IntEnum):
    """ppu_result_t."""
    SUCCESS = 0
    SYSTEM_ERROR = 1
    INTERNAL_ERROR = 2
    INVALID_ARGUMENT = 3
    INVALID_USAGE = 4
    REMOTE_ERROR = 5
    IN_PROGRESS = 6
    TIMEOUT = 7
    ABORTED = 8


class DataType(enum.IntEnum):
    """ppu_datatype_t."""
    INT8 = 0
    UINT8 = 1
    INT32 = 2
    UINT32 = 3
    INT64 = 4
    UINT64 = 5
    FLOAT16 = 6
    BFLOAT16 = 7
    FLOAT32 = 8
    FLOAT64 = 9


class Op(enum.IntEnum):
    """ppu_redop_t."""
    SUM = 0
    PROD = 1
    MAX = 2
    MIN = 3
    AVG = 4


class UniqueId(ctypes.Structure):
    """ppu_unique_id_t: 128 opaque bytes."""
    _fields_ = [("internal", ctypes.c_ubyte * UNIQUE_ID_BYTES)]


def _candidates():
    """Where to look, in order: PPUCCL_LIB, the source tree's build, the system."""
    env = os.environ.get("PPUCCL_LIB")
    if env:
        return [os.path.join(env, "libppuccl.so") if os.path.isdir(env) else env], True
    here = os.path.dirname(os.path.abspath(__file__))
    tree = os.path.normpath(os.path.join(here, "..", "..", "build", "lib", "libppuccl.so"))
    system = ctypes.util.find_library("ppuccl") or "libppuccl.so.0"
    return [tree, system], False


def _load():
    paths, from_env = _candidates()
    errors = []
    for p in paths:
        if os.sep in p and not os.path.exists(p):
            errors.append(f"{p}: no such file")
            continue
        try:
            return ctypes.CDLL(p)
        except OSError as e:
            errors.append(str(e))
        if from_env:
            break
    raise ImportError("ppuccl: cannot load libppuccl.so (set PPUCCL_LIB to the library or "
                      "build it with cmake); tried: " + "; ".join(errors))


lib = _load()

_c = ctypes
_R = _c.c_int
_P = _c.c_void_p
_S = _c.c_size_t
_I = _c.c_int
_SIGS = {
    "ppu_get_version": (_R, [_c.POINTER(_I)]),
    "ppu_get_error_string": (_c.c_char_p, [_I]),
    "ppu_get_last_error": (_c.c_char_p, [_P]),
    "ppu_datatype_size": (_S, [_I]),
    "ppu_get_unique_id": (_R, [_c.POINTER(UniqueId)]),
    "ppu_comm_init_rank": (_R, [_c.POINTER(_P), _I, UniqueId, _I]),
    "ppu_comm_init_all": (_R, [_c.POINTER(_P), _I]),
    "ppu_comm_init_env": (_R, [_c.POINTER(_P)]),
    "ppu_comm_destroy": (_R, [_P]),
    "ppu_comm_abort": (_R, [_P]),
    "ppu_comm_count": (_R, [_P, _c.POINTER(_I)]),
    "ppu_comm_user_rank": (_R, [_P, _c.POINTER(_I)]),
    "ppu_comm_get_async_error": (_R, [_P, _c.POINTER(_I)]),
    "ppu_stream_create": (_R, [_c.POINTER(_P)]),
    "ppu_stream_synchronize": (_R, [_P]),
    "ppu_stream_query": (_R, [_P]),
    "ppu_stream_destroy": (_R, [_P]),
    "ppu_allreduce": (_R, [_P, _P, _S, _I, _I, _P, _P]),
    "ppu_broadcast": (_R, [_P, _P, _S, _I, _I, _P, _P]),
    "ppu_reduce": (_R, [_P, _P, _S, _I, _I, _I, _P, _P]),
    "ppu_allgather": (_R, [_P, _P, _S, _I, _P, _P]),
    "ppu_reduce_scatter": (_R, [_P, _P, _S, _I, _I, _P, _P]),
    "ppu_alltoall": (_R, [_P, _P, _S, _I, _P, _P]),
    "ppu_alltoallv": (_R, [_P, _c.POINTER(_S), _c.POINTER(_S), _P, _c.POINTER(_S),
                           _c.POINTER(_S), _I, _P, _P]),
    "ppu_send": (_R, [_P, _S, _I, _I, _P, _P]),
    "ppu_recv": (_R, [_P, _S, _I, _I, _P, _P]),
    "ppu_barrier": (_R, [_P, _P]),
    "ppu_group_start": (_R, []),
    "ppu_group_end": (_R, []),
    "ppu_comm_split": (_R, [_P, _I, _I, _c.POINTER(_P)]),
    "ppu_mem_alloc": (_R, [_S, _c.POINTER(_P)]),
    "ppu_mem_free": (_R, [_P]),
    "ppu_comm_window_register": (_R, [_P, _P, _S, _c.POINTER(_P)]),
    "ppu_comm_window_deregister": (_R, [_P, _P]),
}
for _name, (_res, _args) in _SIGS.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def error_string(code):
    """ppu_get_error_string for a result code."""
    return lib.ppu_get_error_string(int(code)).decode()


def last_error(handle=None):
    """ppu_get_last_error for a communicator handle (or this thread)."""
    return lib.ppu_get_last_error(handle).decode(errors="replace")
