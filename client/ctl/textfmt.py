"""Text helpers that reproduce Go's formatting where etcdctl's output shows it.

`go_quote` is Go's `%q`, `human_bytes` go-humanize's SI sizes (`20 kB`), `go_duration` Go's
`time.Duration.String()` (`1.5ms`, `2m3s`), `parse_duration` its parser (`--dial-timeout=2s`), and
`table` the boxed tables etcdctl draws (headers centred, cells right-aligned).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence

__all__ = ["go_quote", "go_duration", "hex_bytes", "human_bytes", "parse_duration", "table"]

_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def _printable(char: str) -> bool:
    return char == " " or unicodedata.category(char)[0] in "LMNPS"


def go_quote(data: bytes | str) -> str:
    """Go's `%q` of a string: printable UTF-8 kept, everything else escaped (invalid bytes as `\\xNN`)."""
    raw = data.encode() if isinstance(data, str) else data
    out = ['"']
    i = 0
    while i < len(raw):
        char, size = _next_rune(raw, i)
        if char is None:
            out.append(f"\\x{raw[i]:02x}")
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif _printable(char):
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
        i += size
    out.append('"')
    return "".join(out)


# (mask, marker) of the lead byte of a 1-, 2-, 3- and 4-byte UTF-8 sequence
_LEADS = ((0x80, 0x00), (0xE0, 0xC0), (0xF0, 0xE0), (0xF8, 0xF0))


def _next_rune(raw: bytes, i: int) -> tuple[str | None, int]:
    """The UTF-8 character at `raw[i]` and its length, or (None, 1) for a byte that starts none."""
    lead = raw[i]
    size = next((n for n, (mask, mark) in enumerate(_LEADS, 1) if lead & mask == mark), 0)
    if size == 0:
        return None, 1
    try:
        return raw[i : i + size].decode(), size
    except UnicodeDecodeError:
        return None, 1


def hex_bytes(data: bytes) -> str:
    """etcdctl's `--hex` form of a key or value: every byte as `\\xNN`."""
    return "".join(f"\\x{b:02x}" for b in data)


_SI = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]


def human_bytes(size: int) -> str:
    """A byte count the way go-humanize's `Bytes` writes it (powers of 1000, one decimal below 10)."""
    if size < 10:
        return f"{size} B"
    exponent = int(math.floor(math.log(size) / math.log(1000)))
    value = math.floor(size / 1000**exponent * 10 + 0.5) / 10
    return f"{value:.1f} {_SI[exponent]}" if value < 10 else f"{value:.0f} {_SI[exponent]}"


def go_duration(seconds: float) -> str:
    """Go's `time.Duration.String()` for a duration given in seconds (nanosecond resolution)."""
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1000:
        return f"{sign}{nanos}ns"
    if nanos < 1_000_000:
        return f"{sign}{_fraction(nanos, 3)}µs"
    if nanos < 1_000_000_000:
        return f"{sign}{_fraction(nanos, 6)}ms"
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{_fraction(rest, 9)}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _fraction(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    decimals = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{decimals}" if decimals else str(whole)


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (`5s`, `1m30s`, `250ms`); a bare number is seconds. Raises ValueError."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    body = text.lstrip("+-")
    parts = _PART.findall(body)
    if not body or "".join(number + unit for number, unit in parts) != body:
        raise ValueError(f"time: invalid duration {go_quote(text)}")
    total = sum(float(number) * _UNITS[unit] for number, unit in parts)
    return -total if text.startswith("-") else total


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A boxed table: `+---+` rules, headers centred (extra space on the right), cells right-aligned."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def centred(text: str, width: int) -> str:
        gap = width - len(text)
        return " " * (gap // 2) + text + " " * (gap - gap // 2)

    lines = [rule, "| " + " | ".join(centred(h, w) for h, w in zip(header, widths, strict=True)) + " |", rule]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.append(rule)
    return "\n".join(lines) + "\n"
