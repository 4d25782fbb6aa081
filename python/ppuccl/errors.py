"""The exception raised when libppuccl reports a failure."""
from ._lib import Result, error_string, last_error


class PpuError(RuntimeError):
    """A ppuccl call failed. code: the Result; message: ppu_get_last_error's
    sentence (or the call's own when the library said nothing)."""

    def __init__(self, code, message):
        try:
            code = Result(code)
        except ValueError:
            pass
        self.code = code
        self.message = message
        name = code.name if isinstance(code, Result) else str(code)
        super().__init__(f"{message} [PPU_{name}: {error_string(int(code))}]")


def check(rc, fn, handle=None):
    """Raises PpuError when rc is not PPU_SUCCESS."""
    if rc != Result.SUCCESS:
        raise PpuError(rc, last_error(handle) or f"{fn} failed")
    return rc
