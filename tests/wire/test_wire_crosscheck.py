"""Every field cross-checked against dpkt and scapy decoding the same bytes, both directions.

ustack emits -> dpkt and scapy decode -> fields compared (and scapy recomputes the checksums we
emitted); scapy builds -> ustack parses -> fields compared.
"""

from __future__ import annotations

import struct

import dpkt
import pytest
import scapy.all as scapy_all
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_strategies import (
    arp_packets,
    ipv4_packets,
    macs,
    payloads,
    ports,
    tcp_options,
    u8,
    u16,
    u32,
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
    ip_int,
    ip_str,
)
from ustack.wire import icmp as icmp_mod
from ustack.wire.ethernet import mac_str

ARP, ICMP, IP, TCP, UDP, Ether, Raw, raw = (
    scapy_all.ARP, scapy_all.ICMP, scapy_all.IP, scapy_all.TCP, scapy_all.UDP, scapy_all.Ether,
    scapy_all.Raw, scapy_all.raw,
)
IPerror = scapy_all.IPerror

# scapy is slow: fewer examples than the other wire tests
cross_settings = settings(wire_settings, max_examples=100)
EXPERIMENTAL_PROTO = 253  # RFC 3692: neither dpkt nor scapy decodes it further
EXPERIMENTAL_ETHERTYPE = 0x88B5  # IEEE local experimental


