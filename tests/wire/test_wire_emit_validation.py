"""emit() rejects values that do not fit their field with a ValueError naming the field
(never a leaked struct.error, never silent truncation or padding)."""

from __future__ import annotations

import struct

import pytest

from ustack.wire import (
    ArpPacket,
    EthernetFrame,
    IcmpMessage,
    Ipv4Packet,
    TcpOptions,
    TcpSegment,
    UdpDatagram,
    ip_str,
)
from ustack.wire.ipv4 import quick_header

SRC, DST = 0xC6120001, 0xC6120002
MAC = b"\x02\0\0\0\0\x01"


def rejects(fn, *args, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        fn(*args)
    assert not isinstance(info.value, struct.error)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (EthernetFrame(MAC[:5], MAC, 0x0800, b""), r"EthernetFrame\.dst must be 6 bytes"),
        (EthernetFrame(MAC, MAC + b"\0", 0x0800, b""), r"EthernetFrame\.src must be 6 bytes"),
        (EthernetFrame(MAC, MAC, 0x10000, b""),
         r"EthernetFrame\.ethertype = 65536 is out of range 0\.\.65535"),
        (EthernetFrame(MAC, MAC, -1, b""), r"ethertype = -1"),
        (EthernetFrame(MAC, "02:00:00:00:00:01", 0x0800, b""), r"EthernetFrame\.src must be 6 bytes"),
    ],
)
def test_ethernet(frame: EthernetFrame, match: str) -> None:
    rejects(frame.emit, match=match)


@pytest.mark.parametrize(
    ("arp", "match"),
    [
        (ArpPacket(1, MAC[:4], SRC, MAC, DST), r"ArpPacket\.sha must be 6 bytes"),
        (ArpPacket(1, MAC, SRC, bytes(7), DST), r"ArpPacket\.tha must be 6 bytes"),
        (ArpPacket(1, MAC, 1 << 32, MAC, DST), r"ArpPacket\.spa = 4294967296 is out of range"),
        (ArpPacket(1, MAC, SRC, MAC, -5), r"ArpPacket\.tpa = -5"),
        (ArpPacket(70000, MAC, SRC, MAC, DST), r"ArpPacket\.op = 70000"),
    ],
)
def test_arp(arp: ArpPacket, match: str) -> None:
    rejects(arp.emit, match=match)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("src", 1 << 32, r"Ipv4Packet\.src = 4294967296 is out of range 0\.\.4294967295"),
        ("dst", -1, r"Ipv4Packet\.dst = -1"),
        ("proto", 256, r"Ipv4Packet\.proto = 256"),
        ("ttl", 256, r"Ipv4Packet\.ttl = 256"),
        ("ttl", None, r"Ipv4Packet\.ttl must be an int, got NoneType"),
        ("ident", 65536, r"Ipv4Packet\.ident = 65536"),
        ("tos", 300, r"Ipv4Packet\.tos = 300"),
        ("frag_offset", 12, r"frag_offset 12 is not a multiple of 8"),
        ("frag_offset", 65536, r"frag_offset 65536 is not a multiple of 8 in 0\.\.65528"),
        ("frag_offset", -8, r"frag_offset -8"),
        ("options", b"\x01" * 41, r"options of 41 bytes exceed 40"),
        ("payload", bytes(65516), r"IPv4 packet of 65536 bytes exceeds 65535"),
        ("frag_offset", 65528, r"fragment at offset 65528 with 8 bytes ends past 65535"),
    ],
)
def test_ipv4(field: str, value, match: str) -> None:
    pkt = Ipv4Packet(SRC, DST, 17, b"12345678")._replace(**{field: value})
    rejects(pkt.emit, match=match)


def test_ipv4_limits_accepted() -> None:
    p = Ipv4Packet(0xFFFFFFFF, 0, 255, bytes(65535 - 60), 255, 0xFFFF, True, True, 0, 255, b"\x01" * 40)
    back = Ipv4Packet.parse(p.emit())
    assert back == p
    assert Ipv4Packet.parse(Ipv4Packet(SRC, DST, 1, bytes(7), frag_offset=65528).emit()).frag_offset == 65528


