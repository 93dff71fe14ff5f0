"""Each malformed case raises Malformed with the exact reason, and a detail that says what is wrong."""

from __future__ import annotations

import struct

import pytest

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
from ustack.wire.checksum import internet_checksum
from ustack.wire.icmp import DEST_UNREACH, ECHO_REPLY, PORT_UNREACH, TIME_EXCEEDED
from ustack.wire.tcp import ACK, SYN

SRC, DST = 0xC6120001, 0xC6120002


def malformed(fn, *args) -> Malformed:
    with pytest.raises(Malformed) as info:
        fn(*args)
    e = info.value
    assert str(e) == f"{e.reason}: {e.detail}" and e.detail
    return e


def with_ip_checksum(hdr: bytes | bytearray) -> bytes:
    """Recompute the IPv4 header checksum after a field was patched."""
    b = bytearray(hdr)
    hlen = (b[0] & 0xF) * 4
    b[10:12] = b"\0\0"
    b[10:12] = internet_checksum(bytes(b[:hlen])).to_bytes(2, "big")
    return bytes(b)


def patched_ip(**fields) -> bytes:
    """A valid 20-byte-header packet with raw header fields overwritten, checksum fixed."""
    b = bytearray(Ipv4Packet(SRC, DST, 253, b"x" * 12).emit())
    offsets = {"vihl": (0, "B"), "total": (2, "H"), "frag": (6, "H")}
    for name, value in fields.items():
        off, fmt = offsets[name]
        struct.pack_into("!" + fmt, b, off, value)
    return with_ip_checksum(b)


# ------------------------------------------------------------------ Ethernet and ARP


@pytest.mark.parametrize("n", range(14))
def test_ethernet_truncated(n: int) -> None:
    e = malformed(EthernetFrame.parse, bytes(n))
    assert e.reason == "ethernet.truncated" and f"{n} bytes" in e.detail


def test_ethernet_8023_length_field() -> None:
    e = malformed(EthernetFrame.parse, bytes(12) + b"\x05\xdc" + bytes(46))
    assert e.reason == "ethernet.not_ethernet_ii" and "0x05dc" in e.detail


ARP_OK = ArpPacket(1, b"\x02" * 6, SRC, bytes(6), DST).emit()


@pytest.mark.parametrize("n", range(28))
def test_arp_truncated(n: int) -> None:
    assert malformed(ArpPacket.parse, ARP_OK[:n]).reason == "arp.truncated"


@pytest.mark.parametrize(
    ("offset", "value", "detail"),
    [
        (0, b"\x00\x06", "hardware type 6"),  # IEEE 802 htype: unsupported
        (2, b"\x86\xdd", "protocol type 0x86dd"),
        (4, b"\x08", "hlen 8"),
        (5, b"\x10", "plen 16"),
    ],
)
def test_arp_unsupported(offset: int, value: bytes, detail: str) -> None:
    b = ARP_OK[:offset] + value + ARP_OK[offset + len(value):]
    e = malformed(ArpPacket.parse, b)
    assert e.reason == "arp.unsupported" and detail in e.detail


@pytest.mark.parametrize("op", [0, 3, 4, 0xFFFF])  # RARP (3/4) is not ARP
def test_arp_bad_op(op: int) -> None:
    e = malformed(ArpPacket.parse, ARP_OK[:6] + op.to_bytes(2, "big") + ARP_OK[8:])
    assert e.reason == "arp.bad_op" and f"operation {op}" in e.detail


# ------------------------------------------------------------------ IPv4


@pytest.mark.parametrize("n", range(20))
def test_ipv4_truncated_header(n: int) -> None:
    e = malformed(Ipv4Packet.parse, patched_ip()[:n])
    assert e.reason == "ipv4.truncated" and "header needs 20" in e.detail


@pytest.mark.parametrize("version", [0, 5, 6, 15])
def test_ipv4_bad_version(version: int) -> None:
    e = malformed(Ipv4Packet.parse, patched_ip(vihl=version << 4 | 5))
    assert (e.reason, e.detail) == ("ipv4.bad_version", f"version {version}")


@pytest.mark.parametrize("ihl", range(5))
def test_ipv4_ihl_below_5(ihl: int) -> None:
    e = malformed(Ipv4Packet.parse, patched_ip(vihl=0x40 | ihl))
    assert e.reason == "ipv4.bad_header_length" and f"IHL {ihl}" in e.detail


@pytest.mark.parametrize("total", [0, 19])
def test_ipv4_total_below_header(total: int) -> None:
    e = malformed(Ipv4Packet.parse, patched_ip(total=total))
    assert e.reason == "ipv4.bad_length" and f"total length {total} < header length 20" in e.detail


