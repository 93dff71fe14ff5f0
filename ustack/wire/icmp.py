"""ICMPv4 (RFC 792, RFC 1191): echo, destination unreachable, time exceeded and their quotes."""

from __future__ import annotations

import struct
from typing import NamedTuple

from .checksum import internet_checksum, ones_sum
from .errors import Malformed
from .ipv4 import HEADER_LEN as IP_HEADER_LEN
from .ipv4 import Ipv4Packet

_HDR = struct.Struct("!BBHI")
HEADER_LEN = 8

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
    type: int
    code: int
    rest: int  # second 32-bit word: id<<16|seq for echo, next-hop MTU (low 16 bits) for frag needed
    payload: memoryview | bytes

    @classmethod
    def parse(cls, buf: bytes | memoryview, verify: bool = True) -> IcmpMessage:
        if len(buf) < HEADER_LEN:
            raise Malformed("icmp.truncated", f"{len(buf)} bytes, header needs {HEADER_LEN}")
        if verify and ones_sum(buf) != 0xFFFF:
            raise Malformed("icmp.bad_checksum", "checksum does not verify")
        typ, code, _csum, rest = _HDR.unpack_from(buf)
        return cls(typ, code, rest, memoryview(buf)[HEADER_LEN:])

    @classmethod
    def echo(cls, request: bool, ident: int, seq: int, data: bytes = b"") -> IcmpMessage:
        return cls(ECHO_REQUEST if request else ECHO_REPLY, 0, (ident & 0xFFFF) << 16 | (seq & 0xFFFF), data)

    @classmethod
    def error(cls, typ: int, code: int, offending: bytes | memoryview, mtu: int = 0) -> IcmpMessage:
        """An error quoting the offending datagram's header and first 8 payload bytes (RFC 792).

        RFC 1812 allows quoting more; 8 bytes is what every receiver can rely on.
        """
        hlen = (offending[0] & 0xF) * 4 if len(offending) else IP_HEADER_LEN
        quote = bytes(offending[: hlen + 8])
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
        """Parse the quoted datagram: its header (checksum not verified, length not trusted)
        and the transport bytes that follow (at least 8 in a conforming error)."""
        q = memoryview(self.payload)
        if len(q) < IP_HEADER_LEN:
            raise Malformed("icmp.bad_quote", f"quoted datagram of {len(q)} bytes")
        hlen = (q[0] & 0xF) * 4
        if q[0] >> 4 != 4 or hlen < IP_HEADER_LEN or len(q) < hlen:
            raise Malformed("icmp.bad_quote", "quoted header is not IPv4")
        # The quote is truncated by design: rebuild a parseable view with total = what we have.
        fixed = bytearray(q[:hlen])
        fixed[2:4] = len(q).to_bytes(2, "big")
        ip = Ipv4Packet.parse(bytes(fixed) + bytes(q[hlen:]), verify=False)
        return ip, bytes(q[hlen:])

    def emit(self) -> bytes:
        body = _HDR.pack(self.type, self.code, 0, self.rest) + bytes(self.payload)
        csum = internet_checksum(body)
        return body[:2] + csum.to_bytes(2, "big") + body[4:]
