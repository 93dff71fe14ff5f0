"""Segment building for the hot path: one bytearray per segment, options pre-encoded."""

from __future__ import annotations

import struct

from ..wire.checksum import internet_checksum
from ..wire.tcp import OPT_NOP, OPT_SACK, OPT_TIMESTAMP, TcpOptions

_HDR = struct.Struct("!HHIIBBHHH")
_CSUM = struct.Struct("!H")
_TS = struct.Struct("!BBBBII")
_BLOCK = struct.Struct("!II")


def build(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
          opts: bytes | bytearray = b"", payload: bytes | bytearray | memoryview = b"",
          urg: int = 0) -> bytearray:
    """A TCP segment with a valid checksum for the src/dst pseudo-header."""
    hlen = 20 + len(opts)
    n = hlen + len(payload)
    b = bytearray(n)
    _HDR.pack_into(b, 0, sport, dport, seq, ack, hlen << 2, flags, window, 0, urg)
    if opts:
        b[20:hlen] = opts
    if payload:
        b[hlen:] = payload
    _CSUM.pack_into(b, 16, internet_checksum(b, src + dst + 6 + n))
    return b


def ts_option(tsval: int, tsecr: int) -> bytes:
    return _TS.pack(OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10, tsval, tsecr)


def sack_option(blocks: list[tuple[int, int]]) -> bytes:
    out = bytearray((OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(blocks)))
    for left, right in blocks:
        out += _BLOCK.pack(left, right)
    return bytes(out)


def syn_options(mss: int, wscale: int | None, sack_perm: bool, ts: tuple[int, int] | None) -> bytes:
    return TcpOptions(mss=mss, wscale=wscale, sack_perm=sack_perm, ts=ts).emit()
