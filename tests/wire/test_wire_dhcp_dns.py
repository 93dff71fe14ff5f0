"""DHCP and DNS codecs cross-checked against scapy (BOOTP/DHCP, DNS) and dpkt.dns."""

from __future__ import annotations

import dpkt
import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP

from ustack.wire import Malformed, ip_int
from ustack.wire import dhcp as D
from ustack.wire import dns as N

MAC = bytes.fromhex("020000abcdef")


def test_dhcp_discover_decoded_by_scapy():
    m = D.DhcpMessage(D.BOOTREQUEST, 0x12345678, MAC, {
        D.OPT_MESSAGE_TYPE: bytes([D.DISCOVER]),
        D.OPT_PARAM_LIST: bytes([1, 3, 6, 51]),
        D.OPT_REQUESTED_ADDR: ip_int("198.18.0.50").to_bytes(4, "big"),
    }, secs=3, flags=D.FLAG_BROADCAST)
    raw = m.emit()
    assert len(raw) == D.MIN_LEN  # padded like every BOOTP client
    b = BOOTP(raw)
    assert (b.op, b.xid, b.secs, b.flags, b.chaddr[:6]) == (1, 0x12345678, 3, 0x8000, MAC)
    opts = dict(o for o in b[DHCP].options if isinstance(o, tuple))
    assert opts["message-type"] == 1
    assert opts["param_req_list"] == [1, 3, 6, 51]
    assert opts["requested_addr"] == "198.18.0.50"
    assert D.DhcpMessage.parse(raw) == m


def test_dhcp_ack_built_by_scapy_parses():
    raw = bytes(BOOTP(op=2, xid=77, yiaddr="198.18.0.60", siaddr="198.18.0.1",
                      chaddr=MAC + bytes(10), flags=0x8000)
                / DHCP(options=[("message-type", "ack"), ("server_id", "198.18.0.1"),
                                ("lease_time", 120), ("renewal_time", 60), ("rebinding_time", 105),
                                ("subnet_mask", "255.255.255.0"), ("router", "198.18.0.1"),
                                ("name_server", "198.18.0.1", "198.18.0.2"), "end"]))
    m = D.DhcpMessage.parse(raw)
    assert m.op == D.BOOTREPLY and m.xid == 77 and m.chaddr == MAC
    assert m.message_type == D.ACK
    assert m.yiaddr == ip_int("198.18.0.60") and m.siaddr == ip_int("198.18.0.1")
    assert m.address(D.OPT_SERVER_ID) == ip_int("198.18.0.1")
    times = (D.OPT_LEASE_TIME, D.OPT_RENEWAL_T1, D.OPT_REBINDING_T2)
    assert [m.seconds(t) for t in times] == [120, 60, 105]
    assert m.address(D.OPT_SUBNET_MASK) == 0xFFFFFF00
    assert m.addresses(D.OPT_DNS) == [ip_int("198.18.0.1"), ip_int("198.18.0.2")]
    assert m.addresses(D.OPT_ROUTER) == [ip_int("198.18.0.1")]


def test_dhcp_long_option_split_and_joined():
    m = D.DhcpMessage(D.BOOTREQUEST, 1, MAC, {D.OPT_CLIENT_ID: bytes(range(256)) * 2})
    raw = m.emit()
    assert D.DhcpMessage.parse(raw).options[D.OPT_CLIENT_ID] == bytes(range(256)) * 2  # RFC 3396


def test_dhcp_overload_reads_file_field():
    base = D.DhcpMessage(D.BOOTREPLY, 5, MAC, {D.OPT_MESSAGE_TYPE: bytes([D.OFFER]), D.OPT_OVERLOAD: b"\x01"},
                         file=bytes([D.OPT_SERVER_ID, 4, 198, 18, 0, 1, 255]))
    m = D.DhcpMessage.parse(base.emit())
    assert m.address(D.OPT_SERVER_ID) == ip_int("198.18.0.1") and m.file == b""


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda b: b[:100], "dhcp.truncated"),
    (lambda b: b"\x03" + b[1:], "dhcp.unsupported"),
    (lambda b: b[:1] + b"\x06" + b[2:], "dhcp.unsupported"),
    (lambda b: b[:236] + b"\0\0\0\0" + b[240:], "dhcp.bad_cookie"),
    (lambda b: b[:240] + bytes([53]), "dhcp.bad_option"),
    (lambda b: b[:240] + bytes([53, 9, 1]), "dhcp.bad_option"),
])
def test_dhcp_malformed(mutate, reason):
    raw = D.DhcpMessage(D.BOOTREPLY, 1, MAC, {D.OPT_MESSAGE_TYPE: b"\x02"}).emit()
    with pytest.raises(Malformed) as e:
        D.DhcpMessage.parse(mutate(raw))
    assert e.value.reason == reason


def test_dhcp_emit_errors_name_the_field():
    with pytest.raises(ValueError, match="xid"):
        D.DhcpMessage(1, 1 << 32, MAC, {}).emit()
    with pytest.raises(ValueError, match="chaddr"):
        D.DhcpMessage(1, 1, b"\1\2", {}).emit()


# ---- DNS ----------------------------------------------------------------------------------------
def test_dns_query_decoded_by_scapy_and_dpkt():
    raw = N.DnsMessage.query(0xBEEF, "www.example.test", N.TYPE_AAAA).emit()
    s = DNS(raw)
    assert s.id == 0xBEEF and s.rd == 1 and s.qr == 0 and s.qdcount == 1
    assert s.qd[0].qname == b"www.example.test." and s.qd[0].qtype == 28
    d = dpkt.dns.DNS(raw)
    assert d.id == 0xBEEF and d.qd[0].name == "www.example.test" and d.qd[0].type == dpkt.dns.DNS_AAAA