def test_ipv4_total_below_ihl_with_options() -> None:
    # IHL 15 (60 bytes) but total length 32: the header cannot fit in the datagram
    e = malformed(Ipv4Packet.parse, patched_ip(vihl=0x4F))
    assert e.reason == "ipv4.bad_length" and "< header length 60" in e.detail


def test_ipv4_total_above_buffer() -> None:
    b = patched_ip(total=33)
    e = malformed(Ipv4Packet.parse, b)
    assert e.reason == "ipv4.truncated" and "total length 33 > 32 bytes" in e.detail


def test_ipv4_header_longer_than_buffer() -> None:
    b = with_ip_checksum(Ipv4Packet(SRC, DST, 253, b"", options=b"\x01" * 8).emit())
    assert malformed(Ipv4Packet.parse, b[:24]).reason == "ipv4.truncated"


def test_ipv4_bad_checksum_and_verify_false() -> None:
    good = patched_ip()
    bad = good[:10] + bytes([good[10] ^ 0xFF]) + good[11:]
    e = malformed(Ipv4Packet.parse, bad)
    assert e.reason == "ipv4.bad_checksum" and "does not verify" in e.detail
    assert Ipv4Packet.parse(bad, verify=False) == Ipv4Packet.parse(good)
    # any single corrupted header byte is caught (other than ones making an earlier check fail)
    for i in range(20):
        corrupt = good[:i] + bytes([good[i] ^ 0x10]) + good[i + 1:]
        assert malformed(Ipv4Packet.parse, corrupt).reason in (
            "ipv4.bad_checksum", "ipv4.bad_version", "ipv4.truncated", "ipv4.bad_length")


def test_ipv4_reserved_flag() -> None:
    e = malformed(Ipv4Packet.parse, patched_ip(frag=0x8000))
    assert e.reason == "ipv4.reserved_flag"


def test_ipv4_fragment_past_65535() -> None:
    # offset 65528 + 12 bytes of data would end past the largest datagram (ping of death)
    e = malformed(Ipv4Packet.parse, patched_ip(frag=0x1FFF))
    assert e.reason == "ipv4.bad_fragment" and "offset 65528 with 12 bytes" in e.detail
    ok = Ipv4Packet.parse(patched_ip(frag=0x2000 | 0x1FFE))  # ends at 65516 + 12: fine
    assert (ok.mf, ok.frag_offset, ok.is_fragment) == (True, 65520, True)


def test_ipv4_fragment_end_boundary() -> None:
    last = Ipv4Packet(SRC, DST, 17, b"x" * 7, frag_offset=65528)  # last byte is number 65534
    assert Ipv4Packet.parse(last.emit()).frag_offset == 65528
    b = bytearray(last.emit() + b"y")
    b[2:4] = (len(b)).to_bytes(2, "big")  # 8 bytes at 65528: one byte too far
    e = malformed(Ipv4Packet.parse, with_ip_checksum(b))
    assert e.reason == "ipv4.bad_fragment" and "offset 65528 with 8 bytes" in e.detail


def test_ipv4_options_are_kept_raw_and_skipped() -> None:
    # a record-route option with a nonsense pointer, and an unknown option: never interpreted
    opts = bytes((7, 7, 99, 0, 0, 0, 0, 0xFE))
    p = Ipv4Packet.parse(Ipv4Packet(SRC, DST, 253, b"data", options=opts).emit())
    assert p.options == opts and bytes(p.payload) == b"data"


# ------------------------------------------------------------------ ICMP


ECHO = IcmpMessage.echo(True, 0x1234, 7, b"ping").emit()


@pytest.mark.parametrize("n", range(8))
def test_icmp_truncated(n: int) -> None:
    assert malformed(IcmpMessage.parse, ECHO[:n]).reason == "icmp.truncated"


def test_icmp_bad_checksum() -> None:
    bad = ECHO[:-1] + b"X"
    e = malformed(IcmpMessage.parse, bad)
    assert e.reason == "icmp.bad_checksum"
    m = IcmpMessage.parse(bad, verify=False)
    assert (m.ident, m.seq, bytes(m.payload)) == (0x1234, 7, b"pinX")


def test_icmp_odd_length_checksum() -> None:
    m = IcmpMessage.echo(False, 1, 2, b"odd")
    assert IcmpMessage.parse(m.emit()) == m


def _quote(transport: bytes = b"\x9c\x40\x00\x35\x00\x0d\x12\x34", **kw) -> bytes:
    return Ipv4Packet(DST, SRC, 17, transport + b"rest of datagram", **kw).emit()


def test_icmp_quoted_not_error() -> None:
    e = malformed(IcmpMessage(ECHO_REPLY, 0, 0, _quote()).quoted)
    assert e.reason == "icmp.not_error"


