"""Neighbor Discovery messages (RFC 4861 4) and their options: the bodies of ICMPv6 types
133-136 (`Icmpv6Message.payload` after the 8-byte header, `rest` holding the flags)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._fields import check_mac
from .errors import Malformed
from .icmpv6 import NEIGHBOR_ADVERT, NEIGHBOR_SOLICIT, ROUTER_ADVERT, ROUTER_SOLICIT, Icmpv6Message

OPT_SLLA = 1
OPT_TLLA = 2
OPT_PREFIX = 3
OPT_REDIRECTED = 4
OPT_MTU = 5
MAX_PREFIXES = 16  # prefix options taken from one RA (more are counted and ignored)
_PREFIX = struct.Struct("!BBIII16s")
NA_ROUTER = 0x80000000
NA_SOLICITED = 0x40000000
NA_OVERRIDE = 0x20000000
RA_MANAGED = 0x80
RA_OTHER = 0x40
PI_ON_LINK = 0x80
PI_AUTONOMOUS = 0x40


class PrefixInfo(NamedTuple):
    prefix: int
    length: int
    on_link: bool
    autonomous: bool
    valid_s: int  # 0xffffffff: infinity
    preferred_s: int


class NdOptions(NamedTuple):
    slla: bytes | None = None  # source link-layer address (6 bytes on Ethernet)
    tlla: bytes | None = None  # target link-layer address
    prefixes: tuple[PrefixInfo, ...] = ()
    mtu: int | None = None

    @classmethod
    def parse(cls, buf: bytes | memoryview) -> NdOptions:
        """Walk the TLV options (RFC 4861 4.6); unknown types are skipped. Raises Malformed
        ``ndp.bad_option`` for a zero length or one running past the message."""
        mv = memoryview(buf)
        n = len(mv)
        i = 0
        slla = tlla = mtu = None
        prefixes: list[PrefixInfo] = []
        while i < n:
            if i + 2 > n or mv[i + 1] == 0 or i + mv[i + 1] * 8 > n:
                raise Malformed("ndp.bad_option", f"option at {i} has length 0 or runs past the end")
            t, size = mv[i], mv[i + 1] * 8
            if t in (OPT_SLLA, OPT_TLLA) and size == 8:
                mac = bytes(mv[i + 2:i + 8])
                if t == OPT_SLLA:
                    slla = mac
                else:
                    tlla = mac
            elif t == OPT_PREFIX:
                if size != 32:
                    raise Malformed("ndp.bad_option", f"prefix information of {size} bytes (not 32)")
                if len(prefixes) < MAX_PREFIXES:
                    plen, flags, valid, preferred, _, prefix = _PREFIX.unpack_from(mv, i + 2)
                    prefixes.append(PrefixInfo(int.from_bytes(prefix, "big"), plen,
                                               bool(flags & PI_ON_LINK), bool(flags & PI_AUTONOMOUS),
                                               valid, preferred))
            elif t == OPT_MTU and size == 8:
                mtu = int.from_bytes(mv[i + 4:i + 8], "big")
            i += size
        return cls(slla, tlla, tuple(prefixes), mtu)

    def emit(self) -> bytes:
        out = b""
        if self.slla is not None:
            check_mac("NdOptions", "slla", self.slla)
            out += bytes((OPT_SLLA, 1)) + self.slla
        if self.tlla is not None:
            check_mac("NdOptions", "tlla", self.tlla)
            out += bytes((OPT_TLLA, 1)) + self.tlla
        for p in self.prefixes:
            flags = (PI_ON_LINK if p.on_link else 0) | (PI_AUTONOMOUS if p.autonomous else 0)
            out += bytes((OPT_PREFIX, 4)) + _PREFIX.pack(p.length, flags, p.valid_s, p.preferred_s,
                                                          0, p.prefix.to_bytes(16, "big"))
        if self.mtu is not None:
            out += bytes((OPT_MTU, 1, 0, 0)) + self.mtu.to_bytes(4, "big")
        return out


def _target(msg: Icmpv6Message, what: str) -> int:
    if len(msg.payload) < 16:
        raise Malformed("ndp.truncated", f"{what} of {len(msg.payload) + 8} bytes, needs 24")
    return int.from_bytes(msg.payload[:16], "big")


class NeighborSolicit(NamedTuple):
    target: int
    options: NdOptions = NdOptions()

    @classmethod
    def parse(cls, msg: Icmpv6Message) -> NeighborSolicit:
        return cls(_target(msg, "neighbor solicitation"), NdOptions.parse(msg.payload[16:]))

    def message(self) -> Icmpv6Message:
        return Icmpv6Message(NEIGHBOR_SOLICIT, 0, 0, self.target.to_bytes(16, "big") + self.options.emit())


class NeighborAdvert(NamedTuple):
    target: int
    router: bool = False
    solicited: bool = False
    override: bool = False
    options: NdOptions = NdOptions()

    @classmethod
    def parse(cls, msg: Icmpv6Message) -> NeighborAdvert:
        r = msg.rest
        return cls(_target(msg, "neighbor advertisement"), bool(r & NA_ROUTER),
                   bool(r & NA_SOLICITED), bool(r & NA_OVERRIDE), NdOptions.parse(msg.payload[16:]))

    def message(self) -> Icmpv6Message:
        rest = ((NA_ROUTER if self.router else 0) | (NA_SOLICITED if self.solicited else 0)
                | (NA_OVERRIDE if self.override else 0))
        return Icmpv6Message(NEIGHBOR_ADVERT, 0, rest, self.target.to_bytes(16, "big") + self.options.emit())


class RouterSolicit(NamedTuple):
    options: NdOptions = NdOptions()

    @classmethod
    def parse(cls, msg: Icmpv6Message) -> RouterSolicit:
        return cls(NdOptions.parse(msg.payload))

    def message(self) -> Icmpv6Message:
        return Icmpv6Message(ROUTER_SOLICIT, 0, 0, self.options.emit())


class RouterAdvert(NamedTuple):
    hop_limit: int = 0  # 0: unspecified
    managed: bool = False
    other: bool = False
    lifetime_s: int = 0  # as default router; 0: not a default router
    reachable_ms: int = 0
    retrans_ms: int = 0
    options: NdOptions = NdOptions()

    @classmethod
    def parse(cls, msg: Icmpv6Message) -> RouterAdvert:
        p = msg.payload
        if len(p) < 8:
            raise Malformed("ndp.truncated", f"router advertisement of {len(p) + 8} bytes, needs 16")
        r = msg.rest
        return cls(r >> 24, bool(r >> 16 & RA_MANAGED), bool(r >> 16 & RA_OTHER), r & 0xFFFF,
                   int.from_bytes(p[0:4], "big"), int.from_bytes(p[4:8], "big"),
                   NdOptions.parse(p[8:]))

    def message(self) -> Icmpv6Message:
        flags = (RA_MANAGED if self.managed else 0) | (RA_OTHER if self.other else 0)
        rest = self.hop_limit << 24 | flags << 16 | self.lifetime_s
        body = self.reachable_ms.to_bytes(4, "big") + self.retrans_ms.to_bytes(4, "big")
        return Icmpv6Message(ROUTER_ADVERT, 0, rest, body + self.options.emit())
