"""What every corralctl command shares: etcdctl's exit codes, the error that carries one, output helpers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "EXIT_BAD_ARGS",
    "EXIT_BAD_CONNECTION",
    "EXIT_BAD_FEATURE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID_INPUT",
    "EXIT_IO",
    "CtlError",
    "emit",
    "help_of",
    "parse_hex_id",
    "warn",
]

# etcdctl's exit codes.
EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3
EXIT_BAD_FEATURE = 4
EXIT_INTERRUPTED = 5
EXIT_IO = 6
EXIT_BAD_ARGS = 128


class CtlError(Exception):
    """A command failed: `main` prints `Error: <message>` on stderr and exits with `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def emit(data: bytes | str) -> None:
    """Write to stdout now (keys and values may be any bytes; watchers need every line as it comes)."""
    raw = data.encode() if isinstance(data, str) else data
    out = sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is None:
        out.write(raw.decode(errors="replace"))
    else:
        out.flush()
        buffer.write(raw)
        buffer.flush()
    out.flush()


def help_of(parser: argparse.ArgumentParser) -> Callable[[Any, argparse.Namespace, list[str]], int]:
    """The command a group (`lease`, `member`, ...) runs without a subcommand: print its help."""

    def run(ctx: Any, ns: argparse.Namespace, extra: list[str]) -> int:
        parser.print_help()
        return 0

    return run


def warn(message: str) -> None:
    """One line on stderr."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def parse_hex_id(text: str, what: str, code: int = EXIT_BAD_ARGS) -> int:
    """A lease or member ID as etcdctl takes it: hexadecimal, no prefix needed."""
    try:
        value = int(text, 16)
    except ValueError:
        raise CtlError(code, f"bad {what} ({text!r} is not a hexadecimal ID), expecting ID in Hex") from None
    if not 0 <= value < 2**64:
        raise CtlError(code, f"bad {what} ({text!r} is out of range), expecting ID in Hex")
    return value
