"""IPv4, ICMP and UDP conformance: echo, port unreachable quoting, malformed headers dropped.

Every "silence" case first shows that the well-formed version of the same packet is answered,
so silence means "dropped on purpose", not "the DUT is deaf".
"""

import pytest

from tests.conformance.bench import ICMP, IP, UDP, Raw

pytestmark = pytest.mark.netns

PAYLOAD = bytes(range(56))


def echo(bench, ident=0x1234, seq=1, payload=PAYLOAD, **ip_fields):
    return IP(src=bench.ip, dst=bench.dut_ip, **ip_fields) / ICMP(type=8, id=ident, seq=seq) / Raw(payload)


def is_echo_reply(ident, seq):
    return lambda p: ICMP in p and p[ICMP].type == 0 and p[ICMP].id == ident and p[ICMP].seq == seq


def assert_echo_answered(bench, ident=0x1234, seq=1):
    bench.send(echo(bench, ident, seq))
    rep = bench.expect(is_echo_reply(ident, seq), within=2.0)
    assert rep is not None, f"no echo reply:\n{bench.describe_seen()}"
    return rep


def test_echo_request_gets_reply_with_same_payload(dut, bench):
    rep = assert_echo_answered(bench, 0x4242, 7)
    assert bytes(rep[ICMP].payload) == PAYLOAD
    assert rep[ICMP].code == 0
    # the checksums the DUT wrote are right (scapy recomputes them when fields are deleted)
    raw = bytes(rep)
    again = IP(raw)
    del again.chksum
    del again[ICMP].chksum
    assert bytes(IP(bytes(again))) == raw


def test_fragmented_echo_request_is_reassembled(dut, bench):
    big = bytes(i & 0xFF for i in range(3000))
    pkt = IP(bytes(echo(bench, 0x77, 3, payload=big, id=4321)))
    from scapy.layers.inet import fragment
    frags = fragment(pkt, fragsize=1480)
    assert len(frags) == 3
    for f in reversed(frags):  # out of order on purpose
        bench.send(f)
    got = b""
    ident = None
    for _ in range(4):
        p = bench.expect(lambda p: p.proto == 1, within=2.0)
        if p is None:
            break
        ident = p.id if ident is None else ident
        assert p.id == ident
        got_frag = bytes(p.payload)[: p.len - p.ihl * 4]
        if p.frag == 0 and not p.flags.MF:
            got = got_frag
            break
        got += got_frag if p.frag * 8 == len(got) else b""
        if not p.flags.MF:
            break
    reply = ICMP(got)
    assert reply.type == 0 and reply.id == 0x77 and bytes(reply.payload) == big


def test_udp_to_closed_port_gets_port_unreachable_quoting_the_datagram(dut, bench):
    probe = IP(src=bench.ip, dst=bench.dut_ip, id=999) / UDP(sport=40000, dport=9999) / Raw(b"q" * 20)
    bench.send(probe)
    err = bench.expect(lambda p: ICMP in p and p[ICMP].type == 3, within=2.0)
    assert err is not None, f"no ICMP error for UDP to a closed port:\n{bench.describe_seen()}"
    assert err[ICMP].code == 3
    quoted = bytes(err[ICMP].payload)
    sent = bytes(probe)
    assert len(quoted) >= 28  # RFC 792: the IP header + the first 64 bits
    assert quoted[:28] == sent[:28]  # header (checksum included) and UDP header, unchanged
    assert err.ttl > 0 and err.src == bench.dut_ip


def test_udp_to_bound_port_is_delivered_and_not_answered(dut, bench):
    s = dut.udp_bind(5353)
    bench.send(IP(src=bench.ip, dst=bench.dut_ip) / UDP(sport=40001, dport=5353) / Raw(b"hi"))
    assert bench.expect_nothing(lambda p: ICMP in p, within=0.5)
    got = dut.udp_recvfrom(s, within=1.0)
    assert got == (b"hi", bench.ip, 40001)


def test_bad_ipv4_header_checksum_is_dropped(dut, bench):
    assert_echo_answered(bench, 1, 1)
    raw = bytearray(bytes(echo(bench, 1, 2)))
    raw[10] ^= 0xFF  # header checksum
    bench.send(bytes(raw))
    assert bench.expect_nothing(lambda p: ICMP in p, within=1.0), bench.describe_seen()


