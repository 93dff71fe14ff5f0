"""ICMPv6 (RFC 4443): the message, its pseudo-header checksum, and the quoted packet of errors."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._fields import check_ints
from .checksum import fold, pseudo_sum6, wide_sum
from .errors import Malformed
from .ipv6 import _HDR as _IP6_HDR
from .ipv6 import HEADER_LEN as IP6_HEADER_LEN
from .ipv6 import MIN_MTU, NH_ICMPV6, Ipv6Packet, walk

_HDR = struct.Struct("!BBHI")
HEADER_LEN = 8
QUOTE_MIN_TRANSPORT = 8  # as for ICMPv4: ports and TCP sequence number must be in the quote
MAX_ERROR = MIN_MTU - IP6_HEADER_LEN  # RFC 4443 2.4(c): an error never exceeds the minimum MTU

DEST_UNREACH = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAM_PROBLEM = 4
ECHO_REQUEST = 128
ECHO_REPLY = 129
MLD_QUERY = 130
MLD_REPORT = 131
MLD_DONE = 132
ROUTER_SOLICIT = 133
ROUTER_ADVERT = 134
NEIGHBOR_SOLICIT = 135
NEIGHBOR_ADVERT = 136
REDIRECT = 137
MLD2_REPORT = 143

# Destination unreachable codes (RFC 4443 3.1)
DU_NO_ROUTE = 0
DU_ADMIN = 1
DU_BEYOND_SCOPE = 2
DU_ADDR_UNREACH = 3
DU_PORT_UNREACH = 4
DU_SOURCE_POLICY = 5
DU_REJECT_ROUTE = 6
# Time exceeded codes (RFC 4443 3.3)
TE_HOP_LIMIT = 0
TE_REASSEMBLY = 1
# Parameter problem codes (RFC 4443 3.4, RFC 7112)
PP_HEADER = 0
PP_NEXT_HEADER = 1
PP_OPTION = 2
PP_INCOMPLETE_CHAIN = 3

ERROR_TYPES = frozenset({DEST_UNREACH, PACKET_TOO_BIG, TIME_EXCEEDED, PARAM_PROBLEM})


class Icmpv6Message(NamedTuple):
    """An ICMPv6 message. `rest` is the second 32-bit word (id<<16|seq for echo, MTU for packet
    too big, pointer for parameter problem, flags for NDP). `parse(emit(m)) == m` except that
    `payload` comes back as a memoryview."""

    type: int
    code: int
    rest: int
    payload: memoryview | bytes

    @classmethod
    def parse(cls, buf: bytes | memoryview, src: int, dst: int, verify: bool = True) -> Icmpv6Message:
        """Decode; the checksum covers the IPv6 pseudo-header (RFC 4443 2.3), so it needs the
        packet's addresses. Raises Malformed ``icmpv6.truncated`` / ``icmpv6.bad_checksum``."""
        n = len(buf)
        if n < HEADER_LEN:
            raise Malformed("icmpv6.truncated", f"{n} bytes, header needs {HEADER_LEN}")
        typ, code, csum, rest = _HDR.unpack_from(buf)
        if verify and fold(wide_sum(buf) + pseudo_sum6(src, dst, NH_ICMPV6, n)) != 0xFFFF:
            raise Malformed("icmpv6.bad_checksum", f"checksum {csum:#06x} does not verify")
        return tuple.__new__(cls, (typ, code, rest, memoryview(buf)[HEADER_LEN:]))

    @classmethod
    def echo(cls, request: bool, ident: int, seq: int, data: bytes = b"") -> Icmpv6Message:
        return cls(ECHO_REQUEST if request else ECHO_REPLY, 0,
                   (ident & 0xFFFF) << 16 | (seq & 0xFFFF), data)

    @classmethod
    def error(cls, typ: int, code: int, offending: bytes | memoryview, rest: int = 0) -> Icmpv6Message:
        """An error quoting as much of the offending packet as fits in the minimum MTU
        (RFC 4443 2.4(c)); `rest` is the MTU (packet too big) or the pointer (parameter problem)."""
        return cls(typ, code, rest, bytes(offending[:MAX_ERROR - HEADER_LEN]))

    @property
    def ident(self) -> int:
        return self.rest >> 16

    @property
    def seq(self) -> int:
        return self.rest & 0xFFFF

    @property
    def is_error(self) -> bool:
        return self.type < 128

    def quoted(self) -> tuple[Ipv6Packet, bytes]:
        """The quoted packet of an error: its header (extension headers walked) and the
        upper-layer bytes after it (at least 8, trimmed to the quoted payload length).
        Raises Malformed ``icmpv6.not_error`` / ``icmpv6.bad_quote``."""
        if self.type not in ERROR_TYPES:
            raise Malformed("icmpv6.not_error", f"type {self.type} does not quote a packet")
        q = memoryview(self.payload)
        n = len(q)
        if n < IP6_HEADER_LEN:
            raise Malformed("icmpv6.bad_quote", f"quote of {n} bytes, an IPv6 header needs 40")
        vtf, plen, nh, hop, src, dst = _IP6_HDR.unpack_from(q)
        if vtf >> 28 != 6:
            raise Malformed("icmpv6.bad_quote", f"quoted header has version {vtf >> 28}")
        end = min(n, IP6_HEADER_LEN + plen)
        try:
            proto, pos, nh_at, frag = walk(q, nh, IP6_HEADER_LEN, end, 6, True)
        except Malformed as e:
            raise Malformed("icmpv6.bad_quote", f"quoted extension headers: {e}") from None
        if end - pos < QUOTE_MIN_TRANSPORT and not (frag is not None and frag[0]):
            raise Malformed("icmpv6.bad_quote", f"quote has {max(end - pos, 0)} upper-layer "
                            f"bytes, need {QUOTE_MIN_TRANSPORT}")
        data = bytes(q[pos:end])
        fo, mf, fid = frag if frag is not None else (0, False, None)
        ip = Ipv6Packet(int.from_bytes(src, "big"), int.from_bytes(dst, "big"), proto, data, hop,
                        (vtf >> 20) & 0xFF, vtf & 0xFFFFF, fo, mf, fid, nh_at)
        return ip, data

    def emit(self, src: int, dst: int) -> bytes:
        """The message with its checksum over the pseudo-header of `src` -> `dst`."""
        typ, code, rest, payload = self
        try:
            n = HEADER_LEN + len(payload)
            s = (typ << 8) + code + rest + wide_sum(payload) + pseudo_sum6(src, dst, NH_ICMPV6, n)
            return _HDR.pack(typ, code, ~fold(s) & 0xFFFF, rest) + bytes(payload)
        except (struct.error, TypeError) as e:
            check_ints("Icmpv6Message", (("type", typ, 8), ("code", code, 8), ("rest", rest, 32)))
            raise ValueError(f"cannot encode {self!r}: {e}") from e