@pytest.mark.parametrize(
    ("quote", "detail"),
    [
        (b"", "quoted datagram of 0 bytes"),
        (_quote()[:19], "quoted datagram of 19 bytes"),
        (b"\x65" + _quote()[1:], "version 6"),
        (b"\x44" + _quote()[1:], "IHL 4"),
        (_quote()[:27], "7 transport bytes after the 20-byte header, need 8"),
        (_quote(options=b"\x01" * 8)[:30], "2 transport bytes after the 28-byte header"),
    ],
)
def test_icmp_bad_quote(quote: bytes, detail: str) -> None:
    e = malformed(IcmpMessage(DEST_UNREACH, PORT_UNREACH, 0, quote).quoted)
    assert e.reason == "icmp.bad_quote" and detail in e.detail


def test_icmp_quote_is_not_checksummed_and_is_trimmed_to_the_original() -> None:
    q = bytearray(_quote(ttl=1, ident=99, df=True))
    q[10] ^= 0xFF  # a router may have rewritten the header; its checksum is not checked
    ip, transport = IcmpMessage(TIME_EXCEEDED, 0, 0, bytes(q[:28])).quoted()
    assert (ip.src, ip.dst, ip.proto, ip.ttl, ip.ident, ip.df) == (DST, SRC, 17, 1, 99, True)
    assert transport == b"\x9c\x40\x00\x35\x00\x0d\x12\x34"
    # a quote longer than the original datagram (padding) is cut at its total length
    ip, transport = IcmpMessage(DEST_UNREACH, 3, 0, bytes(q) + b"\0" * 10).quoted()
    assert transport == bytes(q[20:])


def test_icmp_error_builder_quotes_header_and_8_bytes() -> None:
    off = _quote(options=b"\x01" * 4)
    m = IcmpMessage.error(DEST_UNREACH, 4, off, mtu=1400)
    assert bytes(m.payload) == off[:32] and m.mtu == 1400 and m.is_error
    assert IcmpMessage.error(DEST_UNREACH, PORT_UNREACH, off, mtu=1400).rest == 0  # mtu only for code 4


# ------------------------------------------------------------------ UDP


UDP_OK = UdpDatagram(40000, 53, b"query").emit(SRC, DST)


@pytest.mark.parametrize("n", range(8))
def test_udp_truncated(n: int) -> None:
    assert malformed(UdpDatagram.parse, UDP_OK[:n], SRC, DST).reason == "udp.truncated"


@pytest.mark.parametrize(("length", "detail"), [(0, "length field 0 < header"), (7, "length field 7 <"),
                                                (14, "length field 14 > 13 bytes")])
def test_udp_bad_length(length: int, detail: str) -> None:
    b = UDP_OK[:4] + length.to_bytes(2, "big") + UDP_OK[6:]
    e = malformed(UdpDatagram.parse, b, SRC, DST, False)
    assert e.reason == "udp.bad_length" and detail in e.detail


def test_udp_truncated_payload_is_bad_length() -> None:
    assert malformed(UdpDatagram.parse, UDP_OK[:-1], SRC, DST).reason == "udp.bad_length"


def test_udp_shorter_length_trims_padding() -> None:
    d = UdpDatagram.parse(UDP_OK + b"\0\0\0", SRC, DST)
    assert bytes(d.payload) == b"query"


def test_udp_bad_checksum_wrong_pseudo_header() -> None:
    e = malformed(UdpDatagram.parse, UDP_OK, SRC, DST + 1)
    assert e.reason == "udp.bad_checksum"
    assert UdpDatagram.parse(UDP_OK, SRC, DST + 1, verify=False).dport == 53


def test_udp_zero_checksum_means_none() -> None:
    b = UDP_OK[:6] + b"\0\0" + UDP_OK[8:]
    assert bytes(UdpDatagram.parse(b, 1, 2).payload) == b"query"


def test_udp_zero_destination_port() -> None:
    b = UdpDatagram(1, 1, b"").emit(SRC, DST)
    b = b[:2] + b"\0\0" + b[4:6] + b"\0\0"  # port 0, checksum "none"
    assert malformed(UdpDatagram.parse, b, SRC, DST).reason == "udp.bad_port"


# ------------------------------------------------------------------ TCP


TCP_OK = TcpSegment(40000, 80, 1, 2, SYN | ACK, 65535, b"hello", TcpOptions(mss=1460, ts=(1, 2))).emit(
    SRC, DST)


@pytest.mark.parametrize("n", range(20))
def test_tcp_truncated(n: int) -> None:
    assert malformed(TcpSegment.parse, TCP_OK[:n], SRC, DST).reason == "tcp.truncated"


@pytest.mark.parametrize("n", range(20, 36))
def test_tcp_cut_inside_options(n: int) -> None:
    e = malformed(TcpSegment.parse, TCP_OK[:n], SRC, DST)
    assert e.reason == "tcp.bad_data_offset" and f"> {n} bytes" in e.detail


