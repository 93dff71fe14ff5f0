"""Initial sequence numbers per RFC 6528: ISN = M + F(4-tuple, secret), M a 4-microsecond clock."""

from __future__ import annotations

import hashlib
import struct

from ..core.family import is_ipv6

_TUPLE = struct.Struct("!IHIH")
_TUPLE6 = struct.Struct("!16sH16sH")  # IPv6: 128-bit addresses (core/family.py says which)


class IsnGenerator:
    """Keyed hash of the connection 4-tuple plus a 250 kHz clock taken from `now`."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("ISN secret must be at least 16 bytes")
        self._key = secret[:32]

    def offset(self, laddr: int, lport: int, raddr: int, rport: int) -> int:
        if is_ipv6(raddr):
            data = _TUPLE6.pack(laddr.to_bytes(16, "big"), lport, raddr.to_bytes(16, "big"), rport)
        else:
            data = _TUPLE.pack(laddr, lport, raddr, rport)
        h = hashlib.blake2s(data, key=self._key, digest_size=4)
        return int.from_bytes(h.digest(), "big")

    def isn(self, laddr: int, lport: int, raddr: int, rport: int, now: float) -> int:
        return (int(now * 250_000) + self.offset(laddr, lport, raddr, rport)) & 0xFFFFFFFF
