"""IPv4 header (RFC 791): parse with full validation, emit with checksum."""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from ._fields import check_ints
from .checksum import fold
from .errors import Malformed

_HDR = struct.Struct("!BBHHHBBHII")
_unpack_hdr = _HDR.unpack_from
_pack_hdr = _HDR.pack
_tuple_new = tuple.__new__
HEADER_LEN = 20
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
FLAG_DF = 0x4000
FLAG_MF = 0x2000
_OFFSET_MASK = 0x1FFF
MAX_OPTIONS = 40
MAX_FRAG_OFFSET = _OFFSET_MASK << 3  # 65528


def ip_int(text: str) -> int:
    """Dotted quad to int; raises ValueError on anything else."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, TypeError) as e:
        raise ValueError(f"not an IPv4 address: {text!r}") from e


def ip_str(addr: int) -> str:
    """Int to dotted quad; raises ValueError outside 0..2**32-1."""
    if not isinstance(addr, int) or not 0 <= addr <= 0xFFFFFFFF:
        raise ValueError(f"not an IPv4 address int: {addr!r}")
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
    """An IPv4 datagram.

    Normalisations (what `parse(emit(p))` changes): `options` come back padded with zero bytes
    (EOL) to a multiple of 4; `payload` comes back as a memoryview. The reserved flag bit is not
    representable: `parse` rejects it (``ipv4.reserved_flag``).
    """

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
        """Validate and decode; trailing bytes past the total length (link padding) are dropped.

        Options are kept as raw bytes and never interpreted ("skipped safely"). `verify=False`
        skips only the header checksum check.
        """
        n = len(buf)
        if n < HEADER_LEN:
            raise Malformed("ipv4.truncated", f"{n} bytes, header needs {HEADER_LEN}")
        vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _unpack_hdr(buf)
        if vihl >> 4 != 4:
            raise Malformed("ipv4.bad_version", f"version {vihl >> 4}")
        hlen = (vihl & 0xF) << 2
        if hlen < HEADER_LEN:
            raise Malformed("ipv4.bad_header_length", f"IHL {vihl & 0xF} (< 5)")
        if total < hlen:
            raise Malformed("ipv4.bad_length", f"total length {total} < header length {hlen}")
        if total > n:
            raise Malformed("ipv4.truncated", f"total length {total} > {n} bytes received")
        mv = memoryview(buf)
        # A header never sums to zero (version 4), so "sum == 0xffff" is "sum % 0xffff == 0".
        # The fixed part is summed from the fields already unpacked (see checksum.fold).
        if verify:
            s = ((vihl + ttl) << 8) + tos + total + ident + frag + proto + csum + src + dst
            if hlen > HEADER_LEN:
                s += int.from_bytes(mv[HEADER_LEN:hlen], "big")
            if s % 0xFFFF:
                raise Malformed("ipv4.bad_checksum", f"header checksum {csum:#06x} does not verify")
        if frag & 0xBFFF:  # anything but DF: reserved bit or a fragment
            if frag & 0x8000:
                raise Malformed("ipv4.reserved_flag", "reserved fragment flag set")
            offset = (frag & _OFFSET_MASK) << 3
            if offset + total - hlen > 0xFFFF:
                raise Malformed(
                    "ipv4.bad_fragment",
                    f"fragment at offset {offset} with {total - hlen} bytes ends past 65535",
                )
        else:
            offset = 0
        return _tuple_new(cls, (
            src, dst, proto, mv[hlen:total], ttl, ident, frag & FLAG_DF != 0, frag & FLAG_MF != 0,
            offset, tos, bytes(mv[HEADER_LEN:hlen]) if hlen > HEADER_LEN else b"",
        ))

    def header_len(self) -> int:
        return HEADER_LEN + ((len(self.options) + 3) & ~3)

    def header(self, payload_len: int | None = None) -> bytes:
        """The header bytes with a correct checksum (for `payload_len`, default len(payload)).

        Raises ValueError naming the field when one is out of range.
        """
        opts = self.options
        if opts:
            if len(opts) > MAX_OPTIONS:
                raise ValueError(f"Ipv4Packet.options of {len(opts)} bytes exceed {MAX_OPTIONS}")
            if len(opts) & 3:
                opts = bytes(opts) + b"\0" * (4 - (len(opts) & 3))  # pad options with EOL
        hlen = HEADER_LEN + len(opts)
        if payload_len is None:
            payload_len = len(self.payload)
        total = hlen + payload_len
        if total > 0xFFFF:
            raise ValueError(f"IPv4 packet of {total} bytes exceeds 65535")
        offset = self.frag_offset
        if offset & 7 or not 0 <= offset <= MAX_FRAG_OFFSET:
            raise ValueError(
                f"Ipv4Packet.frag_offset {offset} is not a multiple of 8 in 0..{MAX_FRAG_OFFSET}"
            )
        if offset + payload_len > 0xFFFF:
            raise ValueError(f"fragment at offset {offset} with {payload_len} bytes ends past 65535")
        frag = (offset >> 3) | (FLAG_DF if self.df else 0) | (FLAG_MF if self.mf else 0)
        vihl = 0x40 | (hlen >> 2)
        tos, ident, ttl, proto, src, dst = self.tos, self.ident, self.ttl, self.proto, self.src, self.dst
        try:
            s = (vihl << 8) + tos + total + ident + frag + (ttl << 8) + proto + src + dst
            if opts:
                s += int.from_bytes(opts, "big")
            hdr = _pack_hdr(vihl, tos, total, ident, frag, ttl, proto, ~fold(s) & 0xFFFF, src, dst)
        except (struct.error, TypeError) as e:
            check_ints("Ipv4Packet", (("src", src, 32), ("dst", dst, 32), ("proto", proto, 8),
                                      ("ttl", ttl, 8), ("ident", ident, 16), ("tos", tos, 8)))
            raise ValueError(f"cannot encode {self!r}: {e}") from e
        return hdr + opts if opts else hdr

    def emit(self) -> bytes:
        return self.header() + bytes(self.payload)


def quick_header(src: int, dst: int, proto: int, payload_len: int, ident: int, ttl: int = 64,
                 df: bool = False, tos: int = 0) -> bytes:
    """A 20-byte header without options: the hot-path emitter (no NamedTuple built)."""
    if not 0 <= payload_len <= 0xFFFF - HEADER_LEN:
        raise ValueError(f"quick_header payload_len {payload_len} is out of range 0..{0xFFFF - HEADER_LEN}")
    total = 20 + payload_len
    frag = FLAG_DF if df else 0
    try:
        s = 0x4500 + tos + total + ident + frag + (ttl << 8) + proto + src + dst
        return _pack_hdr(0x45, tos, total, ident, frag, ttl, proto, ~fold(s) & 0xFFFF, src, dst)
    except (struct.error, TypeError) as e:
        check_ints("quick_header", (("src", src, 32), ("dst", dst, 32), ("proto", proto, 8),
                                    ("ttl", ttl, 8), ("ident", ident, 16),
                                    ("tos", tos, 8)))
        raise ValueError(f"cannot encode an IPv4 header: {e}") from e
