"""Field-range checks for `emit`: run only after packing failed, so the hot path pays nothing."""

from __future__ import annotations


def check_ints(record: str, fields: tuple[tuple[str, object, int], ...]) -> None:
    """Raise ValueError naming the first field that is not an int in 0..2**bits-1."""
    for name, value, bits in fields:
        if not isinstance(value, int):
            raise ValueError(f"{record}.{name} must be an int, got {type(value).__name__} {value!r}")
        if not 0 <= value < (1 << bits):
            raise ValueError(f"{record}.{name} = {value} is out of range 0..{(1 << bits) - 1}")


def check_mac(record: str, name: str, value: object) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != 6:
        raise ValueError(f"{record}.{name} must be 6 bytes, got {value!r}")
