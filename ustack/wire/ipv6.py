"""IPv6 header (RFC 8200) and its extension-header chain: parse with full validation, emit.

`Ipv6Packet.parse` reads the fixed header and walks the extension headers (hop-by-hop, routing,
destination options, fragment) to the upper-layer protocol, bounded in headers and options.
Problems RFC 8200 answers with an ICMPv6 Parameter Problem raise `Ipv6ParamProblem` (a
`Malformed` carrying the code and pointer); plain garbage raises `Malformed`. A fragment header
stops the walk: what follows it belongs to the fragmentable part and is walked after reassembly
(`Ipv6Packet.reassembled`).
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from ._fields import check_ints
from .errors import Malformed

_HDR = struct.Struct("!IHBB16s16s")
_FIXED = struct.Struct("!IHBB")
_FRAG = struct.Struct("!BBHI")
_from_bytes = int.from_bytes
_tuple_new = tuple.__new__
HEADER_LEN = 40
FRAG_HEADER_LEN = 8
MIN_MTU = 1280  # RFC 8200 5: every link carries this much
MAX_PAYLOAD = 0xFFFF

NH_HOP_BY_HOP = 0
NH_TCP = 6
NH_UDP = 17
NH_ROUTING = 43
NH_FRAGMENT = 44
NH_ESP = 50
NH_AH = 51
NH_ICMPV6 = 58
NH_NONE = 59
NH_DEST_OPTS = 60

MAX_EXT_HEADERS = 8  # extension headers walked per packet (RFC 8504 5.3: hosts may limit)
MAX_OPTIONS = 8  # non-padding options per hop-by-hop/destination header (Linux max_*_opts_number)
MAX_PAD = 7  # consecutive padding bytes (RFC 8200 4.2 needs at most 7; Linux drops more)
OPT_PAD1 = 0
OPT_PADN = 1
OPT_ROUTER_ALERT = 5  # hop-by-hop only (RFC 2711); a host skips it

# Parameter Problem codes (RFC 4443 3.4)
PP_HEADER = 0  # erroneous header field
PP_NEXT_HEADER = 1  # unrecognized next header type
PP_OPTION = 2  # unrecognized IPv6 option
PP_INCOMPLETE_CHAIN = 3  # first fragment without the whole header chain (RFC 7112)


class Ipv6ParamProblem(Malformed):
    """A packet RFC 8200 discards with an ICMPv6 Parameter Problem (`code`, `pointer`: the byte
    offset of the offending field from the start of the IPv6 header). `to_multicast`: the error
    may be sent even when the packet's destination was multicast (an unrecognized option whose
    type's two high bits are 10, RFC 8200 4.2 and RFC 4443 2.4(e.3))."""

    def __init__(self, reason: str, detail: str, code: int, pointer: int,
                 to_multicast: bool = False) -> None:
        super().__init__(reason, detail)
        self.code = code
        self.pointer = pointer
        self.to_multicast = to_multicast


def ip6_int(text: str) -> int:
    """Any RFC 4291 text form ("2001:2::1", "::ffff:1.2.3.4") to a 128-bit int; ValueError
    on anything else (a zone "%eth0" included)."""
    try:
        return _from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, TypeError) as e:
        raise ValueError(f"not an IPv6 address: {text!r}") from e


def ip6_str(addr: int) -> str:
    """A 128-bit int to RFC 5952 canonical text; ValueError outside 0..2**128-1."""
    if not isinstance(addr, int) or not 0 <= addr < 1 << 128:
        raise ValueError(f"not an IPv6 address int: {addr!r}")
    return socket.inet_ntop(socket.AF_INET6, addr.to_bytes(16, "big"))


def parse_cidr6(text: str) -> tuple[int, int]:
    """'2001:2::2/64' -> (address int, prefix length); no prefix means /128."""
    addr, _, plen = text.partition("/")
    try:
        prefix = int(plen) if plen else 128
    except ValueError:
        raise ValueError(f"bad prefix length in {text!r}") from None
    if not 0 <= prefix <= 128:
        raise ValueError(f"bad prefix length in {text!r}")
    return ip6_int(addr), prefix


