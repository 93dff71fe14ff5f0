"""ICMPv4 (RFC 792, RFC 1191): echo, destination unreachable, time exceeded and their quotes."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._fields import check_ints
from .checksum import fold, wide_sum
from .errors import Malformed
from .ipv4 import _HDR as _IP_HDR
from .ipv4 import _OFFSET_MASK, FLAG_DF, FLAG_MF, Ipv4Packet
from .ipv4 import HEADER_LEN as IP_HEADER_LEN

_HDR = struct.Struct("!BBHI")
HEADER_LEN = 8
QUOTE_MIN_TRANSPORT = 8  # RFC 792: the quote carries the first 64 bits of the datagram's data

ECHO_REPLY = 0
DEST_UNREACH = 3
SOURCE_QUENCH = 4
REDIRECT = 5
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAM_PROBLEM = 12

# Destination unreachable codes (RFC 792, RFC 1122, RFC 1812)
NET_UNREACH = 0
HOST_UNREACH = 1
PROTO_UNREACH = 2
PORT_UNREACH = 3
FRAG_NEEDED = 4
SOURCE_ROUTE_FAILED = 5
NET_UNKNOWN = 6
HOST_UNKNOWN = 7
SOURCE_HOST_ISOLATED = 8
NET_PROHIBITED = 9
HOST_PROHIBITED = 10
NET_TOS_UNREACH = 11
HOST_TOS_UNREACH = 12
ADMIN_PROHIBITED = 13
HOST_PRECEDENCE_VIOLATION = 14
PRECEDENCE_CUTOFF = 15

UNREACH_NAMES = {
    NET_UNREACH: "net unreachable", HOST_UNREACH: "host unreachable",
    PROTO_UNREACH: "protocol unreachable", PORT_UNREACH: "port unreachable",
    FRAG_NEEDED: "fragmentation needed", SOURCE_ROUTE_FAILED: "source route failed",
    NET_UNKNOWN: "net unknown", HOST_UNKNOWN: "host unknown",
    SOURCE_HOST_ISOLATED: "source host isolated", NET_PROHIBITED: "net prohibited",
    HOST_PROHIBITED: "host prohibited", NET_TOS_UNREACH: "net unreachable for TOS",
    HOST_TOS_UNREACH: "host unreachable for TOS", ADMIN_PROHIBITED: "communication prohibited",
    HOST_PRECEDENCE_VIOLATION: "host precedence violation", PRECEDENCE_CUTOFF: "precedence cutoff",
}
ERROR_TYPES = frozenset({DEST_UNREACH, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED, PARAM_PROBLEM})


class IcmpMessage(NamedTuple):
    """An ICMPv4 message. `parse(emit(m)) == m` except that `payload` comes back a memoryview."""

    type: int
    code: int
    rest: int  # second 32-bit word: id<<16|seq for echo, next-hop MTU (low 16 bits) for frag needed
    payload: memoryview | bytes

    @classmethod
    def parse(cls, buf: bytes | memoryview, verify: bool = True) -> IcmpMessage:
        n = len(buf)
        if n < HEADER_LEN:
            raise Malformed("icmp.truncated", f"{n} bytes, header needs {HEADER_LEN}")
        typ, code, csum, rest = _HDR.unpack_from(buf)
        if verify:
            if fold(wide_sum(buf)) != 0xFFFF:
                raise Malformed("icmp.bad_checksum", f"checksum {csum:#06x} does not verify")
        return tuple.__new__(cls, (typ, code, rest, memoryview(buf)[HEADER_LEN:]))

    @classmethod
    def echo(cls, request: bool, ident: int, seq: int, data: bytes = b"") -> IcmpMessage:
        """An echo request/reply; `ident` and `seq` are taken modulo 2**16 (ping counters wrap)."""
        return cls(ECHO_REQUEST if request else ECHO_REPLY, 0, (ident & 0xFFFF) << 16 | (seq & 0xFFFF), data)

    @classmethod
    def error(cls, typ: int, code: int, offending: bytes | memoryview, mtu: int = 0) -> IcmpMessage:
        """An error quoting the offending datagram's header and first 8 payload bytes (RFC 792).

        RFC 1812 allows quoting more; 8 bytes is what every receiver can rely on. `mtu` (low 16
        bits) is sent only for destination unreachable / fragmentation needed.
        """
        hlen = (offending[0] & 0xF) * 4 if len(offending) else IP_HEADER_LEN
        quote = bytes(offending[: hlen + QUOTE_MIN_TRANSPORT])
        return cls(typ, code, mtu & 0xFFFF if typ == DEST_UNREACH and code == FRAG_NEEDED else 0, quote)

    @property
    def ident(self) -> int:
        return self.rest >> 16

    @property
    def seq(self) -> int:
        return self.rest & 0xFFFF

    @property
    def mtu(self) -> int:
        return self.rest & 0xFFFF

    @property
    def is_error(self) -> bool:
        return self.type in ERROR_TYPES

    def quoted(self) -> tuple[Ipv4Packet, bytes]:
        """Decode the quoted datagram of an error message: its header and the transport bytes after it.

        The quoted header's checksum is not verified (routers may have changed the TTL) and its
        total length is only used to trim a quote longer than the original datagram. At least 8
        transport bytes must be present (as Linux requires), so ports can always be read. The
        returned packet's payload is those same bytes. Raises Malformed ``icmp.not_error`` or
        ``icmp.bad_quote``.
        """
        if self.type not in ERROR_TYPES:
            raise Malformed("icmp.not_error", f"type {self.type} does not quote a datagram")
        q = memoryview(self.payload)
        n = len(q)
        if n < IP_HEADER_LEN:
            raise Malformed("icmp.bad_quote", f"quoted datagram of {n} bytes, an IPv4 header needs 20")
        vihl, tos, total, ident, frag, ttl, proto, _csum, src, dst = _IP_HDR.unpack_from(q)
        if vihl >> 4 != 4:
            raise Malformed("icmp.bad_quote", f"quoted header has version {vihl >> 4}")
        hlen = (vihl & 0xF) << 2
        if hlen < IP_HEADER_LEN:
            raise Malformed("icmp.bad_quote", f"quoted header has IHL {vihl & 0xF} (< 5)")
        if n < hlen + QUOTE_MIN_TRANSPORT:
            raise Malformed(
                "icmp.bad_quote",
                f"quote of {n} bytes has {max(n - hlen, 0)} transport bytes after the {hlen}-byte header,"
                f" need {QUOTE_MIN_TRANSPORT}",
            )
        end = total if hlen + QUOTE_MIN_TRANSPORT <= total < n else n
        transport = bytes(q[hlen:end])
        ip = Ipv4Packet(
            src, dst, proto, transport, ttl, ident, bool(frag & FLAG_DF), bool(frag & FLAG_MF),
            (frag & _OFFSET_MASK) << 3, tos, bytes(q[IP_HEADER_LEN:hlen]),
        )
        return ip, transport

    def emit(self) -> bytes:
        """The message with its checksum; ValueError naming a field out of range."""
        typ, code, rest, payload = self
        try:
            body = wide_sum(payload)
            s = (typ << 8) + code + rest + body
            return _HDR.pack(typ, code, ~fold(s) & 0xFFFF, rest) + bytes(payload)
        except (struct.error, TypeError) as e:
            check_ints("IcmpMessage", (("type", typ, 8), ("code", code, 8), ("rest", rest, 32)))
            raise ValueError(f"cannot encode {self!r}: {e}") from e
