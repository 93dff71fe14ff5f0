"""Random and mutated bytes never make a parser raise anything but Malformed.

Whatever a parser accepts, the matching `emit` can write back (no crash on decoded values).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from wire_strategies import ipv4_packets, tcp_options, tcp_segments, u32, udp_datagrams, wire_settings

from ustack.wire import (
    ArpPacket,
    EthernetFrame,
    IcmpMessage,
    Ipv4Packet,
    Malformed,
    TcpOptions,
    TcpSegment,
    UdpDatagram,
)
from ustack.wire.icmp import ERROR_TYPES

junk = st.one_of(st.binary(max_size=120), st.binary(max_size=120).map(bytearray),
                 st.binary(max_size=120).map(memoryview))


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding with a few bytes overwritten and maybe cut short: reaches deep checks."""
    b = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        if b:
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
    return bytes(b[: draw(st.integers(0, len(b)))]) if draw(st.booleans()) else bytes(b)


def _accepts_or_malformed(parse, *args):
    try:
        return parse(*args)
    except Malformed as e:
        assert e.reason.count(".") == 1 and e.reason == e.reason.lower()
        assert str(e).startswith(e.reason)
        return None


ip_bytes = ipv4_packets().map(lambda p: p.emit())
tcp_bytes = st.tuples(tcp_segments, u32, u32).map(lambda t: t[0].emit(t[1], t[2]))


@wire_settings
@given(st.one_of(junk, mutated(ip_bytes)), st.booleans())
def test_ipv4(buf, verify: bool) -> None:
    p = _accepts_or_malformed(Ipv4Packet.parse, buf, verify)
    if p is not None:
        p.emit()


@wire_settings
@given(st.one_of(junk, mutated(tcp_bytes)), u32, u32, st.booleans())
def test_tcp(buf, src: int, dst: int, verify: bool) -> None:
    seg = _accepts_or_malformed(TcpSegment.parse, buf, src, dst, verify)
    if seg is not None:
        seg.emit(src, dst)
        # the inlined NOP-NOP-TS fast path decodes exactly like the general option parser
        hlen = (buf[12] >> 4) * 4
        if hlen > 20:
            assert seg.options == TcpOptions.parse(bytes(buf[20:hlen]))


@wire_settings
@given(st.tuples(u32, u32), st.integers(1, 28))
def test_tcp_options_fast_path_equals_general_path(ts, pad: int) -> None:
    fast = TcpOptions.parse(b"\x01\x01\x08\x0a" + ts[0].to_bytes(4, "big") + ts[1].to_bytes(4, "big"))
    general = TcpOptions.parse(b"\x01\x01\x08\x0a" + ts[0].to_bytes(4, "big") + ts[1].to_bytes(4, "big")
                               + b"\0" * pad)
    assert fast == general == TcpOptions(ts=ts)


@wire_settings
@given(st.one_of(st.binary(max_size=60), mutated(tcp_options.map(lambda o: o.emit()))))
def test_tcp_options(buf: bytes) -> None:
    o = _accepts_or_malformed(TcpOptions.parse, buf)
    if o is not None:
        o.emit()


@wire_settings
@given(st.one_of(junk, mutated(st.tuples(udp_datagrams, u32, u32).map(lambda t: t[0].emit(t[1], t[2])))),
       u32, u32, st.booleans())
def test_udp(buf, src: int, dst: int, verify: bool) -> None:
    d = _accepts_or_malformed(UdpDatagram.parse, buf, src, dst, verify)
    if d is not None:
        d.emit(src, dst)


@wire_settings
@given(junk, st.booleans())
def test_icmp(buf, verify: bool) -> None:
    m = _accepts_or_malformed(IcmpMessage.parse, buf, verify)
    if m is not None:
        m.emit()
        _accepts_or_malformed(m.quoted)


@wire_settings
@given(st.sampled_from(sorted(ERROR_TYPES)), st.integers(0, 255),
       st.one_of(junk, mutated(ip_bytes)))
def test_icmp_quoted(typ: int, code: int, quote) -> None:
    m = IcmpMessage(typ, code, 0, quote)
    r = _accepts_or_malformed(m.quoted)
    if r is not None:
        ip, transport = r
        assert len(transport) >= 8 and bytes(ip.payload) == transport
        ip.emit()


@wire_settings
@given(junk)
def test_ethernet_and_arp(buf) -> None:
    f = _accepts_or_malformed(EthernetFrame.parse, buf)
    if f is not None:
        f.emit()
    a = _accepts_or_malformed(ArpPacket.parse, buf)
    if a is not None:
        a.emit()


@wire_settings
@given(st.binary(min_size=28, max_size=28))
def test_arp_shaped(buf: bytes) -> None:
    buf = b"\x00\x01\x08\x00\x06\x04" + buf[6:]  # get past the type checks more often
    a = _accepts_or_malformed(ArpPacket.parse, buf)
    if a is not None:
        assert a.emit() == buf
