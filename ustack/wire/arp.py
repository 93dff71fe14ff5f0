"""ARP for IPv4 over Ethernet (RFC 826)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from .errors import Malformed

_ARP = struct.Struct("!HHBBH6sI6sI")
PACKET_LEN = 28
OP_REQUEST = 1
OP_REPLY = 2
HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800


class ArpPacket(NamedTuple):
    op: int
    sha: bytes  # sender hardware address
    spa: int  # sender protocol address
    tha: bytes
    tpa: int

    @classmethod
    def parse(cls, buf: bytes | memoryview) -> ArpPacket:
        if len(buf) < PACKET_LEN:
            raise Malformed("arp.truncated", f"{len(buf)} bytes, need {PACKET_LEN}")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(buf)
        if htype != HTYPE_ETHERNET or ptype != PTYPE_IPV4 or hlen != 6 or plen != 4:
            raise Malformed(
                "arp.unsupported", f"htype {htype} ptype {ptype:#06x} hlen {hlen} plen {plen}"
            )
        if op not in (OP_REQUEST, OP_REPLY):
            raise Malformed("arp.bad_op", f"operation {op}")
        return cls(op, sha, spa, tha, tpa)

    def emit(self) -> bytes:
        return _ARP.pack(HTYPE_ETHERNET, PTYPE_IPV4, 6, 4, self.op, self.sha, self.spa, self.tha, self.tpa)
