"""The project's own errors.

Every error a user can cause is a :class:`PixelpipeError`: the CLI prints its
message as one line (file and problem) and exits non-zero; the traceback is
shown only with ``--debug``.
"""
from __future__ import annotations


class PixelpipeError(Exception):
    """Base of every error pixelpipe raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | None = None):
        self.path = str(path) if path is not None else None
        super().__init__(message)

    def __str__(self) -> str:  # "FILE: problem"
        msg = super().__str__()
        return f"{self.path}: {msg}" if self.path else msg


class InputError(PixelpipeError):
    """The input file is missing, unreadable, corrupt or of an unsupported kind."""

    exit_code = 2


class UnsupportedFormatError(InputError):
    """LibRaw (and our other readers) cannot read this file format."""


class UnsupportedCFAError(InputError):
    """The raw's colour filter array is of a kind this build cannot process yet."""


class ParamsError(PixelpipeError):
    """A module parameter is unknown or out of range (names module and field)."""

    exit_code = 3


class SidecarError(PixelpipeError):
    """A sidecar (pixelpipe JSON or darktable XMP) is unreadable or invalid."""

    exit_code = 3


class OrderError(PixelpipeError):
    """An illegal module order or move (names the rule or fence)."""

    exit_code = 3


class OutputError(PixelpipeError):
    """The output cannot be written (exists without --overwrite, bad format, ...)."""

    exit_code = 4


class AIError(PixelpipeError):
    """AI subsystem: disabled, not installed, bad model, failed download."""

    exit_code = 5
