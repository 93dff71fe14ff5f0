"""Sequence-number arithmetic modulo 2**32 (RFC 9293 3.4). Never compare sequence numbers with < or max()."""

from __future__ import annotations

MASK = 0xFFFFFFFF
_HALF = 0x80000000


def add(a: int, n: int) -> int:
    """a + n modulo 2**32 (n may be negative)."""
    return (a + n) & MASK


def diff(a: int, b: int) -> int:
    """Signed distance a - b in -2**31 .. 2**31-1."""
    d = (a - b) & MASK
    return d - 0x100000000 if d & _HALF else d


def lt(a: int, b: int) -> bool:
    return a != b and (a - b) & MASK >= _HALF


def le(a: int, b: int) -> bool:
    return (a - b) & MASK >= _HALF or a == b


def gt(a: int, b: int) -> bool:
    return a != b and (b - a) & MASK >= _HALF


def ge(a: int, b: int) -> bool:
    return (b - a) & MASK >= _HALF or a == b


def in_window(x: int, lo: int, size: int) -> bool:
    """lo <= x < lo + size, modulo 2**32."""
    return (x - lo) & MASK < size


def smax(a: int, b: int) -> int:
    return a if ge(a, b) else b


def smin(a: int, b: int) -> int:
    return a if le(a, b) else b