def _b2i(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _scapy_rebuilt_checksums(pkt, *layers) -> bytes:
    """Delete the checksum fields (of `pkt` itself) and let scapy recompute them; the bytes
    must equal what ustack emitted."""
    for layer in layers:
        del pkt[layer].chksum
    return raw(pkt.__class__(raw(pkt)))  # noqa: RET504


def _scapy_tcp_options(opts: list) -> TcpOptions:
    """What ustack should decode from scapy's option list (the last of repeated options wins)."""
    mss = wscale = ts = None
    sack_perm = False
    sack: tuple = ()
    for name, value in opts:
        if name == "MSS":
            mss = value
        elif name == "WScale":
            wscale = value
        elif name == "SAckOK":
            sack_perm = True
        elif name == "Timestamp":
            ts = tuple(value)
        elif name == "SAck":
            sack = tuple(zip(value[::2], value[1::2], strict=True))
        elif name == "EOL":
            break
    return TcpOptions(mss, wscale, sack_perm, sack, ts)


def _dpkt_tcp_options(opts: bytes) -> TcpOptions:
    mss = wscale = ts = None
    sack_perm = False
    sack: tuple = ()
    for kind, data in dpkt.tcp.parse_opts(opts):
        if kind == dpkt.tcp.TCP_OPT_MSS:
            mss = _b2i(data)
        elif kind == dpkt.tcp.TCP_OPT_WSCALE:
            wscale = data[0]
        elif kind == dpkt.tcp.TCP_OPT_SACKOK:
            sack_perm = True
        elif kind == dpkt.tcp.TCP_OPT_TIMESTAMP:
            ts = struct.unpack("!II", data)
        elif kind == dpkt.tcp.TCP_OPT_SACK:
            sack = tuple(struct.unpack_from("!II", data, i) for i in range(0, len(data), 8))
        elif kind == dpkt.tcp.TCP_OPT_EOL:
            break
    return TcpOptions(mss, wscale, sack_perm, sack, ts)


# ---------------------------------------------------------------- ustack emits, others decode


@cross_settings
@given(st.builds(EthernetFrame, macs, macs, st.just(EXPERIMENTAL_ETHERTYPE), payloads))
def test_ethernet_decoded_by_others(frame: EthernetFrame) -> None:
    b = frame.emit()
    d = dpkt.ethernet.Ethernet(b)
    assert (d.dst, d.src, d.type, bytes(d.data)) == (frame.dst, frame.src, frame.ethertype, frame.payload)
    s = Ether(b)
    assert (s.dst, s.src, s.type) == (mac_str(frame.dst), mac_str(frame.src), frame.ethertype)
    assert bytes(s.payload) == frame.payload


@cross_settings
@given(arp_packets)
def test_arp_decoded_by_others(arp: ArpPacket) -> None:
    b = arp.emit()
    d = dpkt.arp.ARP(b)
    assert (d.hrd, d.pro, d.hln, d.pln, d.op) == (1, 0x0800, 6, 4, arp.op)
    assert (d.sha, _b2i(d.spa), d.tha, _b2i(d.tpa)) == (arp.sha, arp.spa, arp.tha, arp.tpa)
    s = ARP(b)
    assert (s.hwtype, s.ptype, s.hwlen, s.plen, s.op) == (1, 0x0800, 6, 4, arp.op)
    assert (s.hwsrc, s.psrc, s.hwdst, s.pdst) == (
        mac_str(arp.sha), ip_str(arp.spa), mac_str(arp.tha), ip_str(arp.tpa))


@cross_settings
@given(ipv4_packets(proto=EXPERIMENTAL_PROTO))
def test_ipv4_decoded_by_others(pkt: Ipv4Packet) -> None:
    b = pkt.emit()
    hlen = pkt.header_len()
    d = dpkt.ip.IP(b)
    assert (d.v, d.hl * 4, d.tos, d.len, d.id, d.ttl, d.p) == (
        4, hlen, pkt.tos, len(b), pkt.ident, pkt.ttl, pkt.proto)
    # dpkt's offset is in 8-byte units
    assert (bool(d.df), bool(d.mf), d.offset * 8, d.rf) == (pkt.df, pkt.mf, pkt.frag_offset, 0)
    assert (_b2i(d.src), _b2i(d.dst)) == (pkt.src, pkt.dst)
    assert d.opts == pkt.options + b"\0" * (-len(pkt.options) % 4)
    assert bytes(d.data) == pkt.payload
    s = IP(b)
    assert (s.version, s.ihl * 4, s.tos, s.len, s.id, s.ttl, s.proto) == (
        4, hlen, pkt.tos, len(b), pkt.ident, pkt.ttl, pkt.proto)
    assert (int(s.flags), s.frag * 8) == ((2 if pkt.df else 0) | (1 if pkt.mf else 0), pkt.frag_offset)
    assert (s.src, s.dst) == (ip_str(pkt.src), ip_str(pkt.dst))
    assert bytes(s.payload) == pkt.payload
    if not pkt.options:  # scapy may re-serialise random option bytes differently
        assert _scapy_rebuilt_checksums(s, IP) == b
    from ustack.wire.checksum import reference_checksum

    assert reference_checksum(b[:hlen]) == 0  # header sums to all ones


@cross_settings
@given(u32, u32, u16, u16, u32, u32, u8, u16, u16, payloads, st.one_of(st.just(NO_OPTIONS), tcp_options))
def test_tcp_decoded_by_others(src, dst, sport, dport, seq, ack, flags, window, urg, data, opts) -> None:
    seg = TcpSegment(sport, dport, seq, ack, flags, window, data, opts, urg)
    b = Ipv4Packet(src, dst, 6, seg.emit(src, dst)).emit()
    expected_opts = TcpOptions.parse(opts.emit())
    s = IP(b)
    t = s[TCP]
    assert (t.sport, t.dport, t.seq, t.ack, int(t.flags), t.window, t.urgptr) == (
        sport, dport, seq, ack, flags, window, urg)
    assert t.dataofs * 4 == 20 + len(opts.emit())
    assert _scapy_tcp_options(t.options) == expected_opts
    assert bytes(t.payload) == data
    assert _scapy_rebuilt_checksums(s, IP, TCP) == b
    d = dpkt.tcp.TCP(b[20:])
    assert (d.sport, d.dport, d.seq, d.ack, d.flags, d.win, d.urp) == (
        sport, dport, seq, ack, flags, window, urg)
    assert d.off * 4 == 20 + len(opts.emit())
    assert _dpkt_tcp_options(d.opts) == expected_opts
    assert bytes(d.data) == data


@cross_settings
@given(u32, u32, u16, ports, payloads)
def test_udp_decoded_by_others(src, dst, sport, dport, data) -> None:
    b = Ipv4Packet(src, dst, 17, UdpDatagram(sport, dport, data).emit(src, dst)).emit()
    s = IP(b)
    u = s[UDP]
    assert (u.sport, u.dport, u.len, bytes(u.payload)) == (sport, dport, 8 + len(data), data)
    d = dpkt.udp.UDP(b[20:])
    assert (d.sport, d.dport, d.ulen, bytes(d.data)) == (sport, dport, 8 + len(data), data)
    assert d.sum == u.chksum != 0
    assert _scapy_rebuilt_checksums(s, IP, UDP) == b


@cross_settings
@given(st.booleans(), u16, u16, payloads)
def test_icmp_echo_decoded_by_others(request, ident, seq, data) -> None:
    m = IcmpMessage.echo(request, ident, seq, data)
    b = m.emit()
    s = ICMP(b)
    assert (s.type, s.code, s.id, s.seq, bytes(s.payload)) == (8 if request else 0, 0, ident, seq, data)
    del s.chksum
    assert raw(ICMP(raw(s))) == b
    d = dpkt.icmp.ICMP(b)
    assert (d.type, d.code, d.data.id, d.data.seq, d.data.data) == (m.type, 0, ident, seq, data)


def _offending(src=0xC6120002, dst=0xC6120001, sport=40000, dport=53) -> bytes:
    return Ipv4Packet(src, dst, 17, UdpDatagram(sport, dport, b"query").emit(src, dst), ttl=5).emit()


@pytest.mark.parametrize("code", range(16))
def test_icmp_unreachable_every_code(code: int) -> None:
    off = _offending()
    m = IcmpMessage.error(icmp_mod.DEST_UNREACH, code, off, mtu=1280)
    b = m.emit()
    s = ICMP(b)
    assert (s.type, s.code) == (3, code)
    assert s.nexthopmtu == (1280 if code == icmp_mod.FRAG_NEEDED else 0)
    q = s[IPerror]
    assert (q.src, q.dst, q.proto, q.ttl) == ("198.18.0.2", "198.18.0.1", 17, 5)
    assert raw(q)[:28] == off[:28]
    del s.chksum
    assert raw(ICMP(raw(s))) == b
    d = dpkt.icmp.ICMP(b)
    assert (d.type, d.code, d.data.mtu) == (3, code, m.mtu)
    assert bytes(d.data.data)[:28] == off[:28]
    # and ustack reads its own quote back
    back = IcmpMessage.parse(b)
    ip, transport = back.quoted()
    assert (ip.src, ip.dst, ip.proto, ip.ttl) == (0xC6120002, 0xC6120001, 17, 5)
    assert struct.unpack_from("!HH", transport) == (40000, 53)
    assert icmp_mod.UNREACH_NAMES[code]


def test_icmp_time_exceeded_decoded_by_others() -> None:
    off = _offending()
    b = IcmpMessage.error(icmp_mod.TIME_EXCEEDED, 0, off).emit()
    s = ICMP(b)
    assert (s.type, s.code, s.unused) == (11, 0, 0)
    assert raw(s[IPerror])[:28] == off[:28]
    d = dpkt.icmp.ICMP(b)
    assert (d.type, d.code) == (11, 0)
    assert bytes(d.data.data)[:28] == off[:28]


# ---------------------------------------------------------------- scapy builds, ustack parses

addrs = st.integers(0, 0xFFFFFFFF).map(ip_str)
scapy_tcp_option = st.one_of(
    st.tuples(st.just("MSS"), u16),
    st.tuples(st.just("WScale"), st.integers(0, 14)),
    st.tuples(st.just("SAckOK"), st.just(b"")),
    st.tuples(st.just("Timestamp"), st.tuples(u32, u32)),
    st.tuples(st.just("SAck"), st.lists(u32, min_size=2, max_size=6).filter(lambda x: len(x) % 2 == 0)
              .map(tuple)),
    st.tuples(st.just("NOP"), st.none()),
    st.tuples(st.sampled_from([30, 34, 253]), st.binary(max_size=4)),  # unknown: skipped
)


def _opt_size(o) -> int:
    name, value = o
    return {"MSS": 4, "WScale": 3, "SAckOK": 2, "Timestamp": 10, "NOP": 1}.get(
        name, 2 + (4 * len(value) if name == "SAck" else len(value) if isinstance(value, bytes) else 0))


scapy_tcp_options = st.lists(scapy_tcp_option, max_size=6).filter(lambda os: sum(map(_opt_size, os)) <= 40)


@cross_settings
@given(addrs, addrs, u8, u16, st.booleans(), st.integers(0, 255), u16, u16, u32, u32, u8, u16, u16,
       scapy_tcp_options, payloads)
def test_scapy_tcp_parsed_by_ustack(src, dst, tos, ident, df, ttl, sport, dport, seq, ack, flags, win, urg,
                                    opts, data) -> None:
    s = IP(src=src, dst=dst, tos=tos, id=ident, flags="DF" if df else 0, ttl=ttl) / TCP(
        sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=win, urgptr=urg, options=opts
    ) / Raw(data)
    b = raw(s)
    ip = Ipv4Packet.parse(b)
    assert (ip.src, ip.dst, ip.tos, ip.ident, ip.df, ip.mf, ip.frag_offset, ip.ttl, ip.proto) == (
        ip_int(src), ip_int(dst), tos, ident, df, False, 0, ttl, 6)
    seg = TcpSegment.parse(ip.payload, ip.src, ip.dst)
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.window, seg.urg) == (
        sport, dport, seq, ack, flags, win, urg)
    assert seg.options == _scapy_tcp_options(opts)  # the options we asked scapy to build
    assert bytes(seg.payload) == data


