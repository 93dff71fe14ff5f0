"""Hypothesis strategies for wire records (shared by the wire tests)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ustack.wire import ArpPacket, EthernetFrame, IcmpMessage, Ipv4Packet, TcpOptions, TcpSegment, UdpDatagram

# The machine (and CI) is shared: modest, deterministic example counts. Not a global profile, so
# other test directories keep their own settings.
wire_settings = settings(max_examples=200, derandomize=True, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
macs = st.binary(min_size=6, max_size=6)
payloads = st.binary(max_size=80)
ports = st.integers(1, 0xFFFF)  # parse rejects destination port 0 for UDP

ethernet_frames = st.builds(EthernetFrame, macs, macs, st.integers(0x0600, 0xFFFF), payloads)
arp_packets = st.builds(ArpPacket, st.sampled_from([1, 2]), macs, u32, macs, u32)


@st.composite
def ipv4_packets(draw: st.DrawFn, proto: int | None = None, payload: bytes | None = None,
                 options: bool = True) -> Ipv4Packet:
    body = draw(payloads) if payload is None else payload
    opts = draw(st.binary(max_size=40)) if options else b""
    mf = draw(st.booleans())
    # a fragment must end at or before byte 65535 of the datagram
    max_units = (0xFFFF - len(body)) >> 3
    offset = draw(st.one_of(st.just(0), st.integers(0, max_units))) << 3
    return Ipv4Packet(
        draw(u32), draw(u32), draw(u8) if proto is None else proto, body, draw(u8), draw(u16),
        draw(st.booleans()), mf, offset, draw(u8), opts,
    )


sack_blocks = st.lists(st.tuples(u32, u32), max_size=5).map(tuple)
tcp_options = st.builds(
    TcpOptions, st.none() | u16, st.none() | u8, st.booleans(), sack_blocks, st.none() | st.tuples(u32, u32)
)
tcp_segments = st.builds(
    TcpSegment, u16, u16, u32, u32, u8, u16, payloads,
    st.one_of(st.just(TcpOptions()), tcp_options), u16,
)
udp_datagrams = st.builds(UdpDatagram, u16, ports, payloads)
icmp_messages = st.builds(IcmpMessage, u8, u8, u32, payloads)
