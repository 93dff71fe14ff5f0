"""Segment building for the hot path: one bytearray per segment, options pre-encoded."""

from __future__ import annotations

import struct

from ..wire.checksum import fold, internet_checksum
from ..wire.tcp import ACK, OPT_NOP, OPT_SACK, OPT_TIMESTAMP, SYN, TcpOptions
from ..wire.vnet import GSO_TCP_AT, GSO_TCP_AT6, GsoPacket, pack_gso_tcp

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


def build_gso(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
              opts: bytes | bytearray, payload: memoryview, gso_size: int, v6: bool = False) -> GsoPacket:
    """A TCP super-segment for a TSO device (wire/vnet.py): the virtio header and the TCP header
    packed into one buffer with room for the IPv4 header (the stack fills it in), the payload
    left where it is, the checksum field holding the pseudo-header sum over the whole length
    (NEEDS_CSUM: the kernel completes it per segment; nothing is summed here but the header's
    fixed fields). `v6`: over IPv6 (128-bit addresses; the pseudo-header sums the same way)."""
    hlen = 20 + len(opts)
    at = GSO_TCP_AT6 if v6 else GSO_TCP_AT
    b = bytearray(at + hlen)
    pack_gso_tcp(b, hlen, gso_size, v6)
    _HDR.pack_into(b, at, sport, dport, seq, ack, hlen << 2, flags, window,
                   fold(src + dst + 6 + hlen + len(payload)), 0)
    if opts:
        b[at + 20:] = opts
    return GsoPacket(b, payload, gso_size)


def ts_option(tsval: int, tsecr: int) -> bytes:
    return _TS.pack(OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10, tsval, tsecr)


def sack_option(blocks: list[tuple[int, int]]) -> bytes:
    out = bytearray((OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(blocks)))
    for left, right in blocks:
        out += _BLOCK.pack(left, right)
    return bytes(out)


def syn_options(mss: int, wscale: int | None, sack_perm: bool, ts: tuple[int, int] | None) -> bytes:
    return TcpOptions(mss=mss, wscale=wscale, sack_perm=sack_perm, ts=ts).emit()


def build_synack(laddr: int, raddr: int, lport: int, rport: int, iss: int, ack: int, free: int,
                 mss: int, wscale: int | None, sack_perm: bool, ts: tuple[int, int] | None) -> bytearray:
    """The SYN-ACK, the one builder for a connection's (Connection._send_synack) and a SYN
    cookie's (Listener): window = the free receive space (`Receiver.space`), never scaled in a
    SYN (RFC 7323 2.2) so at most 65535; `mss` from TcpLayer.mss_for."""
    return build(laddr, raddr, lport, rport, iss, ack, SYN | ACK, min(free, 0xFFFF),
                 syn_options(mss, wscale, sack_perm, ts))