def test_bad_icmp_checksum_is_dropped(dut, bench):
    assert_echo_answered(bench, 1, 1)
    raw = bytearray(bytes(echo(bench, 1, 3)))
    raw[22] ^= 0xFF  # ICMP checksum
    bench.send(bytes(raw))
    assert bench.expect_nothing(is_echo_reply(1, 3), within=1.0)


def test_bad_udp_checksum_to_closed_port_is_dropped(dut, bench):
    good = IP(src=bench.ip, dst=bench.dut_ip) / UDP(sport=40000, dport=9999) / Raw(b"x" * 8)
    raw = bytearray(bytes(good))
    raw[26] ^= 0x55  # UDP checksum (nonzero, wrong)
    bench.send(bytes(raw))
    assert bench.expect_nothing(lambda p: ICMP in p, within=1.0), bench.describe_seen()


@pytest.mark.parametrize("ihl", [0, 4, 15])
def test_bad_ihl_is_dropped(dut, bench, ihl):
    """IHL below 5, or a header longer than the packet (IHL 15 = 60 bytes in a 28-byte packet)."""
    assert_echo_answered(bench, 2, 1)
    raw = bytearray(bytes(echo(bench, 2, 2, payload=b"")))
    raw[0] = 0x40 | ihl
    raw[10:12] = b"\0\0"
    raw[10:12] = _ip_csum(bytes(raw[:20]))
    bench.send(bytes(raw))
    assert bench.expect_nothing(lambda p: ICMP in p, within=1.0), bench.describe_seen()


def test_ip_options_are_skipped(dut, bench):
    from scapy.layers.inet import IPOption_NOP
    bench.send(echo(bench, 2, 3, options=[IPOption_NOP()] * 4))
    assert bench.expect(is_echo_reply(2, 3), within=2.0) is not None, bench.describe_seen()


def test_total_length_beyond_the_frame_is_dropped(dut, bench):
    assert_echo_answered(bench, 3, 1)
    pkt = echo(bench, 3, 2)
    pkt.len = len(bytes(pkt)) + 100
    bench.send(pkt)  # scapy recomputes the header checksum with the lying length
    assert bench.expect_nothing(lambda p: ICMP in p, within=1.0), bench.describe_seen()


def test_total_length_shorter_than_header_is_dropped(dut, bench):
    pkt = echo(bench, 3, 3)
    pkt.len = 12
    bench.send(pkt)
    assert bench.expect_nothing(lambda p: ICMP in p, within=1.0), bench.describe_seen()


def test_wrong_ip_version_is_dropped(dut, bench):
    raw = bytearray(bytes(echo(bench, 4, 1)))
    raw[0] = 0x55  # version 5, IHL 5
    raw[10:12] = b"\0\0"
    raw[10:12] = _ip_csum(bytes(raw[:20]))
    bench.send(bytes(raw))
    assert bench.expect_nothing(lambda p: ICMP in p, within=1.0), bench.describe_seen()


def test_packet_for_another_address_is_not_answered(dut, bench):
    bench.send(IP(src=bench.ip, dst="198.18.0.50") / ICMP(type=8, id=5, seq=1) / Raw(b"x"))
    bench.send(IP(src=bench.ip, dst="198.18.0.50") / UDP(sport=1, dport=9999) / Raw(b"x"))
    assert bench.expect_nothing(None, within=1.0), bench.describe_seen()


def test_ttl_zero_echo(dut, bench):
    """RFC 1122 3.2.1.7: a host MUST NOT send TTL 0 and MUST NOT discard a datagram only because
    its TTL is below 2. Linux delivers a TTL-0 datagram addressed to it; so must ustack."""
    bench.send(echo(bench, 6, 1, ttl=0))
    rep = bench.expect(is_echo_reply(6, 1), within=2.0)
    assert rep is not None, f"{dut.name} discarded a TTL-0 datagram addressed to it"
    assert rep.ttl > 0


