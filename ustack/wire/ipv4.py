"""IPv4 header (RFC 791): parse with full validation, emit with checksum."""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from .checksum import internet_checksum, ones_sum
from .errors import Malformed

_HDR = struct.Struct("!BBHHHBBHII")
HEADER_LEN = 20
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
FLAG_DF = 0x4000
FLAG_MF = 0x2000
_OFFSET_MASK = 0x1FFF


def ip_int(text: str) -> int:
    """Dotted quad to int; raises ValueError on anything else."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, TypeError) as e:
        raise ValueError(f"not an IPv4 address: {text!r}") from e


def ip_str(addr: int) -> str:
    return socket.inet_ntop(socket.AF_INET, addr.to_bytes(4, "big"))


def parse_cidr(text: str) -> tuple[int, int]:
    """'198.18.0.2/24' -> (address int, prefix length)."""
    addr, _, plen = text.partition("/")
    prefix = int(plen) if plen else 32
    if not 0 <= prefix <= 32:
        raise ValueError(f"bad prefix length in {text!r}")
    return ip_int(addr), prefix


def prefix_mask(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


class Ipv4Packet(NamedTuple):
    src: int
    dst: int
    proto: int
    payload: memoryview | bytes
    ttl: int = 64
    ident: int = 0
    df: bool = False
    mf: bool = False
    frag_offset: int = 0  # in bytes, a multiple of 8
    tos: int = 0
    options: bytes = b""

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.frag_offset != 0

    @classmethod
    def parse(cls, buf: bytes | memoryview, verify: bool = True) -> Ipv4Packet:
        n = len(buf)
        if n < HEADER_LEN:
            raise Malformed("ipv4.truncated", f"{n} bytes, header needs {HEADER_LEN}")
        vihl, tos, total, ident, frag, ttl, proto, _csum, src, dst = _HDR.unpack_from(buf)
        if vihl >> 4 != 4:
            raise Malformed("ipv4.bad_version", f"version {vihl >> 4}")
        hlen = (vihl & 0xF) * 4
        if hlen < HEADER_LEN:
            raise Malformed("ipv4.bad_header_length", f"IHL {vihl & 0xF} (< 5)")
        if total < hlen:
            raise Malformed("ipv4.bad_length", f"total length {total} < header length {hlen}")
        if total > n:
            raise Malformed("ipv4.truncated", f"total length {total} > {n} bytes received")
        mv = memoryview(buf)
        if verify and ones_sum(mv[:hlen]) != 0xFFFF:
            raise Malformed("ipv4.bad_checksum", f"header checksum {_csum:#06x} does not verify")
        if frag & 0x8000:
            raise Malformed("ipv4.reserved_flag", "reserved fragment flag set")
        options = bytes(mv[HEADER_LEN:hlen]) if hlen > HEADER_LEN else b""
        return cls(
            src, dst, proto, mv[hlen:total], ttl, ident,
            bool(frag & FLAG_DF), bool(frag & FLAG_MF), (frag & _OFFSET_MASK) << 3, tos, options,
        )

    def header_len(self) -> int:
        return HEADER_LEN + ((len(self.options) + 3) & ~3)

    def header(self, payload_len: int | None = None) -> bytes:
        """The header bytes with a correct checksum (for `payload_len`, default len(payload))."""
        opts = self.options
        if len(opts) & 3:
            opts = opts + b"\0" * (4 - (len(opts) & 3))  # pad options with EOL
        hlen = HEADER_LEN + len(opts)
        if payload_len is None:
            payload_len = len(self.payload)
        total = hlen + payload_len
        if total > 0xFFFF:
            raise ValueError(f"IPv4 packet of {total} bytes exceeds 65535")
        if self.frag_offset & 7:
            raise ValueError(f"fragment offset {self.frag_offset} is not a multiple of 8")
        frag = (self.frag_offset >> 3) | (FLAG_DF if self.df else 0) | (FLAG_MF if self.mf else 0)
        hdr = _HDR.pack(
            0x40 | (hlen >> 2), self.tos, total, self.ident, frag, self.ttl, self.proto, 0, self.src, self.dst
        ) + opts
        csum = internet_checksum(hdr)
        return hdr[:10] + csum.to_bytes(2, "big") + hdr[12:]

    def emit(self) -> bytes:
        return self.header() + bytes(self.payload)


def quick_header(src: int, dst: int, proto: int, payload_len: int, ident: int, ttl: int = 64,
                 df: bool = False, tos: int = 0) -> bytes:
    """A 20-byte header without options: the hot-path emitter (no NamedTuple built)."""
    hdr = _HDR.pack(0x45, tos, 20 + payload_len, ident, FLAG_DF if df else 0, ttl, proto, 0, src, dst)
    csum = internet_checksum(hdr)
    return hdr[:10] + csum.to_bytes(2, "big") + hdr[12:]