@cross_settings
@given(addrs, addrs, u16, ports, payloads, st.integers(0, 8191), st.booleans())
def test_scapy_udp_and_fragments_parsed_by_ustack(src, dst, sport, dport, data, frag, mf) -> None:
    s = IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(data)
    b = raw(s)
    ip = Ipv4Packet.parse(b)
    d = UdpDatagram.parse(ip.payload, ip.src, ip.dst)
    assert (d.sport, d.dport, bytes(d.payload)) == (sport, dport, data)
    # the same bytes as a fragment: offsets and MF as scapy encodes them
    frag = min(frag, (0xFFFF - 8 - len(data)) >> 3)
    frag_pkt = IP(src=src, dst=dst, proto=17, frag=frag, flags="MF" if mf else 0) / Raw(b[20:])
    f = Ipv4Packet.parse(raw(frag_pkt))
    assert (f.frag_offset, f.mf, f.df, f.is_fragment) == (frag * 8, mf, False, bool(frag or mf))


@cross_settings
@given(addrs, addrs, st.sampled_from([(3, c) for c in range(16)] + [(11, 0), (11, 1), (12, 0), (4, 0)]),
       u16, ports)
def test_scapy_icmp_errors_parsed_by_ustack(src, dst, kind, sport, dport) -> None:
    typ, code = kind
    inner = IP(src=dst, dst=src, ttl=3) / UDP(sport=sport, dport=dport) / Raw(b"payload!")
    mtu = 1400 if (typ, code) == (3, 4) else 0
    s = IP(src=src, dst=dst) / ICMP(type=typ, code=code, nexthopmtu=mtu) / IPerror(raw(inner)[:28])
    ip = Ipv4Packet.parse(raw(s))
    m = IcmpMessage.parse(ip.payload)
    assert (m.type, m.code, m.is_error) == (typ, code, True)
    if (typ, code) == (3, 4):
        assert m.mtu == 1400
    q, transport = m.quoted()
    assert (q.src, q.dst, q.proto, q.ttl) == (ip_int(dst), ip_int(src), 17, 3)
    assert struct.unpack_from("!HH", transport) == (sport, dport)


