"""TCP header and options (RFC 9293, RFC 7323, RFC 2018)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from .checksum import internet_checksum, ones_sum
from .errors import Malformed
from .ipv4 import PROTO_TCP

_HDR = struct.Struct("!HHIIBBHHH")
_U16 = struct.Struct("!H")
_U32X2 = struct.Struct("!II")
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
    mss: int | None = None
    wscale: int | None = None
    sack_perm: bool = False
    sack: tuple[tuple[int, int], ...] = ()
    ts: tuple[int, int] | None = None  # (TSval, TSecr)

    @classmethod
    def parse(cls, b: bytes | memoryview) -> TcpOptions:
        mss = wscale = ts = None
        sack_perm = False
        sack: tuple[tuple[int, int], ...] = ()
        i, n = 0, len(b)
        while i < n:
            kind = b[i]
            if kind == OPT_EOL:
                break
            if kind == OPT_NOP:
                i += 1
                continue
            if i + 1 >= n:
                raise Malformed("tcp.bad_option_length", f"option {kind} at {i} has no length byte")
            olen = b[i + 1]
            if olen < 2 or i + olen > n:
                raise Malformed("tcp.bad_option_length", f"option {kind} at {i} claims length {olen}")
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
                if (olen - 2) % 8 or olen < 10:
                    raise Malformed("tcp.bad_option_length", f"SACK option length {olen}")
                sack = tuple(_U32X2.unpack_from(b, j) for j in range(i + 2, i + olen, 8))
            elif kind == OPT_TIMESTAMP:
                if olen != 10:
                    raise Malformed("tcp.bad_option_length", f"timestamp option length {olen} (want 10)")
                ts = _U32X2.unpack_from(b, i + 2)
            # unknown options are skipped by their length (RFC 9293 3.2)
            i += olen
        return cls(mss, wscale, sack_perm, sack, ts)

    def emit(self) -> bytes:
        """Options bytes padded to a multiple of 4, in the order Linux uses."""
        out = bytearray()
        if self.mss is not None:
            out += bytes((OPT_MSS, 4)) + _U16.pack(self.mss)
        if self.sack_perm and self.ts is not None:
            out += bytes((OPT_SACK_PERM, 2, OPT_TIMESTAMP, 10)) + _U32X2.pack(*self.ts)
        else:
            if self.sack_perm:
                out += bytes((OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2))
            if self.ts is not None:
                out += bytes((OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10)) + _U32X2.pack(*self.ts)
        if self.wscale is not None:
            out += bytes((OPT_NOP, OPT_WSCALE, 3, self.wscale))
        if self.sack:
            room = (MAX_OPTIONS - len(out) - 4) // 8
            blocks = self.sack[: max(room, 0)]
            if blocks:
                out += bytes((OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(blocks)))
                for left, right in blocks:
                    out += _U32X2.pack(left, right)
        if len(out) & 3:
            out += b"\0" * (4 - (len(out) & 3))
        if len(out) > MAX_OPTIONS:
            raise ValueError(f"TCP options of {len(out)} bytes exceed {MAX_OPTIONS}")
        return bytes(out)


NO_OPTIONS = TcpOptions()


class TcpSegment(NamedTuple):
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
        n = len(buf)
        if n < HEADER_LEN:
            raise Malformed("tcp.truncated", f"{n} bytes, header needs {HEADER_LEN}")
        sport, dport, seq, ack, off, flags, window, _csum, urg = _HDR.unpack_from(buf)
        hlen = (off >> 4) * 4
        if hlen < HEADER_LEN or hlen > n:
            raise Malformed("tcp.bad_data_offset", f"data offset {off >> 4} words for {n} bytes")
        mv = memoryview(buf)
        if verify and ones_sum(mv, src + dst + PROTO_TCP + n) != 0xFFFF:
            raise Malformed("tcp.bad_checksum", f"checksum {_csum:#06x} does not verify")
        opts = TcpOptions.parse(mv[HEADER_LEN:hlen]) if hlen > HEADER_LEN else NO_OPTIONS
        return cls(sport, dport, seq, ack, flags, window, mv[hlen:], opts, urg)

    def emit(self, src: int, dst: int) -> bytes:
        opts = self.options.emit() if self.options is not NO_OPTIONS else b""
        hlen = HEADER_LEN + len(opts)
        hdr = _HDR.pack(self.sport, self.dport, self.seq, self.ack, (hlen >> 2) << 4, self.flags,
                        self.window, 0, self.urg) + opts
        payload = self.payload
        length = hlen + len(payload)
        csum = internet_checksum(hdr + payload if payload else hdr, src + dst + PROTO_TCP + length)
        return hdr[:16] + csum.to_bytes(2, "big") + hdr[18:] + bytes(payload)
