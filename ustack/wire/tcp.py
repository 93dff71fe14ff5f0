"""TCP header and options (RFC 9293, RFC 7323, RFC 2018)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._fields import check_ints
from .checksum import SPLIT_ABOVE, fold, wide_sum
from .errors import Malformed
from .ipv4 import PROTO_TCP

_HDR = struct.Struct("!HHIIBBHHH")
_unpack_hdr = _HDR.unpack_from
_pack_hdr = _HDR.pack
_U16 = struct.Struct("!H")
_U32X2 = struct.Struct("!II")
_TS_BLOCK = struct.Struct("!III")  # NOP NOP TS 10 + TSval + TSecr: what Linux puts on every segment
_TS_BLOCK_HEAD = 0x0101080A
_HDR_TS = struct.Struct("!HHIIBBHHHIII")  # header + that block, decoded in one call
_unpack_hdr_ts = _HDR_TS.unpack_from
# For receive fast paths (header prediction on the raw bytes): the 32-byte header of a segment
# with only NOP NOP TS, and the first word of that block.
HEADER_TS = _HDR_TS
TS_BLOCK_HEAD = _TS_BLOCK_HEAD
_tuple_new = tuple.__new__
_MAX_ADDR = (1 << 128) - 1  # pseudo-header addresses: IPv4 (32-bit) or IPv6 (128-bit) ints
HEADER_LEN = 20
MAX_OPTIONS = 40

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WSCALE = 3
OPT_SACK_PERM = 4
OPT_SACK = 5
OPT_TIMESTAMP = 8

_FLAG_NAMES = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"), (ECE, "E"), (CWR, "W"))


def flags_str(flags: int) -> str:
    """tcpdump-style flag letters ("S.", "P.", "R")."""
    return "".join(c for bit, c in _FLAG_NAMES if flags & bit) or "none"


class TcpOptions(NamedTuple):
    """The TCP options ustack understands; unknown options are skipped by their length.

    Normalisations: `parse` keeps the last of repeated options and stops at EOL; `emit` writes
    options in Linux's order (MSS, SACK-permitted, timestamps, window scale, SACK) with NOP
    padding, and keeps only as many SACK blocks (the first ones, which RFC 2018 says are the most
    recent) as fit in the 40-byte option space: 4 alone, 3 with timestamps.
    """

    mss: int | None = None
    wscale: int | None = None
    sack_perm: bool = False
    sack: tuple[tuple[int, int], ...] = ()
    ts: tuple[int, int] | None = None  # (TSval, TSecr)

    @classmethod
    def parse(cls, b: bytes | memoryview) -> TcpOptions:
        n = len(b)
        if n == 12:  # fast path for the usual data-segment layout
            head, tsval, tsecr = _TS_BLOCK.unpack_from(b)
            if head == _TS_BLOCK_HEAD:
                return _tuple_new(cls, (None, None, False, (), (tsval, tsecr)))
        mss = wscale = ts = None
        sack_perm = False
        sack: tuple[tuple[int, int], ...] = ()
        i = 0
        while i < n:
            kind = b[i]
            if kind == OPT_EOL:
                break
            if kind == OPT_NOP:
                i += 1
                continue
            if i + 1 >= n:
                raise Malformed("tcp.bad_option_length", f"option {kind} at offset {i} has no length byte")
            olen = b[i + 1]
            if olen < 2:
                raise Malformed(
                    "tcp.bad_option_length", f"option {kind} at offset {i} claims length {olen} (< 2)"
                )
            if i + olen > n:
                raise Malformed(
                    "tcp.bad_option_length",
                    f"option {kind} at offset {i} claims length {olen}, only {n - i} bytes left",
                )
            if kind == OPT_MSS:
                if olen != 4:
                    raise Malformed("tcp.bad_option_length", f"MSS option length {olen} (want 4)")
                mss = _U16.unpack_from(b, i + 2)[0]
            elif kind == OPT_WSCALE:
                if olen != 3:
                    raise Malformed("tcp.bad_option_length", f"window scale option length {olen} (want 3)")
                wscale = b[i + 2]
            elif kind == OPT_SACK_PERM:
                if olen != 2:
                    raise Malformed("tcp.bad_option_length", f"SACK-permitted option length {olen} (want 2)")
                sack_perm = True
            elif kind == OPT_SACK:
                if olen < 10:
                    raise Malformed("tcp.bad_option_length", f"SACK option length {olen} (< 10: no block)")
                if (olen - 2) & 7:
                    raise Malformed(
                        "tcp.bad_option_length",
                        f"SACK option length {olen}: blocks of {olen - 2} bytes, not a multiple of 8",
                    )
                sack = tuple(_U32X2.unpack_from(b, j) for j in range(i + 2, i + olen, 8))
            elif kind == OPT_TIMESTAMP:
                if olen != 10:
                    raise Malformed("tcp.bad_option_length", f"timestamp option length {olen} (want 10)")
                ts = _U32X2.unpack_from(b, i + 2)
            # unknown options are skipped by their length (RFC 9293 3.2)
            i += olen
        return _tuple_new(cls, (mss, wscale, sack_perm, sack, ts))

    def emit(self) -> bytes:
        """Options bytes padded to a multiple of 4, in the order Linux uses.

        ValueError (naming the field) when a value does not fit its option.
        """
        mss, wscale, sack_perm, sack, ts = self
        try:
            if ts is not None and mss is None and wscale is None and not sack_perm and not sack:
                return _TS_BLOCK.pack(_TS_BLOCK_HEAD, *ts)  # fast path: data segments
            out = bytearray()
            if mss is not None:
                out += bytes((OPT_MSS, 4)) + _U16.pack(mss)
            if sack_perm and ts is not None:
                out += bytes((OPT_SACK_PERM, 2, OPT_TIMESTAMP, 10)) + _U32X2.pack(*ts)
            else:
                if sack_perm:
                    out += bytes((OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2))
                if ts is not None:
                    out += _TS_BLOCK.pack(_TS_BLOCK_HEAD, *ts)
            if wscale is not None:
                out += bytes((OPT_NOP, OPT_WSCALE, 3, wscale))
            if sack:
                room = (MAX_OPTIONS - len(out) - 4) // 8
                blocks = sack[: max(room, 0)]
                if blocks:
                    out += bytes((OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(blocks)))
                    for left, right in blocks:
                        out += _U32X2.pack(left, right)
        except (struct.error, TypeError, ValueError) as e:
            self._check()
            raise ValueError(f"cannot encode {self!r}: {e}") from e
        if len(out) & 3:
            out += b"\0" * (4 - (len(out) & 3))
        return bytes(out)

    def _check(self) -> None:
        fields: list[tuple[str, object, int]] = []
        if self.mss is not None:
            fields.append(("mss", self.mss, 16))
        if self.wscale is not None:
            fields.append(("wscale", self.wscale, 8))
        if self.ts is not None:
            if not isinstance(self.ts, tuple) or len(self.ts) != 2:
                raise ValueError(f"TcpOptions.ts must be a (tsval, tsecr) pair, got {self.ts!r}")
            fields += [("ts[0]", self.ts[0], 32), ("ts[1]", self.ts[1], 32)]
        for k, block in enumerate(self.sack):
            if not isinstance(block, tuple) or len(block) != 2:
                raise ValueError(f"TcpOptions.sack[{k}] must be a (left, right) pair, got {block!r}")
            fields += [(f"sack[{k}][0]", block[0], 32), (f"sack[{k}][1]", block[1], 32)]
        check_ints("TcpOptions", tuple(fields))


NO_OPTIONS = TcpOptions()


class TcpSegment(NamedTuple):
    """A TCP segment. `parse(emit(s)) == s` modulo the TcpOptions normalisations, `payload`
    coming back a memoryview, and the reserved/AE bits of byte 12 (not represented: dropped)."""

    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    payload: memoryview | bytes = b""
    options: TcpOptions = NO_OPTIONS
    urg: int = 0

    @property
    def seg_len(self) -> int:
        """Sequence space consumed: data plus one for each of SYN and FIN."""
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    @classmethod
    def parse(cls, buf: bytes | memoryview, src: int, dst: int, verify: bool = True) -> TcpSegment:
        """Decode a segment; `buf` is exactly the IPv4 payload (its length enters the checksum)."""
        n = len(buf)
        if n >= 32:  # room for a header with NOP NOP TS: decode it all in one call
            sport, dport, seq, ack, off, flags, window, csum, urg, head, tsval, tsecr = _unpack_hdr_ts(buf)
        elif n >= HEADER_LEN:
            sport, dport, seq, ack, off, flags, window, csum, urg = _unpack_hdr(buf)
            head = 0
        else:
            raise Malformed("tcp.truncated", f"{n} bytes, header needs {HEADER_LEN}")
        hlen = (off >> 4) << 2
        if hlen < HEADER_LEN:
            raise Malformed("tcp.bad_data_offset", f"data offset {off >> 4} words (< 5)")
        if hlen > n:
            raise Malformed("tcp.bad_data_offset", f"data offset {off >> 4} words ({hlen} bytes) > {n} bytes")
        mv = memoryview(buf)
        if verify:
            if n <= SPLIT_ABOVE:  # wide_sum inlined for small segments
                total = int.from_bytes(mv, "big")
                if n & 1:
                    total <<= 8
            else:
                total = wide_sum(mv)
            # the pseudo-header makes the sum nonzero, so "== 0xffff" is "% 0xffff == 0"
            if (total + (src + dst + PROTO_TCP + n)) % 0xFFFF:
                raise Malformed("tcp.bad_checksum", f"checksum {csum:#06x} does not verify")
        if hlen == HEADER_LEN:
            opts = NO_OPTIONS
        elif hlen == 32 and head == _TS_BLOCK_HEAD:
            opts = _tuple_new(TcpOptions, (None, None, False, (), (tsval, tsecr)))
        else:
            opts = TcpOptions.parse(mv[HEADER_LEN:hlen])
        return _tuple_new(cls, (sport, dport, seq, ack, flags, window, mv[hlen:], opts, urg))

    def emit(self, src: int, dst: int) -> bytes:
        """Header, options and payload with the checksum; ValueError naming a field out of range."""
        sport, dport, seq, ack, flags, window, payload, options, urg = self
        opts = options.emit() if options is not NO_OPTIONS else b""
        hlen = HEADER_LEN + len(opts)
        n = len(payload)
        try:
            if not (0 <= src <= _MAX_ADDR and 0 <= dst <= _MAX_ADDR):  # IPv4 or IPv6
                raise struct.error("address out of range")
            # one's-complement sum field by field (see checksum.fold): no second pass over bytes
            s = (sport + dport + seq + ack + (hlen << 10) + flags + window + urg
                 + src + dst + PROTO_TCP + hlen + n)
            if opts:
                s += int.from_bytes(opts, "big")
            if n:
                s += wide_sum(payload)  # the one big integer, added last
            hdr = _pack_hdr(sport, dport, seq, ack, hlen << 2, flags, window, ~fold(s) & 0xFFFF, urg)
        except (struct.error, TypeError) as e:
            check_ints("TcpSegment", (("sport", sport, 16), ("dport", dport, 16), ("seq", seq, 32),
                                      ("ack", ack, 32), ("flags", flags, 8), ("window", window, 16),
                                      ("urg", urg, 16), ("src", src, 128), ("dst", dst, 128)))
            raise ValueError(f"cannot encode {self!r}: {e}") from e
        if opts:
            hdr += opts
        return hdr + payload if n else hdr