def test_ttl_one_echo_is_answered(dut, bench):
    bench.send(echo(bench, 6, 2, ttl=1))
    assert bench.expect(is_echo_reply(6, 2), within=2.0) is not None


def _ip_csum(header: bytes) -> bytes:
    s = 0
    for i in range(0, len(header), 2):
        s += (header[i] << 8) | header[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s & 0xFFFF).to_bytes(2, "big")


def test_udp_with_zero_checksum_is_accepted(dut, bench):
    """RFC 768: an all-zero checksum means the sender computed none."""
    s = dut.udp_bind(5354)
    raw = bytearray(bytes(IP(src=bench.ip, dst=bench.dut_ip) / UDP(sport=40002, dport=5354) / Raw(b"nock")))
    raw[26:28] = b"\0\0"
    bench.send(bytes(raw))
    assert dut.udp_recvfrom(s, within=1.0) == (b"nock", bench.ip, 40002)


def test_overlapping_fragments_are_dropped(dut, bench):
    """RFC 5722 spirit for IPv4 (Linux drops the whole datagram): no reply from overlapping parts."""
    from scapy.layers.inet import fragment

    whole = IP(bytes(echo(bench, 0x99, 1, payload=bytes(64), id=777)))
    raw = bytes(whole)
    hdr, body = raw[:20], raw[20:]
    def frag(offset, data, more):
        p = IP(hdr)
        p.frag, p.flags = offset // 8, ("MF" if more else 0)
        p.len = 20 + len(data)
        del p.chksum
        return bytes(p)[:20] + data
    bench.send(frag(0, body[:32], True))
    bench.send(frag(24, body[24:], False))  # bytes 24..31 arrive twice
    assert bench.expect_nothing(is_echo_reply(0x99, 1), within=1.0), bench.describe_seen()
    for f in fragment(IP(bytes(echo(bench, 0x99, 2, payload=bytes(64), id=778))), fragsize=32):
        bench.send(f)  # the same shape without overlap is answered
    assert bench.expect(is_echo_reply(0x99, 2), within=2.0) is not None, bench.describe_seen()


def test_unknown_protocol_gets_protocol_unreachable(dut, bench):
    probe = IP(src=bench.ip, dst=bench.dut_ip, proto=253, id=4242) / Raw(b"experimental")
    bench.send(probe)
    err = bench.expect(lambda p: ICMP in p and p[ICMP].type == 3, within=2.0)
    assert err is not None, f"no ICMP for an unknown protocol:\n{bench.describe_seen()}"
    assert err[ICMP].code == 2  # protocol unreachable
    assert bytes(err[ICMP].payload)[:28] == bytes(probe)[:28]


def test_no_icmp_error_for_a_broadcast_destination(dut, bench):
    """RFC 1122 3.2.2: no ICMP error about a datagram sent to a broadcast address."""
    bench.send(IP(src=bench.ip, dst="198.18.0.255") / UDP(sport=40003, dport=9999) / Raw(b"b"))
    bench.send(IP(src=bench.ip, dst="255.255.255.255") / UDP(sport=40003, dport=9999) / Raw(b"b"))
    assert bench.expect_nothing(lambda p: ICMP in p, within=1.0), bench.describe_seen()


@pytest.mark.parametrize("src", ["0.0.0.0", "224.0.0.5", "198.18.0.255", "127.0.0.1"])
def test_no_icmp_error_to_an_invalid_source(dut, bench, src):
    """RFC 1122 3.2.2 / 3.2.1.3: no ICMP error to a source that does not name a single host.
    Linux answers a directed-broadcast source unless reverse-path filtering is on (a fresh
    namespace has it off), so the Linux DUT gets rp_filter=1 here."""
    if dut.name == "linux":
        from ustack.drivers import set_sysctl

        for scope in ("all", "cnf0"):
            set_sysctl(f"net.ipv4.conf.{scope}.rp_filter", "1")
    bench.send(IP(src=src, dst=bench.dut_ip) / UDP(sport=40004, dport=9999) / Raw(b"s"))
    assert bench.expect_nothing(None, within=1.0), bench.describe_seen()
    # The bench only sees packets addressed to it; make sure nothing went anywhere else either.
    assert not [p for p in bench.seen if ICMP in p], bench.describe_seen()
