"""UDP (RFC 768)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._fields import check_ints
from .checksum import fold, wide_sum
from .errors import Malformed
from .ipv4 import PROTO_UDP

_HDR = struct.Struct("!HHHH")
HEADER_LEN = 8
MAX_PAYLOAD = 0xFFFF - HEADER_LEN
_MAX_ADDR = (1 << 128) - 1  # pseudo-header addresses: IPv4 (32-bit) or IPv6 (128-bit) ints


class UdpDatagram(NamedTuple):
    """A UDP datagram. `parse(emit(d)) == d` except that `payload` comes back a memoryview.

    `parse` trims bytes past the UDP length field (IP-level padding) and rejects destination
    port 0 (``udp.bad_port``), which no socket can be bound to.
    """

    sport: int
    dport: int
    payload: memoryview | bytes

    @classmethod
    def parse(cls, buf: bytes | memoryview, src: int, dst: int, verify: bool = True) -> UdpDatagram:
        n = len(buf)
        if n < HEADER_LEN:
            raise Malformed("udp.truncated", f"{n} bytes, header needs {HEADER_LEN}")
        sport, dport, length, csum = _HDR.unpack_from(buf)
        if length < HEADER_LEN:
            raise Malformed("udp.bad_length", f"length field {length} < header length {HEADER_LEN}")
        if length > n:
            raise Malformed("udp.bad_length", f"length field {length} > {n} bytes present")
        mv = memoryview(buf)[:length]
        # checksum 0 means "not computed" (RFC 768); verify everything else
        if verify and csum:
            total = wide_sum(mv)
            if (total + src + dst + PROTO_UDP + length) % 0xFFFF:
                raise Malformed("udp.bad_checksum", f"checksum {csum:#06x} does not verify")
        if dport == 0:
            raise Malformed("udp.bad_port", "destination port 0")
        return tuple.__new__(cls, (sport, dport, mv[HEADER_LEN:]))

    def emit(self, src: int, dst: int) -> bytes:
        """Header plus payload with the checksum (never 0: a computed 0 is sent as 0xffff)."""
        sport, dport, payload = self
        n = len(payload)
        if n > MAX_PAYLOAD:
            raise ValueError(f"UDP payload of {n} bytes exceeds {MAX_PAYLOAD}")
        length = HEADER_LEN + n
        try:
            if not (0 <= src <= _MAX_ADDR and 0 <= dst <= _MAX_ADDR):  # IPv4 or IPv6
                raise struct.error("address out of range")
            body = wide_sum(payload)
            s = sport + dport + length + body + src + dst + PROTO_UDP + length
            return _HDR.pack(sport, dport, length, ~fold(s) & 0xFFFF or 0xFFFF) + bytes(payload)
        except (struct.error, TypeError) as e:
            check_ints("UdpDatagram", (("sport", sport, 16), ("dport", dport, 16),
                                       ("src", src, 128), ("dst", dst, 128)))
            raise ValueError(f"cannot encode {self!r}: {e}") from e
