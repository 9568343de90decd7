"""Exceptions raised for library statuses. Each carries .status (the int32 code) and .message (the
library's tokemb_last_error() text at the time of the failure)."""


class Error(Exception):
    """A libtokemb call failed. `status` is the negative status code, `message` the library's detail."""

    status = None

    def __init__(self, status, message, function=""):
        self.status = status
        self.message = message
        self.function = function
        from ._lib import status_string
        self._text = "%s [%s]: %s" % (status_string(status), _NAMES.get(status, status), message)
        super().__init__(self._text)

    def __str__(self):
        return self._text


class InvalidArgument(Error, ValueError):
    """TOKEMB_INVALID_ARGUMENT (also a ValueError)."""


class OutOfRange(Error, IndexError):
    """TOKEMB_OUT_OF_RANGE: an id or position outside the table (also an IndexError)."""


class NoMemory(Error, MemoryError):
    """TOKEMB_NO_MEMORY."""


class IoError(Error, OSError):
    """TOKEMB_IO: a read, write, open or rename failed (also an OSError)."""


class FormatError(Error, ValueError):
    """TOKEMB_FORMAT: a malformed or unsupported file (also a ValueError)."""


class Unsupported(Error, NotImplementedError):
    """TOKEMB_UNSUPPORTED (also NotImplementedError)."""


class Overflow(Error, OverflowError):
    """TOKEMB_OVERFLOW: a size computation overflows (also an OverflowError)."""


class ReadOnly(Error):
    """TOKEMB_READ_ONLY: a write to a frozen or read-only (borrowed) table."""


class Cancelled(Error):
    """TOKEMB_CANCELLED: a progress callback asked to stop (nothing was returned)."""


_BY_STATUS = {-1: InvalidArgument, -2: OutOfRange, -3: NoMemory, -4: IoError, -5: FormatError,
              -6: Unsupported, -7: Overflow, -8: ReadOnly, -9: Cancelled}
_NAMES = {-1: "TOKEMB_INVALID_ARGUMENT", -2: "TOKEMB_OUT_OF_RANGE", -3: "TOKEMB_NO_MEMORY", -4: "TOKEMB_IO",
          -5: "TOKEMB_FORMAT", -6: "TOKEMB_UNSUPPORTED", -7: "TOKEMB_OVERFLOW", -8: "TOKEMB_READ_ONLY", -9: "TOKEMB_CANCELLED"}


def error_for(status, message, function=""):
    return _BY_STATUS.get(status, Error)(status, message, function)
