"""Tracer and format_frame: tcpdump-like lines, never an exception."""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.drivers.frames import MAC_A, MAC_B, A, B, echo, eth, syn, udp
from ustack.drivers import MemLink, Tracer, format_frame
from ustack.wire import EthernetFrame, IcmpMessage, Ipv4Packet, TcpOptions, TcpSegment, UdpDatagram

SYN_LINE = ("IP 198.18.0.2.49152 > 198.18.0.1.7: Flags [S], seq 123, win 65535, "
            "options [mss 1460,sackOK,wscale 7], length 0")


def tcp(seg: TcpSegment) -> bytes:
    return Ipv4Packet(A, B, 6, seg.emit(A, B)).emit()


def arp(op: int) -> bytes:
    body = (bytes.fromhex("000108000604") + op.to_bytes(2, "big") + MAC_A + bytes.fromhex("c6120002")
            + (MAC_B if op == 2 else bytes(6)) + bytes.fromhex("c6120001"))
    return EthernetFrame(b"\xff" * 6 if op == 1 else MAC_B, MAC_A, 0x0806, body).emit()


@pytest.mark.parametrize("frame, medium, text", [
    (syn(), "ip", SYN_LINE),
    (tcp(TcpSegment(49152, 7, 1000, 55, 0x18, 512, b"hello", TcpOptions(ts=(1, 2), sack=((5, 6),)))), "ip",
     "IP 198.18.0.2.49152 > 198.18.0.1.7: Flags [P.], seq 1000:1005, ack 55, win 512, "
     "options [TS val 1 ecr 2,sack 1 {5:6}], length 5"),
    (tcp(TcpSegment(1, 2, 0xFFFFFFFF, 0, 0x11, 0, b"ab")), "ip",
     "IP 198.18.0.2.1 > 198.18.0.1.2: Flags [F.], seq 4294967295:1, ack 0, win 0, length 2"),
    (tcp(TcpSegment(1, 2, 5, 0, 0x04, 0)), "ip",
     "IP 198.18.0.2.1 > 198.18.0.1.2: Flags [R], seq 5, win 0, length 0"),
    (udp(), "ip", "IP 198.18.0.2.5000 > 198.18.0.1.7: UDP, length 5"),
    (echo(), "ip", "IP 198.18.0.2 > 198.18.0.1: ICMP echo request, id 4660, seq 1, length 40"),
    (Ipv4Packet(B, A, 1, IcmpMessage.error(3, 3, udp()).emit()).emit(), "ip",
     "IP 198.18.0.1 > 198.18.0.2: ICMP 198.18.0.1 udp port 7 unreachable, length 36"),
    (Ipv4Packet(B, A, 1, IcmpMessage.error(3, 4, syn(), mtu=1400).emit()).emit(), "ip",
     "IP 198.18.0.1 > 198.18.0.2: ICMP 198.18.0.1 unreachable - need to frag (mtu 1400), length 36"),
    (Ipv4Packet(B, A, 1, IcmpMessage.error(3, 1, syn()).emit()).emit(), "ip",
     "IP 198.18.0.1 > 198.18.0.2: ICMP 198.18.0.1 unreachable - host unreachable, length 36"),
    (Ipv4Packet(B, A, 1, IcmpMessage.error(11, 0, syn()).emit()).emit(), "ip",
     "IP 198.18.0.1 > 198.18.0.2: ICMP time exceeded in-transit, length 36"),
    (Ipv4Packet(A, B, 17, UdpDatagram(1, 2, b"q" * 100).emit(A, B), ident=9, mf=True).emit(), "ip",
     "IP 198.18.0.2.1 > 198.18.0.1.2: UDP, length 100 (frag 9:108@0+)"),
    (Ipv4Packet(A, B, 17, b"q" * 48, ident=9, frag_offset=104).emit(), "ip",
     "IP 198.18.0.2 > 198.18.0.1: ip-proto-17 (frag 9:48@104)"),
    (Ipv4Packet(A, B, 47, b"q" * 50).emit(), "ip", "IP 198.18.0.2 > 198.18.0.1: ip-proto-47 50"),
    (b"\x60" + bytes(39), "ip", "IP6, length 40"),
    (eth(syn()), "ethernet", "02:00:00:00:00:02 > 02:00:00:00:00:01, " + SYN_LINE),
    (arp(1), "ethernet",
     "02:00:00:00:00:02 > ff:ff:ff:ff:ff:ff, ARP, Request who-has 198.18.0.1 tell 198.18.0.2, length 28"),
    (arp(2), "ethernet",
     "02:00:00:00:00:02 > 02:00:00:00:00:01, ARP, Reply 198.18.0.2 is-at 02:00:00:00:00:02, length 28"),
    (EthernetFrame(MAC_B, MAC_A, 0x86DD, bytes(40)).emit(), "ethernet",
     "02:00:00:00:00:02 > 02:00:00:00:00:01, IP6, length 40"),
    (EthernetFrame(MAC_B, MAC_A, 0x88CC, bytes(10)).emit(), "ethernet",
     "02:00:00:00:00:02 > 02:00:00:00:00:01, ethertype 0x88cc, length 10"),
])
def test_format_frame(frame: bytes, medium: str, text: str) -> None:
    assert format_frame(frame, medium) == text


