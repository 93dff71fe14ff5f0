"""ARP for IPv4 over Ethernet (RFC 826)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._fields import check_ints, check_mac
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
        if htype != HTYPE_ETHERNET:
            raise Malformed("arp.unsupported", f"hardware type {htype} (only 1, Ethernet)")
        if ptype != PTYPE_IPV4:
            raise Malformed("arp.unsupported", f"protocol type {ptype:#06x} (only 0x0800, IPv4)")
        if hlen != 6 or plen != 4:
            raise Malformed("arp.unsupported", f"address lengths hlen {hlen} plen {plen} (want 6 and 4)")
        if op != OP_REQUEST and op != OP_REPLY:
            raise Malformed("arp.bad_op", f"operation {op} (only 1 request, 2 reply)")
        return tuple.__new__(cls, (op, sha, spa, tha, tpa))

    def emit(self) -> bytes:
        """28 bytes (no padding: the link layer pads to 60). ValueError on a bad field."""
        sha, tha = self.sha, self.tha
        if len(sha) != 6 or len(tha) != 6:  # "6s" would silently pad or cut
            check_mac("ArpPacket", "sha", sha)
            check_mac("ArpPacket", "tha", tha)
        try:
            return _ARP.pack(HTYPE_ETHERNET, PTYPE_IPV4, 6, 4, self.op, sha, self.spa, tha, self.tpa)
        except struct.error as e:
            check_mac("ArpPacket", "sha", sha)
            check_mac("ArpPacket", "tha", tha)
            check_ints("ArpPacket", (("op", self.op, 16), ("spa", self.spa, 32), ("tpa", self.tpa, 32)))
            raise ValueError(f"cannot encode {self!r}: {e}") from e
