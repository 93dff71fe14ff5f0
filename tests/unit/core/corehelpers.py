"""Helpers for the core unit tests: build stacks and craft frames with the wire codecs."""

from __future__ import annotations

from ustack.core import Stack, StackConfig
from ustack.wire import EthernetFrame, IcmpMessage, Ipv4Packet, UdpDatagram, ip_int

ME = ip_int("198.18.0.2")
PEER = ip_int("198.18.0.1")
OTHER = ip_int("198.18.0.7")
GW = ip_int("198.18.0.254")
FAR = ip_int("203.0.113.9")  # off-link
BCAST = ip_int("198.18.0.255")
LO = ip_int("127.0.0.1")
PEER_MAC = bytes.fromhex("020000000001")


def make(**kw) -> Stack:
    kw.setdefault("seed", 7)
    return Stack(StackConfig(**kw))


def ip_frame(src: int, dst: int, proto: int, payload: bytes, **kw) -> bytes:
    return Ipv4Packet(src, dst, proto, payload, **kw).emit()


def udp_frame(src: int, dst: int, sport: int, dport: int, data: bytes, **kw) -> bytes:
    return ip_frame(src, dst, 17, UdpDatagram(sport, dport, data).emit(src, dst), **kw)


def icmp_frame(src: int, dst: int, msg: IcmpMessage, **kw) -> bytes:
    return ip_frame(src, dst, 1, msg.emit(), **kw)


def eth(dst_mac: bytes, payload: bytes, src_mac: bytes = PEER_MAC, ethertype: int = 0x0800) -> bytes:
    return EthernetFrame(dst_mac, src_mac, ethertype, payload).emit()


def ips(frames: list[bytes], medium: str = "ip") -> list[Ipv4Packet]:
    """Decode output frames to IPv4 packets (ethernet frames must carry IPv4)."""
    out = []
    for f in frames:
        if medium == "ethernet":
            e = EthernetFrame.parse(f)
            assert e.ethertype == 0x0800
            f = bytes(e.payload)
        out.append(Ipv4Packet.parse(f))
    return out


def assert_no_internal_error(stack: Stack) -> None:
    assert stack.counters.get("stack.internal_error") == 0, list(stack.internal_errors)
