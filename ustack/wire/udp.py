"""UDP (RFC 768)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from .checksum import internet_checksum, ones_sum
from .errors import Malformed
from .ipv4 import PROTO_UDP

_HDR = struct.Struct("!HHHH")
HEADER_LEN = 8


class UdpDatagram(NamedTuple):
    sport: int
    dport: int
    payload: memoryview | bytes

    @classmethod
    def parse(cls, buf: bytes | memoryview, src: int, dst: int, verify: bool = True) -> UdpDatagram:
        n = len(buf)
        if n < HEADER_LEN:
            raise Malformed("udp.truncated", f"{n} bytes, header needs {HEADER_LEN}")
        sport, dport, length, csum = _HDR.unpack_from(buf)
        if length < HEADER_LEN or length > n:
            raise Malformed("udp.bad_length", f"length field {length}, {n} bytes present")
        mv = memoryview(buf)[:length]
        # checksum 0 means "not computed" (RFC 768); verify everything else
        if verify and csum and ones_sum(mv, src + dst + PROTO_UDP + length) != 0xFFFF:
            raise Malformed("udp.bad_checksum", f"checksum {csum:#06x} does not verify")
        if dport == 0:
            raise Malformed("udp.bad_port", "destination port 0")
        return cls(sport, dport, mv[HEADER_LEN:])

    def emit(self, src: int, dst: int) -> bytes:
        length = HEADER_LEN + len(self.payload)
        if length > 0xFFFF:
            raise ValueError(f"UDP datagram of {length} bytes exceeds 65535")
        body = _HDR.pack(self.sport, self.dport, length, 0) + bytes(self.payload)
        csum = internet_checksum(body, src + dst + PROTO_UDP + length) or 0xFFFF
        return body[:6] + csum.to_bytes(2, "big") + body[8:]