def test_quick_header() -> None:
    rejects(quick_header, SRC, DST, 6, 65516, 1, match=r"payload_len 65516 is out of range 0\.\.65515")
    rejects(quick_header, SRC, DST, 6, -1, 1, match=r"payload_len -1")
    rejects(quick_header, SRC, DST, 6, 10, 1 << 16, match=r"quick_header\.ident = 65536")
    rejects(quick_header, SRC, 1 << 40, 6, 10, 1, match=r"quick_header\.dst")


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (IcmpMessage(256, 0, 0, b""), r"IcmpMessage\.type = 256"),
        (IcmpMessage(8, -1, 0, b""), r"IcmpMessage\.code = -1"),
        (IcmpMessage(8, 0, 1 << 32, b""), r"IcmpMessage\.rest = 4294967296"),
        (IcmpMessage(8, 0, "x", b""), r"IcmpMessage\.rest must be an int"),
    ],
)
def test_icmp(msg: IcmpMessage, match: str) -> None:
    rejects(msg.emit, match=match)


@pytest.mark.parametrize(
    ("d", "src", "dst", "match"),
    [
        (UdpDatagram(65536, 1, b""), SRC, DST, r"UdpDatagram\.sport = 65536 is out of range 0\.\.65535"),
        (UdpDatagram(1, -1, b""), SRC, DST, r"UdpDatagram\.dport = -1"),
        (UdpDatagram(1, 2, b""), 1 << 128, DST, r"UdpDatagram\.src = 3402823669\d+ is out of range"),
        (UdpDatagram(1, 2, b""), SRC, None, r"UdpDatagram\.dst must be an int"),
        (UdpDatagram(1, 2, bytes(65528)), SRC, DST, r"UDP payload of 65528 bytes exceeds 65527"),
    ],
)
def test_udp(d: UdpDatagram, src, dst, match: str) -> None:
    rejects(d.emit, src, dst, match=match)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("sport", 65536, r"TcpSegment\.sport = 65536 is out of range 0\.\.65535"),
        ("dport", -1, r"TcpSegment\.dport = -1"),
        ("seq", 1 << 32, r"TcpSegment\.seq = 4294967296 is out of range 0\.\.4294967295"),
        ("ack", -1, r"TcpSegment\.ack = -1"),
        ("flags", 0x100, r"TcpSegment\.flags = 256 is out of range 0\.\.255"),
        ("window", 65536, r"TcpSegment\.window = 65536"),
        ("urg", 1 << 16, r"TcpSegment\.urg = 65536"),
        ("seq", 1.5, r"TcpSegment\.seq must be an int, got float"),
    ],
)
def test_tcp(field: str, value, match: str) -> None:
    seg = TcpSegment(1, 2, 3, 4, 0x10, 100, b"data")._replace(**{field: value})
    rejects(seg.emit, SRC, DST, match=match)


def test_tcp_addresses() -> None:
    rejects(TcpSegment(1, 2, 3, 4, 0x10, 100).emit, -1, DST, match=r"TcpSegment\.src = -1")


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        (TcpOptions(mss=65536), r"TcpOptions\.mss = 65536"),
        (TcpOptions(wscale=256), r"TcpOptions\.wscale = 256 is out of range 0\.\.255"),
        (TcpOptions(ts=(1 << 32, 0)), r"TcpOptions\.ts\[0\] = 4294967296"),
        (TcpOptions(ts=(0, -1), mss=5), r"TcpOptions\.ts\[1\] = -1"),
        (TcpOptions(ts=(1, 2, 3)), r"TcpOptions\.ts must be a \(tsval, tsecr\) pair"),
        (TcpOptions(sack=((1, 1 << 32),)), r"TcpOptions\.sack\[0\]\[1\] = 4294967296"),
        (TcpOptions(sack=((1, 2), (3,))), r"TcpOptions\.sack\[1\] must be a \(left, right\) pair"),
    ],
)
def test_tcp_options(opts: TcpOptions, match: str) -> None:
    rejects(opts.emit, match=match)
    rejects(TcpSegment(1, 2, 3, 4, 0x10, 100, b"", opts).emit, SRC, DST, match=match)


def test_ip_str_range() -> None:
    assert ip_str(0xC6120001) == "198.18.0.1"
    rejects(ip_str, 1 << 32, match="not an IPv4 address int")