@cross_settings
@given(u16, u16, payloads, st.booleans())
def test_scapy_icmp_echo_parsed_by_ustack(ident, seq, data, request) -> None:
    b = raw(ICMP(type=8 if request else 0, id=ident, seq=seq) / Raw(data))
    m = IcmpMessage.parse(b)
    assert (m.type, m.code, m.ident, m.seq, bytes(m.payload)) == (8 if request else 0, 0, ident, seq, data)


@cross_settings
@given(macs, macs, st.sampled_from([1, 2]), addrs, addrs)
def test_scapy_arp_parsed_by_ustack(hwsrc, hwdst, op, psrc, pdst) -> None:
    b = raw(Ether(dst="ff:ff:ff:ff:ff:ff", src=mac_str(hwsrc)) / ARP(
        op=op, hwsrc=mac_str(hwsrc), psrc=psrc, hwdst=mac_str(hwdst), pdst=pdst))
    eth = EthernetFrame.parse(b)
    assert (eth.dst, eth.src, eth.ethertype) == (b"\xff" * 6, hwsrc, 0x0806)
    a = ArpPacket.parse(eth.payload)
    assert a == ArpPacket(op, hwsrc, ip_int(psrc), hwdst, ip_int(pdst))


@pytest.mark.parametrize(
    "option",
    ["IPOption_Router_Alert", "IPOption_NOP", "IPOption_RR", "IPOption_Timestamp", "IPOption_LSRR"],
)
def test_scapy_ip_options_kept_raw_by_ustack(option: str) -> None:
    opt = getattr(scapy_all, option)()
    b = raw(IP(src="198.18.0.1", dst="198.18.0.2", options=[opt]) / UDP(sport=1, dport=2) / Raw(b"x"))
    s = IP(b)
    ip = Ipv4Packet.parse(b)
    assert ip.header_len() == s.ihl * 4 and ip.options == b[20:s.ihl * 4]
    assert UdpDatagram.parse(ip.payload, ip.src, ip.dst).payload == b"x"
    assert ip.emit() == b  # re-emitted bit for bit, checksum included