@pytest.mark.parametrize("n", range(36, len(TCP_OK)))
def test_tcp_cut_inside_payload(n: int) -> None:
    assert malformed(TcpSegment.parse, TCP_OK[:n], SRC, DST).reason == "tcp.bad_checksum"


@pytest.mark.parametrize("words", range(5))
def test_tcp_data_offset_below_5(words: int) -> None:
    b = TCP_OK[:12] + bytes([words << 4]) + TCP_OK[13:]
    e = malformed(TcpSegment.parse, b, SRC, DST, False)
    assert e.reason == "tcp.bad_data_offset" and f"{words} words (< 5)" in e.detail


def test_tcp_bad_checksum() -> None:
    b = TCP_OK[:-1] + b"?"
    assert malformed(TcpSegment.parse, b, SRC, DST).reason == "tcp.bad_checksum"
    assert bytes(TcpSegment.parse(b, SRC, DST, verify=False).payload) == b"hell?"


@pytest.mark.parametrize(
    ("opts", "detail"),
    [
        (b"\x02", "option 2 at offset 0 has no length byte"),
        (b"\x01\x01\x01\x1e", "option 30 at offset 3 has no length byte"),
        (b"\x1e\x00", "claims length 0 (< 2)"),
        (b"\x1e\x01\x00\x00", "claims length 1 (< 2)"),
        (b"\x08\x0a\x00\x00", "claims length 10, only 4 bytes left"),
        (b"\x02\x03\x05\x00", "MSS option length 3 (want 4)"),
        (b"\x02\x05\x05\xb4\x00\x00", "MSS option length 5 (want 4)"),
        (b"\x03\x04\x07\x00", "window scale option length 4 (want 3)"),
        (b"\x04\x03\x00\x00", "SACK-permitted option length 3 (want 2)"),
        (b"\x08\x08" + bytes(6), "timestamp option length 8 (want 10)"),
        (b"\x05\x02\x00\x00", "SACK option length 2 (< 10: no block)"),
        (b"\x05\x0c" + bytes(10), "SACK option length 12: blocks of 10 bytes, not a multiple of 8"),
        (b"\x05\x0e" + bytes(12), "blocks of 12 bytes, not a multiple of 8"),
    ],
)
def test_tcp_bad_option_lengths(opts: bytes, detail: str) -> None:
    e = malformed(TcpOptions.parse, opts)
    assert e.reason == "tcp.bad_option_length" and detail in e.detail
    # and through a whole segment (options padded to the data offset with EOL)
    padded = opts + b"\0" * (-len(opts) % 4)
    if padded != opts and opts[-1] != 0:
        return  # padding would have supplied the missing byte: not the same case
    hdr = struct.pack("!HHIIBBHHH", 1, 2, 0, 0, (5 + len(padded) // 4) << 4, ACK, 0, 0, 0) + padded
    assert malformed(TcpSegment.parse, hdr, SRC, DST, False).reason == "tcp.bad_option_length"


def test_tcp_options_unknown_skipped_eol_stops() -> None:
    opts = (b"\x1e\x06\xaa\xbb\xcc\xdd"  # unknown kind 30 (MPTCP), skipped by its length
            + b"\x02\x04\x05\xb4"  # MSS 1460
            + b"\x01\x03\x03\x0e"  # NOP, wscale 14
            + b"\x05\x12" + struct.pack("!IIII", 1, 2, 3, 4)  # two SACK blocks
            + b"\x00"  # EOL: what follows is ignored, even garbage
            + b"\x02\x99")
    o = TcpOptions.parse(opts)
    assert o == TcpOptions(mss=1460, wscale=14, sack=((1, 2), (3, 4)))


def test_tcp_options_linux_syn_layout() -> None:
    linux_syn = bytes.fromhex("020405b40402080a0001e2400000000001030307")
    assert TcpOptions.parse(linux_syn) == TcpOptions(1460, 7, True, (), (123456, 0))
    assert TcpOptions(1460, 7, True, (), (123456, 0)).emit() == linux_syn


def test_reason_catalogue_matches_the_codecs() -> None:
    """Every reason raised in ustack/wire is described in errors.REASONS, and nothing else is."""
    import re
    from pathlib import Path

    import ustack.wire
    from ustack.wire.errors import REASONS

    here = Path(ustack.wire.__file__).parent
    src = "".join(p.read_text() for p in here.glob("*.py") if p.name != "errors.py")
    raised = set(re.findall(r'(?:Malformed|Ipv6ParamProblem)\(\s*"([a-z0-9_]+\.[a-z0-9_]+)"', src))
    assert raised == set(REASONS)
    assert all(text.startswith("drop: ") for text in REASONS.values())
