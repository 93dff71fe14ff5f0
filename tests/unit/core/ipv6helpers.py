"""Helpers for the IPv6 core tests: stacks, a recording transport, packets crafted with scapy
(an independent encoder) and output decoded with it."""

from __future__ import annotations

import scapy.all as sc

from ustack.core import Stack, StackConfig
from ustack.wire.ipv6 import ip6_int

ME6 = "2001:2::2"
PEER6 = "2001:2::1"
ME = ip6_int(ME6)
PEER = ip6_int(PEER6)
PEER_LL6 = "fe80::1"
PEER_MAC = "02:00:00:00:00:01"
MY_MAC = "02:00:00:00:00:02"
MY_LL6 = "fe80::ff:fe00:2"  # EUI-64 of 02:00:00:00:00:02 (U/L bit flipped)
EXPERIMENTAL = 253  # RFC 3692


def make6(**kw) -> Stack:
    kw.setdefault("seed", 7)
    kw.setdefault("addr6", ME6 + "/64")
    return Stack(StackConfig(**kw))


def make_tap(**kw) -> Stack:
    kw.setdefault("medium", "ethernet")
    kw.setdefault("mac", MY_MAC)
    return make6(**kw)


class Recorder:
    """A transport for protocol 253 over IPv6: keeps what it is given."""

    proto = EXPERIMENTAL
    ipv6 = True

    def __init__(self) -> None:
        self.packets: list = []
        self.errors: list = []

    def on_packet(self, ip, now, rx=0) -> None:
        self.packets.append((ip, bytes(ip.payload), rx))

    def on_icmp_error(self, kind, quoted, quoted_payload, mtu, now) -> None:
        self.errors.append((kind, quoted, bytes(quoted_payload), mtu))

    def poll(self, now) -> None:
        return None

    def poll_at(self):
        return None


def v6(src: str = PEER6, dst: str = ME6, **kw) -> sc.IPv6:
    return sc.IPv6(src=src, dst=dst, **kw)


def tap_frame(pkt, dst_mac: str = MY_MAC, src_mac: str = PEER_MAC) -> bytes:
    return bytes(sc.Ether(dst=dst_mac, src=src_mac) / pkt)


def out6(frames: list[bytes], medium: str = "ip") -> list:
    """Output frames decoded by scapy (IPv6 layer; Ether kept on TAP)."""
    out = []
    for f in frames:
        p = sc.Ether(f) if medium == "ethernet" else sc.IPv6(f)
        out.append(p)
    return out


def icmp6_of(frames: list[bytes], medium: str = "ip") -> list:
    """(scapy IPv6 packet) of every IPv6 output frame, checksums verified by recomputation."""
    pkts = []
    for p in out6(frames, medium):
        ip = p[sc.IPv6] if sc.IPv6 in p else None
        if ip is None:
            continue
        pkts.append(ip)
    return pkts


def checksum_ok(ip: sc.IPv6) -> bool:
    """The ICMPv6 checksum we sent (no extension headers) equals scapy's own computation."""
    raw = bytes(ip)
    assert raw[6] == 58
    body = raw[40:42] + b"\0\0" + raw[44:]
    return sc.in6_chksum(58, ip, body) == int.from_bytes(raw[42:44], "big")