def flip(frame: bytes, byte: int, bit: int = 0) -> bytes:
    b = bytearray(frame)
    b[byte] ^= 1 << bit
    return bytes(b)


@pytest.mark.parametrize("frame, medium, reason", [
    (b"", "ip", "ipv4.truncated"),
    (b"\x45\x00", "ip", "ipv4.truncated"),
    (b"\x55" + bytes(30), "ip", "ipv4.bad_version"),
    (flip(syn(), 8), "ip", "ipv4.bad_checksum"),  # TTL byte: header checksum fails
    (flip(syn(), 24), "ip", "tcp.bad_checksum"),  # sequence number
    (flip(udp(), 30), "ip", "udp.bad_checksum"),
    (flip(echo(), 30), "ip", "icmp.bad_checksum"),
    (syn()[:30], "ip", "ipv4.truncated"),
    (b"\x01\x02", "ethernet", "ethernet.truncated"),
    (EthernetFrame(MAC_B, MAC_A, 0x0806, bytes(10)).emit(), "ethernet", "arp.truncated"),
    (EthernetFrame(MAC_B, MAC_A, 0x0800, b"\x45").emit(), "ethernet", "ipv4.truncated"),
])
def test_malformed_frames_say_why(frame: bytes, medium: str, reason: str) -> None:
    assert f"[malformed: {reason}]" in format_frame(frame, medium)


def test_bad_transport_header_keeps_the_ip_part() -> None:
    bad = Ipv4Packet(A, B, 6, bytes(10)).emit()  # 10 bytes of "TCP"
    assert format_frame(bad, "ip") == (
        "IP 198.18.0.2 > 198.18.0.1: ip-proto-6 [malformed: tcp.truncated] length 10")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=120), medium=st.sampled_from(["ip", "ethernet"]))
def test_never_raises_on_garbage(data: bytes, medium: str) -> None:
    assert isinstance(format_frame(data, medium), str)


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(0, 10_000), bit=st.integers(0, 7),
       base=st.sampled_from([syn(), udp(), echo(), eth(syn()), arp(1)]))
def test_never_raises_on_bit_flips_and_truncation(pos: int, bit: int, base: bytes) -> None:
    medium = "ethernet" if base[12:14] in (b"\x08\x00", b"\x08\x06") and len(base) != 40 else "ip"
    flipped = flip(base, pos % len(base), bit)
    assert isinstance(format_frame(flipped, medium), str)
    assert isinstance(format_frame(flipped[: pos % len(base)], medium), str)


def test_tracer_lines_directions_and_clock_origin() -> None:
    a, b = MemLink.pair()
    out = io.StringIO()
    ta = Tracer(a, out, clock_origin=100.0)
    ta.send(syn(), 112.345678)
    b.send(udp(), 113.0)
    assert ta.recv(113.0) == udp()
    b.send(echo(), 114.0)
    assert ta.recv_batch(114.0) == [echo()]
    assert ta.recv(115.0) is None
    lines = out.getvalue().splitlines()
    assert lines == [
        "12.345678 > " + SYN_LINE,  # '>' sent, '<' received
        "13.000000 < IP 198.18.0.2.5000 > 198.18.0.1.7: UDP, length 5",
        "14.000000 < IP 198.18.0.2 > 198.18.0.1: ICMP echo request, id 4660, seq 1, length 40",
    ]
    assert b.recv(113.0) == syn()  # frames pass unchanged


def test_tracer_callable_sink_and_direction_filter() -> None:
    a, b = MemLink.pair()
    lines: list[str] = []
    t = Tracer(a, lines.append, direction="rx")
    t.send(syn(), 0.0)
    b.send(udp(), 0.0)
    t.recv(0.0)
    assert len(lines) == 1 and lines[0].startswith("0.000000 < IP 198.18.0.2.5000")


def test_tracer_survives_a_broken_sink_and_garbage() -> None:
    a, b = MemLink.pair()

    def broken(line: str) -> None:
        raise OSError("sink closed")

    t = Tracer(a, broken)
    t.send(b"\xff" * 30, 0.0)
    assert b.recv(0.0) == b"\xff" * 30


def test_tracer_default_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = MemLink.pair()
    Tracer(a).send(b"", 1.0)
    assert capsys.readouterr().err == "1.000000 > IP [malformed: ipv4.truncated] length 0\n"