def is_multicast6(addr: int) -> bool:
    return addr >> 120 == 0xFF


class Ipv6Packet(NamedTuple):
    """An IPv6 packet as the upper layer sees it.

    `proto` is the upper-layer protocol after the extension headers and `payload` its bytes.
    A fragment header shows as `frag_id` (None: no fragment header), `frag_offset` (bytes) and
    `mf`; `proto`/`payload` are then the fragment header's next header and the fragment's data.
    `nh_at` is the offset (from the IPv6 header) of the Next Header field that named `proto`,
    the pointer of a Parameter Problem code 1 about it. `emit` writes only a fragment header
    (when `frag_id` is set): other extension headers are read, never emitted.
    """

    src: int
    dst: int
    proto: int
    payload: memoryview | bytes
    hop_limit: int = 64
    tclass: int = 0
    flow: int = 0
    frag_offset: int = 0
    mf: bool = False
    frag_id: int | None = None
    nh_at: int = 6

    @property
    def is_fragment(self) -> bool:
        """True for a real fragment (an atomic fragment, offset 0 without M, is not)."""
        return self.frag_id is not None and (self.mf or self.frag_offset != 0)

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview) -> Ipv6Packet:
        """Validate and decode; bytes past the payload length (link padding) are dropped.

        Raises Malformed (``ipv6.truncated``, ``ipv6.bad_version``, ``ipv6.bad_ext``,
        ``ipv6.too_many_ext``, ``ipv6.bad_option``, ``ipv6.too_many_options``,
        ``ipv6.option_discard``) or Ipv6ParamProblem (``ipv6.hbh_not_first``,
        ``ipv6.routing_refused``, ``ipv6.unknown_option``, ``ipv6.frag_bad_length``,
        ``ipv6.frag_too_big``).
        """
        n = len(buf)
        if n < HEADER_LEN:
            raise Malformed("ipv6.truncated", f"{n} bytes, header needs {HEADER_LEN}")
        vtf, plen, nh, hop, src, dst = _HDR.unpack_from(buf)
        if vtf >> 28 != 6:
            raise Malformed("ipv6.bad_version", f"version {vtf >> 28}")
        end = HEADER_LEN + plen
        if end > n:
            raise Malformed("ipv6.truncated", f"payload length {plen} > {n - HEADER_LEN} bytes received")
        mv = memoryview(buf)
        head = (_from_bytes(src, "big"), _from_bytes(dst, "big"))
        if nh in (NH_TCP, NH_UDP, NH_ICMPV6):  # the usual packet: no extension headers
            return _tuple_new(cls, (*head, nh, mv[HEADER_LEN:end], hop, (vtf >> 20) & 0xFF,
                                    vtf & 0xFFFFF, 0, False, None, 6))
        proto, pos, nh_at, frag = walk(mv, nh, HEADER_LEN, end, 6, True)
        fo, mf, fid = frag if frag is not None else (0, False, None)
        return _tuple_new(cls, (*head, proto, mv[pos:end], hop, (vtf >> 20) & 0xFF,
                                vtf & 0xFFFFF, fo, mf, fid, nh_at))

    def reassembled(self, payload: bytes | memoryview) -> Ipv6Packet:
        """This first fragment's packet carrying the reassembled `payload` (also an atomic
        fragment's own payload), the rest of its header chain walked (hop-by-hop is not allowed
        there). Pointers (`nh_at`, Ipv6ParamProblem's) count from the first fragment's IPv6
        header, as if the datagram had arrived whole behind its fragment header."""
        mv = memoryview(payload)
        base = self.nh_at + FRAG_HEADER_LEN  # where the fragment's data began in the packet
        try:
            proto, pos, nh_at, frag = walk(mv, self.proto, 0, len(mv), -1, False)
        except Ipv6ParamProblem as e:
            e.pointer = self.nh_at if e.pointer < 0 else e.pointer + base
            raise
        if frag is not None:
            raise Malformed("ipv6.bad_ext", "a second fragment header inside a reassembled datagram")
        nh_at = self.nh_at if nh_at < 0 else nh_at + base
        return self._replace(proto=proto, payload=mv[pos:], frag_offset=0, mf=False, frag_id=None,
                             nh_at=nh_at)

    def header(self, payload_len: int | None = None) -> bytes:
        """Fixed header (+ fragment header when `frag_id` is set) for `payload_len` bytes of
        upper-layer data (default len(payload)); ValueError naming a field out of range."""
        n = len(self.payload) if payload_len is None else payload_len
        fid = self.frag_id
        if fid is None:
            return quick_header6(self.src, self.dst, self.proto, n, self.hop_limit, self.tclass,
                                 self.flow)
        off = self.frag_offset
        if off & 7 or not 0 <= off <= 0xFFF8:
            raise ValueError(f"Ipv6Packet.frag_offset {off} is not a multiple of 8 in 0..65528")
        try:
            frag = _FRAG.pack(self.proto, 0, off | (1 if self.mf else 0), fid)
        except (struct.error, TypeError) as e:
            check_ints("Ipv6Packet", (("proto", self.proto, 8), ("frag_id", fid, 32)))
            raise ValueError(f"cannot encode a fragment header: {e}") from e
        return quick_header6(self.src, self.dst, NH_FRAGMENT, n + FRAG_HEADER_LEN, self.hop_limit,
                             self.tclass, self.flow) + frag

    def emit(self) -> bytes:
        return self.header() + bytes(self.payload)


