"""parse(emit(r)) == r for every record type, modulo the documented normalisations:

- payloads come back as memoryviews (equal by content);
- Ipv4Packet.options come back zero-padded (EOL) to a multiple of 4;
- TcpOptions.emit keeps as many SACK blocks as fit in 40 bytes (a prefix of the list);
- TcpSegment loses nothing else (the reserved/AE bits are not representable, and emit writes 0).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from wire_strategies import (
    arp_packets,
    ethernet_frames,
    icmp_messages,
    ipv4_packets,
    tcp_options,
    tcp_segments,
    u32,
    udp_datagrams,
    wire_settings,
)

from ustack.wire import (
    NO_OPTIONS,
    ArpPacket,
    EthernetFrame,
    IcmpMessage,
    Ipv4Packet,
    TcpOptions,
    TcpSegment,
    UdpDatagram,
)
from ustack.wire.ipv4 import quick_header
from ustack.wire.tcp import MAX_OPTIONS


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


@wire_settings
@given(ethernet_frames)
def test_ethernet(frame: EthernetFrame) -> None:
    raw = frame.emit()
    assert len(raw) == 14 + len(frame.payload)
    assert EthernetFrame.parse(raw) == frame


@wire_settings
@given(arp_packets)
def test_arp(arp: ArpPacket) -> None:
    raw = arp.emit()
    assert len(raw) == 28
    assert ArpPacket.parse(raw) == arp
    assert ArpPacket.parse(raw + b"\0" * 18) == arp  # Ethernet minimum-size padding is ignored


@wire_settings
@given(ipv4_packets())
def test_ipv4(pkt: Ipv4Packet) -> None:
    raw = pkt.emit()
    back = Ipv4Packet.parse(raw)
    assert back == pkt._replace(options=_pad4(pkt.options))
    assert len(raw) == back.header_len() + len(pkt.payload)
    assert Ipv4Packet.parse(raw + b"\0" * 7) == back  # link padding after total length is dropped


@wire_settings
@given(u32, u32, st.integers(0, 255), st.integers(0, 1480), st.integers(0, 0xFFFF), st.integers(0, 255),
       st.booleans(), st.integers(0, 255))
def test_quick_header_equals_full_header(src, dst, proto, n, ident, ttl, df, tos) -> None:
    full = Ipv4Packet(src, dst, proto, b"", ttl, ident, df, False, 0, tos).header(n)
    assert quick_header(src, dst, proto, n, ident, ttl, df, tos) == full


@wire_settings
@given(icmp_messages)
def test_icmp(msg: IcmpMessage) -> None:
    assert IcmpMessage.parse(msg.emit()) == msg


@wire_settings
@given(udp_datagrams, u32, u32)
def test_udp(d: UdpDatagram, src: int, dst: int) -> None:
    raw = d.emit(src, dst)
    assert raw[6:8] != b"\0\0"  # a computed 0 is sent as 0xffff
    assert UdpDatagram.parse(raw, src, dst) == d


def test_udp_checksum_computing_to_zero_is_sent_as_all_ones() -> None:
    # pseudo-header + header words sum to 40 with these values; the payload word makes it 0xffff
    d = UdpDatagram(1, 2, b"\xff\xd7")
    raw = d.emit(0, 0)
    assert raw[6:8] == b"\xff\xff"  # RFC 768: 0 would mean "no checksum"
    assert UdpDatagram.parse(raw, 0, 0) == d
    from scapy.all import IP, UDP
    from scapy.all import raw as scapy_raw

    assert scapy_raw(IP(src="0.0.0.0", dst="0.0.0.0") / UDP(sport=1, dport=2) / b"\xff\xd7")[20:] == raw


@wire_settings
@given(tcp_options)
def test_tcp_options(opts: TcpOptions) -> None:
    raw = opts.emit()
    assert len(raw) <= MAX_OPTIONS and len(raw) % 4 == 0
    back = TcpOptions.parse(raw)
    assert back._replace(sack=()) == opts._replace(sack=())
    # SACK blocks: a prefix, and one more block would not have fit
    assert back.sack == opts.sack[: len(back.sack)]
    if len(back.sack) < len(opts.sack):
        base = len(opts._replace(sack=()).emit())
        assert base + 4 + 8 * (len(back.sack) + 1) > MAX_OPTIONS


def test_sack_blocks_that_fit() -> None:
    blocks = tuple((i, i + 1) for i in range(5))
    assert len(TcpOptions.parse(TcpOptions(sack=blocks).emit()).sack) == 4
    assert len(TcpOptions.parse(TcpOptions(sack=blocks, ts=(1, 2)).emit()).sack) == 3
    assert TcpOptions().emit() == b""


@wire_settings
@given(tcp_segments, u32, u32)
def test_tcp(seg: TcpSegment, src: int, dst: int) -> None:
    back = TcpSegment.parse(seg.emit(src, dst), src, dst)
    expected_opts = TcpOptions.parse(seg.options.emit()) if seg.options != NO_OPTIONS else NO_OPTIONS
    assert back == seg._replace(options=expected_opts)


@wire_settings
@given(tcp_segments, u32, u32)
def test_full_stack_frame(seg: TcpSegment, src: int, dst: int) -> None:
    """Ethernet / IPv4 / TCP nested, decoded layer by layer from one buffer."""
    ip = Ipv4Packet(src, dst, 6, seg.emit(src, dst), ident=7, df=True)
    frame = EthernetFrame(b"\x02" * 6, b"\x04" * 6, 0x0800, ip.emit()).emit()
    eth = EthernetFrame.parse(frame)
    ip2 = Ipv4Packet.parse(eth.payload)
    seg2 = TcpSegment.parse(ip2.payload, ip2.src, ip2.dst)
    assert (seg2.sport, seg2.dport, seg2.seq, seg2.ack, bytes(seg2.payload)) == (
        seg.sport, seg.dport, seg.seq, seg.ack, bytes(seg.payload))


def test_payloads_are_views_into_the_input_not_copies() -> None:
    src, dst = 0xC6120001, 0xC6120002
    seg = TcpSegment(1, 2, 3, 4, 0x18, 100, b"data", TcpOptions(ts=(1, 2)))
    frame = bytearray(EthernetFrame(b"\x02" * 6, b"\x04" * 6, 0x0800,
                                    Ipv4Packet(src, dst, 6, seg.emit(src, dst)).emit()).emit())
    eth = EthernetFrame.parse(frame)
    ip = Ipv4Packet.parse(eth.payload)
    tcp = TcpSegment.parse(ip.payload, ip.src, ip.dst)
    for view in (eth.payload, ip.payload, tcp.payload):
        assert isinstance(view, memoryview) and view.obj is frame
    assert bytes(tcp.payload) == b"data"


def test_icmp_quote_with_ip_options() -> None:
    src, dst = 0xC6120001, 0xC6120002
    offending = Ipv4Packet(src, dst, 6, TcpSegment(1234, 80, 5, 0, 0x02, 100).emit(src, dst),
                           options=b"\x94\x04\x00\x00").emit()  # router alert
    m = IcmpMessage.parse(IcmpMessage.error(3, 4, offending, mtu=576).emit())
    ip, transport = m.quoted()
    assert (ip.options, ip.src, ip.dst, m.mtu) == (b"\x94\x04\x00\x00", src, dst, 576)
    assert transport == offending[24:32]
