"""Turns numpy arrays and CPU torch tensors into (pointer, count, datatype)
without copying."""
from ._lib import DataType

_NUMPY = {
    "int8": DataType.INT8, "uint8": DataType.UINT8, "int32": DataType.INT32,
    "uint32": DataType.UINT32, "int64": DataType.INT64, "uint64": DataType.UINT64,
    "float16": DataType.FLOAT16, "float32": DataType.FLOAT32, "float64": DataType.FLOAT64,
}
_TORCH = {
    "torch.int8": DataType.INT8, "torch.uint8": DataType.UINT8, "torch.int32": DataType.INT32,
    "torch.int64": DataType.INT64, "torch.float16": DataType.FLOAT16,
    "torch.bfloat16": DataType.BFLOAT16, "torch.float32": DataType.FLOAT32,
    "torch.float64": DataType.FLOAT64,
}


class Buffer:
    """A contiguous host buffer: address, element count, datatype, owner."""
    __slots__ = ("ptr", "count", "dtype", "obj")

    def __init__(self, ptr, count, dtype, obj):
        self.ptr, self.count, self.dtype, self.obj = ptr, count, dtype, obj

    @property
    def itemsize(self):
        return 1 if self.dtype <= DataType.UINT8 else (
            2 if self.dtype in (DataType.FLOAT16, DataType.BFLOAT16) else
            4 if self.dtype in (DataType.INT32, DataType.UINT32, DataType.FLOAT32) else 8)


def _kind(x):
    return type(x).__module__.split(".")[0]


def is_tensor(x):
    return _kind(x) == "torch" and hasattr(x, "data_ptr")


# tensor types, torch.dtype -> DataType and torch.strided, learnt from the
# tensors seen (this module does not import torch): a call through the
# torch backend spends ~0.5 us here instead of ~1.7
_TORCH_TYPES = set()
_TORCH_BY_DTYPE = {}
_STRIDED = []


def as_buffer(x, fn, name, writable=False):
    """x as a Buffer; TypeError/ValueError naming fn and the argument when
    it cannot be used in place."""
    dt = _TORCH_BY_DTYPE.get(x.dtype) if type(x) in _TORCH_TYPES else None
    if dt is not None and x.is_cpu and x.layout is _STRIDED[0] and x.is_contiguous():
        return Buffer(x.data_ptr(), x.numel(), dt, x)  # what _torch_buffer returns
    if is_tensor(x):
        return _torch_buffer(x, fn, name)
    if _kind(x) == "numpy" and hasattr(x, "ctypes"):
        return _numpy_buffer(x, fn, name, writable)
    raise TypeError(f"{fn}: {name} must be a numpy array or a CPU torch tensor, "
                    f"not {type(x).__name__}")


def _torch_buffer(t, fn, name):
    if t.device.type != "cpu":
        raise ValueError(f"{fn}: {name} is on device {t.device}; ppuccl takes CPU tensors")
    if str(t.layout) != "torch.strided":
        raise ValueError(f"{fn}: {name} has layout {t.layout}; ppuccl takes dense tensors")
    dt = _TORCH.get(str(t.dtype))
    if dt is None:
        raise TypeError(f"{fn}: {name} has dtype {t.dtype}, which ppuccl does not support "
                        f"(supported: {', '.join(k[6:] for k in _TORCH)})")
    if not t.is_contiguous():
        raise ValueError(f"{fn}: {name} is not contiguous (shape {tuple(t.shape)}, strides "
                         f"{t.stride()}); pass t.contiguous() and copy the result back")
    if not _STRIDED:
        _STRIDED.append(t.layout)
    _TORCH_BY_DTYPE[t.dtype] = dt
    _TORCH_TYPES.add(type(t))
    return Buffer(t.data_ptr(), t.numel(), dt, t)


def _numpy_buffer(a, fn, name, writable):
    dt = _NUMPY.get(a.dtype.name) if a.dtype.isnative else None
    if dt is None:
        raise TypeError(f"{fn}: {name} has dtype {a.dtype.str} ({a.dtype.name}), which ppuccl "
                        f"does not support (supported, native byte order: {', '.join(_NUMPY)})")
    if not a.flags.c_contiguous:
        raise ValueError(f"{fn}: {name} is not C-contiguous (shape {a.shape}, strides "
                         f"{a.strides}); pass np.ascontiguousarray(a) and copy the result back")
    if writable and not a.flags.writeable:
        raise ValueError(f"{fn}: {name} is read-only but receives data")
    return Buffer(a.ctypes.data, a.size, dt, a)
