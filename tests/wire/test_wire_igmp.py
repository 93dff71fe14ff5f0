"""IGMP codec (ustack/wire/igmp.py) cross-checked with scapy's independent IGMP/IGMPv3 decoders."""

import pytest
from scapy.layers.igmp import IGMP, IGMPv3_MQ, IGMPv3_MR, IGMPv3_MR_Group

from ustack.wire import Malformed, ip_int, ip_str
from ustack.wire import igmp as W

G1, G2 = ip_int("239.255.0.1"), ip_int("239.255.7.9")
S1, S2 = ip_int("198.18.0.1"), ip_int("198.18.0.9")


def test_v2_report_and_leave_decode_in_scapy():
    for typ in (W.V2_REPORT, W.V2_LEAVE, W.V1_REPORT):
        raw = W.IgmpReport(typ, G1).emit()
        pkt = IGMP(raw)
        assert pkt.type == typ and pkt.gaddr == "239.255.0.1"
        assert raw == bytes(IGMP(type=typ, mrcode=0, gaddr="239.255.0.1"))  # scapy's checksum too
        assert W.parse_igmp(raw) == W.IgmpReport(typ, G1, 0)


def test_v3_report_decodes_in_scapy_with_every_record():
    recs = (W.GroupRecord(W.CHANGE_TO_EXCLUDE, G1), W.GroupRecord(W.MODE_IS_INCLUDE, G2, (S1, S2)),
            W.GroupRecord(W.CHANGE_TO_INCLUDE, G2))
    raw = W.IgmpV3Report(recs).emit()
    mr = IGMP(raw)
    assert isinstance(mr, IGMPv3_MR) and mr.type == 0x22
    assert mr.numgrp == 3
    got = [(r.rtype, r.maddr, list(r.srcaddrs)) for r in mr.records]
    assert got == [(4, "239.255.0.1", []), (1, "239.255.7.9", ["198.18.0.1", "198.18.0.9"]),
                   (3, "239.255.7.9", [])]
    # scapy computes the same checksum for the same message
    again = IGMP(raw)
    del again.chksum
    assert bytes(again) == raw
    assert W.parse_igmp(raw) == W.IgmpV3Report(recs)


def test_scapy_built_queries_parse_with_the_right_version():
    v2 = bytes(IGMP(type=0x11, mrcode=100, gaddr="0.0.0.0"))
    q = W.parse_igmp(v2)
    assert (q.version, q.group) == (2, 0) and q.max_resp_s == v2[1] / 10
    v1 = W.IgmpQuery(1, 0, 0).emit()
    assert v1 == bytes(IGMP(type=0x11, mrcode=0, gaddr="0.0.0.0"))
    assert W.parse_igmp(v1).version == 1 and W.parse_igmp(v1).max_resp_s == 10.0
    # scapy encodes a v3 Max Resp Code of 1472 tenths in its exponential form independently
    v3 = bytes(IGMPv3_MQ(mrcode=1472, gaddr="239.255.0.1", qrv=3, qqic=60, srcaddrs=["198.18.0.1"]))
    q = W.parse_igmp(v3)
    assert q.version == 3 and ip_str(q.group) == "239.255.0.1"
    assert q.max_resp_code >= 128 and q.max_resp_s == 147.2
    assert q.qrv == 3 and q.query_interval_s == 60 and q.sources == (S1,)


def test_our_v3_query_decodes_in_scapy():
    raw = W.IgmpQuery(3, W.encode_code(250), G1, s_flag=True, qrv=2, qqic=125, sources=(S2,)).emit()
    mq = IGMP(raw)
    assert isinstance(mq, IGMPv3_MQ)
    assert W.decode_code(raw[1]) == 256  # scapy's own encoder gives the same code for 256:
    assert bytes(IGMPv3_MQ(mrcode=256, gaddr="239.255.0.1"))[1] == raw[1]
    assert mq.gaddr == "239.255.0.1" and mq.s == 1 and mq.qrv == 2 and mq.qqic == 125
    assert list(mq.srcaddrs) == ["198.18.0.9"]


@pytest.mark.parametrize("value", [0, 1, 127, 128, 129, 1000, 3175, 31744])
def test_code_encoding_round_trips_upward(value):
    code = W.encode_code(value)
    assert W.decode_code(code) >= value
    assert code == 0 or W.decode_code(code - 1) < value or code < 128


def test_malformed_messages_name_their_reason():
    good = W.IgmpReport(W.V2_REPORT, G1).emit()
    with pytest.raises(Malformed) as e:
        W.parse_igmp(good[:7])
    assert e.value.reason == "igmp.truncated"
    bad = bytearray(good)
    bad[7] ^= 1
    with pytest.raises(Malformed) as e:
        W.parse_igmp(bytes(bad))
    assert e.value.reason == "igmp.bad_checksum"
    assert W.parse_igmp(bytes(bad), verify=False).group == G1 ^ 1
    q10 = W.IgmpQuery(2, 10, 0).emit() + b"\0\0"
    with pytest.raises(Malformed) as e:
        W.parse_igmp(q10, verify=False)
    assert e.value.reason == "igmp.bad_query_length"
    lying = W.IgmpV3Report((W.GroupRecord(W.MODE_IS_INCLUDE, G1, (S1, S2)),)).emit()[:-4]
    with pytest.raises(Malformed) as e:
        W.parse_igmp(lying, verify=False)
    assert e.value.reason == "igmp.truncated"
    with pytest.raises(Malformed) as e:
        W.parse_igmp(W.IgmpReport(0x13, G1).emit())
    assert e.value.reason == "igmp.unknown_type"


def test_group_record_type_names_cover_rfc3376():
    assert set(W.RECORD_NAMES) == set(range(1, 7))
    rec = IGMPv3_MR_Group(W.GroupRecord(W.ALLOW_NEW_SOURCES, G1, (S1,)).emit())
    assert (rec.rtype, rec.maddr, list(rec.srcaddrs)) == (5, "239.255.0.1", ["198.18.0.1"])