def test_dns_compressed_answer_from_scapy():
    """scapy compresses names: the CNAME chain, A and AAAA answers come out right."""
    pkt = IP(dst="198.18.0.2") / UDP() / DNS(
        id=9, qr=1, rd=1, ra=1, qd=DNSQR(qname="www.example.test"),
        an=[DNSRR(rrname="www.example.test", type="CNAME", ttl=30, rdata="web.example.test"),
            DNSRR(rrname="web.example.test", type="A", ttl=60, rdata="198.18.0.80"),
            DNSRR(rrname="web.example.test", type="AAAA", ttl=60, rdata="2001:2::80")])
    raw = bytes(pkt[DNS].compress())
    assert len(raw) < len(bytes(pkt[DNS]))  # really compressed
    m = N.DnsMessage.parse(raw)
    assert m.id == 9 and m.is_response and m.rcode == N.NOERROR and not m.truncated
    assert m.questions == (N.DnsQuestion("www.example.test", N.TYPE_A),)
    assert m.answers[0] == N.DnsRecord("www.example.test", N.TYPE_CNAME, 30, "web.example.test")
    assert m.addresses() == ["198.18.0.80"] and m.addresses(N.TYPE_AAAA) == ["2001:2::80"]


def test_dns_response_emitted_decoded_by_dpkt():
    m = N.DnsMessage(3, N.FLAG_QR | N.FLAG_RD | N.FLAG_RA | N.NXDOMAIN, (N.DnsQuestion("nope.test"),),
                     (N.DnsRecord("a.test", N.TYPE_A, 5, "198.18.1.1"),
                      N.DnsRecord("a.test", N.TYPE_AAAA, 5, "2001:2::1")))
    raw = m.emit()
    d = dpkt.dns.DNS(raw)
    assert d.rcode == dpkt.dns.DNS_RCODE_NXDOMAIN and d.qr == 1
    assert [(rr.name, rr.type, rr.ttl) for rr in d.an] == [("a.test", 1, 5), ("a.test", 28, 5)]
    assert d.an[0].ip == bytes([198, 18, 1, 1]) and d.an[1].ip6 == bytes.fromhex("20010002" + "0" * 22 + "01")
    assert N.DnsMessage.parse(raw) == m
    assert N.tcp_frame(raw)[:2] == len(raw).to_bytes(2, "big")


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\0" * 5, "dns.truncated"),
    (bytes(4) + b"\0\1" + bytes(6) + b"\x03ab", "dns.truncated"),
    (bytes(4) + b"\0\1" + bytes(6) + b"\xc0\x0c" + b"\0\1\0\1", "dns.bad_name"),  # points at itself
    (bytes(4) + b"\0\1" + bytes(6) + b"\x40" + b"\0\1\0\1", "dns.bad_name"),
    (bytes(4) + b"\0\0\0\1" + bytes(4) + b"\0" + b"\0\1\0\1\0\0\0\0\0\3abc", "dns.bad_record"),
    (bytes(4) + b"\0\0\0\1" + bytes(4) + b"\0" + b"\0\1\0\1\0\0\0\0\0\4ab", "dns.truncated"),
])
def test_dns_malformed(raw, reason):
    with pytest.raises(Malformed) as e:
        N.DnsMessage.parse(raw)
    assert e.value.reason == reason


def test_dns_long_name_rejected_both_ways():
    with pytest.raises(ValueError):
        N.encode_name("a" * 64 + ".test")
    with pytest.raises(ValueError):
        N.encode_name(".".join(["abcdefghi"] * 30))
    # a 300-byte name built from backward pointers is refused on parse
    labels = b"".join(b"\x3f" + b"x" * 63 for _ in range(4)) + b"\0"
    raw = bytes(4) + b"\0\1" + bytes(6) + labels + b"\0\1\0\1"
    with pytest.raises(Malformed) as e:
        N.DnsMessage.parse(raw)
    assert e.value.reason == "dns.bad_name"


# ---- fuzz: random and mutated bytes raise only Malformed --------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_DNS_BASE = N.DnsMessage(7, N.FLAG_QR, (N.DnsQuestion("www.example.test"),),
                         (N.DnsRecord("www.example.test", N.TYPE_CNAME, 5, "web.example.test"),
                          N.DnsRecord("web.example.test", N.TYPE_A, 5, "198.18.0.1"),
                          N.DnsRecord("web.example.test", N.TYPE_AAAA, 5, "2001:2::1"))).emit()
_DHCP_BASE = D.DhcpMessage(D.BOOTREPLY, 9, MAC, {D.OPT_MESSAGE_TYPE: b"\x05", D.OPT_OVERLOAD: b"\x03",
                                                 D.OPT_DNS: bytes(8)}).emit()


@st.composite
def _mutated(draw, base: bytes) -> bytes:
    b = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
    return bytes(b[:draw(st.integers(0, len(b)))])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=600), _mutated(_DNS_BASE)))
def test_dns_parse_raises_only_malformed(data):
    try:
        m = N.DnsMessage.parse(data)
    except Malformed:
        return
    m.addresses()


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=600), _mutated(_DHCP_BASE)))
def test_dhcp_parse_raises_only_malformed(data):
    try:
        m = D.DhcpMessage.parse(data)
    except Malformed:
        return
    m.message_type, m.addresses(D.OPT_DNS), m.seconds(D.OPT_LEASE_TIME)