def quick_header6(src: int, dst: int, nh: int, payload_len: int, hop_limit: int = 64,
                  tclass: int = 0, flow: int = 0) -> bytes:
    """The 40-byte fixed header (the hot-path emitter: no NamedTuple built)."""
    try:
        return _FIXED.pack(0x60000000 | tclass << 20 | flow, payload_len, nh, hop_limit) \
            + src.to_bytes(16, "big") + dst.to_bytes(16, "big")
    except (struct.error, TypeError, OverflowError, AttributeError) as e:
        check_ints("Ipv6Packet", (("src", src, 128), ("dst", dst, 128), ("proto", nh, 8),
                                  ("payload_len", payload_len, 16), ("hop_limit", hop_limit, 8),
                                  ("tclass", tclass, 8), ("flow", flow, 20)))
        raise ValueError(f"cannot encode an IPv6 header: {e}") from e


def walk(mv: memoryview, nh: int, pos: int, end: int, nh_at: int, hbh_ok: bool
         ) -> tuple[int, int, int, tuple[int, bool, int] | None]:
    """Walk extension headers from `pos` (next header `nh`, named at `nh_at`) to the upper
    layer: (proto, its offset, where its Next Header field is, (offset, M, id) of a fragment
    header or None). Bounded: MAX_EXT_HEADERS headers, MAX_OPTIONS options each."""
    for _ in range(MAX_EXT_HEADERS + 1):
        if nh == NH_HOP_BY_HOP:
            if not hbh_ok:  # RFC 8200 4.1: only right after the IPv6 header
                raise Ipv6ParamProblem("ipv6.hbh_not_first", "hop-by-hop header not first",
                                       PP_NEXT_HEADER, nh_at)
        elif nh not in (NH_ROUTING, NH_DEST_OPTS, NH_FRAGMENT):
            return nh, pos, nh_at, None
        hbh_ok = False
        if pos + 8 > end:
            raise Malformed("ipv6.bad_ext", f"extension header {nh} at {pos} truncated")
        if nh == NH_FRAGMENT:
            nxt, _, offm, ident = _FRAG.unpack_from(mv, pos)
            data = end - pos - FRAG_HEADER_LEN
            off = offm & 0xFFF8
            if offm & 1 and data & 7:  # RFC 8200 4.5: M set and not a multiple of 8
                raise Ipv6ParamProblem("ipv6.frag_bad_length",
                                       f"fragment of {data} bytes with M set", PP_HEADER, 4)
            if off + data > MAX_PAYLOAD:
                raise Ipv6ParamProblem("ipv6.frag_too_big", f"fragment at {off} of {data} bytes "
                                       "ends past 65535", PP_HEADER, pos + 2)
            return nxt, pos + FRAG_HEADER_LEN, pos, (off, bool(offm & 1), ident)
        hend = pos + (mv[pos + 1] + 1) * 8
        if hend > end:
            raise Malformed("ipv6.bad_ext", f"extension header {nh} at {pos} runs past the payload")
        if nh == NH_ROUTING:
            if mv[pos + 3]:  # segments left: we route for no one (RFC 5095: type 0 refused too)
                raise Ipv6ParamProblem("ipv6.routing_refused", f"routing type {mv[pos + 2]} with "
                                       f"{mv[pos + 3]} segments left", PP_HEADER, pos + 2)
        else:
            _options(mv, pos + 2, hend, nh == NH_HOP_BY_HOP)
        nh_at = pos
        nh = mv[pos]
        pos = hend
    raise Malformed("ipv6.too_many_ext", f"more than {MAX_EXT_HEADERS} extension headers")


