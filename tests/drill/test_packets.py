"""The packets drill builds (inbound) and decodes (outbound), checked against dpkt, and the
matching rules of packetdrill it applies."""

from __future__ import annotations

import dpkt
import pytest

from ustack.drill.model import Mismatch, PacketSpec, TcpOption
from ustack.drill.packets import SeqMap, check_tcp, decode, encode_options, ipv4, tcp_segment

SRC, DST = 0xC6130201, 0xC6120001  # 198.19.2.1 -> 198.18.0.1


def build(opts, seqmap=None, payload=b"", flags=0x18, seq=1, ack=1):
    raw = encode_options(opts, seqmap or SeqMap(), 0)
    return ipv4(SRC, DST, 6, tcp_segment(SRC, DST, 40000, 8080, seq, ack, flags, 257, raw, payload), 2, 7)


def test_inbound_packet_is_valid_for_dpkt_and_keeps_option_order():
    seqmap = SeqMap(local_offset=1000)
    seqmap.ts_map[100] = 777
    frame = build([TcpOption("nop"), TcpOption("nop"), TcpOption("TS", (5, 100)),
                   TcpOption("sack", ((1001, 2001),))], seqmap, b"x" * 10, ack=seqmap.local_to_live(1))
    ip = dpkt.ip.IP(frame)
    tcp = ip.data
    assert (ip.tos, ip.id, ip.df) == (2, 7, 1)
    ip2 = dpkt.ip.IP(frame)
    ip2.sum = 0
    ip2.data.sum = 0
    assert dpkt.ip.IP(bytes(ip2)).sum == ip.sum and dpkt.ip.IP(bytes(ip2)).data.sum == tcp.sum
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.win, bytes(tcp.data)) == (40000, 8080, 1, 1001, 257,
                                                                                 b"x" * 10)
    opts = dpkt.tcp.parse_opts(tcp.opts)
    assert [k for k, _ in opts] == [1, 1, 8, 5, 0, 0]  # padded with EOL, as packetdrill does
    assert opts[2][1] == (5).to_bytes(4, "big") + (777).to_bytes(4, "big")  # ecr mapped to the live TS val
    assert opts[3][1] == (2001).to_bytes(4, "big") + (3001).to_bytes(4, "big")  # SACK of our data, live


def test_decode_reads_what_dpkt_reads():
    frame = build([TcpOption("mss", (1460,)), TcpOption("nop"), TcpOption("wscale", (8,))], flags=0x12)
    out = decode(frame, 1.5)
    tcp = dpkt.ip.IP(frame).data
    assert (out.seq, out.ack, out.flags, out.win, out.at, out.tos, out.ip_ok) == (tcp.seq, tcp.ack, tcp.flags,
                                                                                 tcp.win, 1.5, 2, True)
    assert [k for k, _ in out.options][:3] == [k for k, _ in dpkt.tcp.parse_opts(tcp.opts)][:3]


def spec(**kw):
    base = dict(flags="P.", seq=1, end_seq=11, length=10, ack=1, options=[])
    base.update(kw)
    return PacketSpec(">", **base)


def live(**kw):
    frame = build([], payload=b"\0" * 10, **kw)
    return decode(frame, 0.0)


def test_matching_rules():
    m = SeqMap(local_offset=0)
    check_tcp(spec(), live(), m, final=True, payload_len=10)
    check_tcp(spec(flags="."), live(), m, final=True, payload_len=10)  # PSH is not compared
    with pytest.raises(Mismatch, match="expected seq 2"):
        check_tcp(spec(seq=2), live(), m, final=True, payload_len=10)
    with pytest.raises(Mismatch, match="expected ack 5"):
        check_tcp(spec(ack=5), live(), m, final=True, payload_len=10)
    with pytest.raises(Mismatch, match="expected win 100"):
        check_tcp(spec(win=100), live(), m, final=True, payload_len=10)
    with pytest.raises(Mismatch, match="expected flags F."):
        check_tcp(spec(flags="F."), live(), m, final=True, payload_len=10)
    check_tcp(spec(flags="F."), live(), m, final=False, payload_len=10)  # FIN only on the last part
    with pytest.raises(Mismatch, match="bad outbound TCP options"):
        check_tcp(spec(options=[TcpOption("nop")]), live(), m, final=True, payload_len=10)
    check_tcp(spec(options=None), live(), m, final=True, payload_len=10)  # <...>
    with pytest.raises(Mismatch, match="expected seq 1"):
        check_tcp(spec(), live(), SeqMap(local_offset=5), final=True, payload_len=10)
