"""MLD codec (ustack/wire/mld.py) cross-checked with scapy's independent MLD classes, the ICMPv6
checksum over the IPv6 pseudo-header included."""

import ipaddress

import pytest
from scapy.layers.inet6 import (
    ICMPv6MLDMultAddrRec,
    ICMPv6MLDone,
    ICMPv6MLQuery,
    ICMPv6MLQuery2,
    ICMPv6MLReport,
    ICMPv6MLReport2,
    IPv6,
)
from scapy.packet import Raw

from ustack.wire import Malformed
from ustack.wire import mld as W


def a6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


SRC = a6("fe80::200:ff:fe00:2")
G1, G2 = a6("ff02::1:3"), a6("ff02::fb")
S1 = a6("2001:2::1")


def in_scapy(src: int, dst: int, icmp: bytes):
    """Our ICMPv6 bytes inside an IPv6 header, decoded by scapy, and whether scapy computes the
    same checksum for them."""
    pkt = IPv6(bytes(IPv6(src=str(ipaddress.IPv6Address(src)), dst=str(ipaddress.IPv6Address(dst)),
                          nh=58, hlim=1) / Raw(icmp)))
    again = pkt.copy()
    del again.payload.cksum
    return pkt.payload, bytes(again)[40:] == icmp


def scapy_records(report):
    """scapy 2.8 chains the records after the first as its payloads: walk them all."""
    out = []
    for r in report.records:
        while isinstance(r, ICMPv6MLDMultAddrRec):
            out.append(r)
            r = r.payload
    return out


def test_v2_report_decodes_in_scapy_with_the_same_checksum():
    recs = (W.AddressRecord(4, G1), W.AddressRecord(1, G2, (S1,)), W.AddressRecord(3, G2))
    raw = W.MldV2Report(recs).emit(SRC, W.V2_ROUTERS)
    m, same = in_scapy(SRC, W.V2_ROUTERS, raw)
    assert same
    assert isinstance(m, ICMPv6MLReport2) and m.records_number == 3
    got = [(r.rtype, r.dst, list(r.sources)) for r in scapy_records(m)]
    assert got == [(4, "ff02::1:3", []), (1, "ff02::fb", ["2001:2::1"]), (3, "ff02::fb", [])]
    assert W.parse_mld(raw) == W.MldV2Report(recs)
    rec = ICMPv6MLDMultAddrRec(recs[1].emit())
    assert rec.dst == "ff02::fb" and list(rec.sources) == ["2001:2::1"]


def test_v1_report_and_done_decode_in_scapy():
    for typ, cls in ((W.V1_REPORT, ICMPv6MLReport), (W.V1_DONE, ICMPv6MLDone)):
        raw = W.MldReport(typ, G1).emit(SRC, G1)
        m, same = in_scapy(SRC, G1, raw)
        assert same and isinstance(m, cls) and m.mladdr == "ff02::1:3"
        assert W.parse_mld(raw) == W.MldReport(typ, G1)


def test_scapy_queries_parse_with_the_right_version():
    v1 = bytes(ICMPv6MLQuery(mrd=1000, mladdr="::"))
    q = W.parse_mld(v1)
    assert (q.version, q.group, q.max_resp_s) == (1, 0, 1.0)
    v2 = bytes(ICMPv6MLQuery2(mrd=0x9000, mladdr="ff02::1:3", QRV=3, QQIC=60, sources=["2001:2::1"]))
    q = W.parse_mld(v2)
    assert q.version == 2 and q.group == G1 and q.sources == (S1,)
    assert q.qrv == 3 and q.query_interval_s == 60
    assert q.max_resp_s == ((0x000 | 0x1000) << (1 + 3)) / 1000  # 65.536 s


def test_our_v2_query_decodes_in_scapy():
    raw = W.MldQuery(2, W.encode_code(10000), 0, s_flag=True, qrv=2, qqic=125).emit(SRC, W.ALL_NODES)
    m, same = in_scapy(SRC, W.ALL_NODES, raw)
    assert same and isinstance(m, ICMPv6MLQuery2)
    assert m.mrd == 10000 and m.S == 1 and m.QRV == 2 and m.QQIC == 125 and m.mladdr == "::"


@pytest.mark.parametrize("ms", [0, 1, 32767, 32768, 40000, 1000000, 8387584])
def test_max_resp_code_encoding(ms):
    code = W.encode_code(ms)
    assert W.decode_code(code) >= ms
    assert code < 0x8000 or W.decode_code(code - 1) < ms


def test_malformed_messages_name_their_reason():
    good = W.MldReport(W.V1_REPORT, G1).emit(SRC, G1)
    for bad, reason in [(good[:20], "mld.truncated"), (good[:3], "mld.truncated"),
                        (b"\x80" + good[1:], "mld.not_mld"),
                        (W.MldQuery(1, 0, 0).emit(SRC, W.ALL_NODES) + b"\0\0", "mld.bad_query_length"),
                        (W.MldV2Report((W.AddressRecord(1, G1, (S1,)),)).emit(SRC, G1)[:-16],
                         "mld.truncated")]:
        with pytest.raises(Malformed) as e:
            W.parse_mld(bad)
        assert e.value.reason == reason