def _options(mv: memoryview, i: int, end: int, hop_by_hop: bool) -> None:
    """Check the TLV options of a hop-by-hop or destination options header (RFC 8200 4.2)."""
    count = pad = 0
    while i < end:
        t = mv[i]
        if t == OPT_PAD1:
            pad += 1
            if pad > MAX_PAD:
                raise Malformed("ipv6.bad_option", f"more than {MAX_PAD} bytes of padding at {i}")
            i += 1
            continue
        if i + 2 > end or i + 2 + mv[i + 1] > end:
            raise Malformed("ipv6.bad_option", f"option {t} at {i} runs past its header")
        size = 2 + mv[i + 1]
        if t == OPT_PADN:
            pad += size
            if pad > MAX_PAD:
                raise Malformed("ipv6.bad_option", f"more than {MAX_PAD} bytes of padding at {i}")
            i += size
            continue
        pad = 0
        count += 1
        if count > MAX_OPTIONS:
            raise Malformed("ipv6.too_many_options", f"more than {MAX_OPTIONS} options")
        if not (hop_by_hop and t == OPT_ROUTER_ALERT):
            action = t >> 6  # the two high bits say what to do with an option we do not know
            if action == 1:
                raise Malformed("ipv6.option_discard", f"unknown option {t:#04x} (discard)")
            if action:
                raise Ipv6ParamProblem("ipv6.unknown_option", f"unknown option {t:#04x}",
                                       PP_OPTION, i, to_multicast=action == 2)
        i += size


def upper_layer(buf: bytes | memoryview, nh: int | None = None, pos: int = HEADER_LEN
                ) -> tuple[int, int] | None:
    """(protocol, offset) of the upper layer of a packet whose chain may be invalid, walking
    extension headers by their lengths only (no option or routing semantics): what an ICMPv6
    error needs to know about the packet it answers (RFC 4443 2.4(e.1)), and whether a first
    fragment holds the whole chain (RFC 7112: `nh` the fragment header's next header, `pos`
    0 in the fragment's data). None when the chain cannot be followed within `buf`."""
    n = len(buf)
    if nh is None:
        if n < HEADER_LEN:
            return None
        nh = buf[6]
    for _ in range(MAX_EXT_HEADERS + 1):
        if nh not in (NH_HOP_BY_HOP, NH_ROUTING, NH_DEST_OPTS, NH_FRAGMENT):
            return (nh, pos) if pos <= n else None
        if pos + 8 > n:
            return None
        size = FRAG_HEADER_LEN if nh == NH_FRAGMENT else (buf[pos + 1] + 1) * 8
        nh, pos = buf[pos], pos + size
    return None
