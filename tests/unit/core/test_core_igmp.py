"""IGMP host membership (core/igmp.py) and multicast UDP in virtual time: reports on join with
their repeats, leaves, answers to v1/v2/v3 queries after random delays, compatibility modes,
suppression, Ethernet multicast filtering, and per-socket delivery, TTL, loopback and interface."""

from corehelpers import ME, PEER, assert_no_internal_error, eth, ip_frame, ips, make, udp_frame

from ustack.core.errors import UsageError
from ustack.core.igmp import multicast_mac
from ustack.core.reasons import Reason
from ustack.wire import Ipv4Packet, UdpDatagram, ip_int
from ustack.wire import igmp as W

G1, G2, G3 = ip_int("239.255.0.1"), ip_int("239.255.0.2"), ip_int("239.255.9.9")
G1_ALIAS = ip_int("239.127.0.1")  # same low 23 bits as G1: the same Ethernet address
OTHER_HOST = ip_int("198.18.0.7")
RA = W.ROUTER_ALERT


def run(stack, until, step=0.01, start=None):
    """Poll the stack in virtual time up to `until`; (time, IPv4 packet) of everything sent."""
    t = stack.last_now if start is None else start
    out = []
    medium = stack.medium
    while t <= until + 1e-9:
        for f in stack.poll(t):
            out.append((t, ips([f], medium)[0]))
        t += step
    return out


def igmp_out(sent):
    return [(t, p, W.parse_igmp(p.payload)) for t, p in sent if p.proto == 2]


def query(stack, q, now, dst=W.ALL_SYSTEMS, src=PEER):
    stack.receive(ip_frame(src, dst, 2, q.emit(), ttl=1, options=RA), now)


def records(msg):
    return [(r.type, r.group, r.sources) for r in msg.records]


# ---- join and leave ------------------------------------------------------------------------------
def test_join_sends_to_ex_now_and_once_more_within_the_unsolicited_interval(stack):
    u = stack.udp.open()
    u.bind(0, 5000)
    u.join_group(G1, 0.0)
    sent = igmp_out(run(stack, 5.0, start=0.0))
    assert len(sent) == 2  # Robustness Variable 2: the report and one repeat
    (t0, p0, m0), (t1, _p1, m1) = sent
    assert t0 == 0.0 and 0.0 <= t1 <= 1.0 + 0.01
    for m in (m0, m1):
        assert isinstance(m, W.IgmpV3Report) and records(m) == [(W.CHANGE_TO_EXCLUDE, G1, ())]
    assert (p0.dst, p0.ttl, p0.tos, p0.options, p0.src) == (W.V3_REPORTS, 1, 0xC0, RA, ME)
    assert stack.poll_at() is None  # nothing else pending


def test_the_repeat_delay_comes_from_the_seeded_rng():
    delays = set()
    for seed in range(6):
        s = make(seed=seed)
        s.udp.open().join_group(G1, 0.0)
        sent = igmp_out(run(s, 2.0, step=0.001, start=0.0))
        delays.add(round(sent[1][0], 3))
        assert_no_internal_error(s)
    assert len(delays) >= 5  # random, not a constant


def test_a_second_socket_in_the_group_sends_nothing_and_the_last_leave_sends_to_in(stack):
    a, b = stack.udp.open(), stack.udp.open()
    a.join_group(G1, 0.0)
    run(stack, 3.0, start=0.0)
    b.join_group(G1, 3.0)
    assert igmp_out(run(stack, 6.0, start=3.0)) == []
    a.leave_group(G1, 6.0)
    assert igmp_out(run(stack, 9.0, start=6.0)) == []
    b.close(9.0)  # closing leaves every group of the socket
    sent = igmp_out(run(stack, 12.0, start=9.0))
    assert [records(m) for _t, _p, m in sent] == [[(W.CHANGE_TO_INCLUDE, G1, ())]] * 2
    assert not stack.igmp.is_member(G1)


def test_join_errors_are_windows_codes(stack):
    u = stack.udp.open()
    for bad in (ME, 0, ip_int("255.255.255.255")):
        try:
            u.join_group(bad, 0.0)
        except UsageError as e:
            assert e.reason is Reason.INVALID
        else:
            raise AssertionError("joined a unicast address")
    u.join_group(G1, 0.0)
    try:
        u.join_group(G1, 0.0)
    except UsageError as e:
        assert e.reason is Reason.ADDR_NOT_AVAIL  # a second IP_ADD_MEMBERSHIP of one group
    else:
        raise AssertionError("joined twice")
    u.leave_group(G1, 0.0)
    try:
        u.leave_group(G1, 0.0)
    except UsageError as e:
        assert e.reason is Reason.INVALID  # IP_DROP_MEMBERSHIP after it was dropped
    else:
        raise AssertionError("left twice")


# ---- queries -------------------------------------------------------------------------------------
def _joined(stack, *groups):
    for g in groups:
        stack.udp.open().join_group(g, 0.0)
    run(stack, 3.0, start=0.0)


def test_general_v3_query_answered_once_with_every_group_within_max_resp(stack):
    _joined(stack, G1, G2)
    query(stack, W.IgmpQuery(3, 50, 0, qrv=2, qqic=125), 10.0)  # Max Resp 5.0 s
    sent = igmp_out(run(stack, 20.0, start=10.0))
    assert len(sent) == 1
    t, p, m = sent[0]
    assert 10.0 <= t <= 15.0 + 0.01
    assert p.dst == W.V3_REPORTS
    assert sorted(records(m)) == [(W.MODE_IS_EXCLUDE, G1, ()), (W.MODE_IS_EXCLUDE, G2, ())]
    assert stack.counters.get("igmp.general_answers") == 1


def test_group_specific_and_group_and_source_queries(stack):
    _joined(stack, G1, G2)
    query(stack, W.IgmpQuery(3, 20, G2), 10.0, dst=G2)
    sent = igmp_out(run(stack, 13.0, start=10.0))
    assert [records(m) for _t, _p, m in sent] == [[(W.MODE_IS_EXCLUDE, G2, ())]]
    s1, s2 = ip_int("198.18.0.20"), ip_int("198.18.0.21")
    query(stack, W.IgmpQuery(3, 20, G1, sources=(s2,)), 20.0, dst=G1)
    query(stack, W.IgmpQuery(3, 20, G1, sources=(s1,)), 20.0, dst=G1)  # merged (rule 4)
    sent = igmp_out(run(stack, 23.0, start=20.0))
    assert [records(m) for _t, _p, m in sent] == [[(W.MODE_IS_INCLUDE, G1, (s1, s2))]]
    query(stack, W.IgmpQuery(3, 20, G3), 30.0, dst=G3)  # not a member (and not received)
    assert igmp_out(run(stack, 33.0, start=30.0)) == []


def test_a_general_query_to_a_group_address_is_ignored(stack):
    _joined(stack, G1)
    query(stack, W.IgmpQuery(3, 20, 0), 10.0, dst=G1)
    assert igmp_out(run(stack, 13.0, start=10.0)) == []
    assert stack.counters.get("igmp.general_query_not_all_systems") == 1


def test_qrv_from_the_querier_sets_the_number_of_repeats(stack):
    query(stack, W.IgmpQuery(3, 10, 0, qrv=4, qqic=60), 0.0)
    stack.udp.open().join_group(G1, 1.0)
    sent = igmp_out(run(stack, 10.0, start=1.0))
    changes = [m for _t, _p, m in sent if records(m)[0][0] == W.CHANGE_TO_EXCLUDE]
    assert len(changes) == 4  # (the general query's own answer, IS_EX, may also fall in here)
    assert stack.igmp.older_querier_timeout_s() == 4 * 60 + 10


def test_v2_querier_switches_to_v2_reports_suppression_and_leave(stack):
    _joined(stack, G1, G2)
    query(stack, W.IgmpQuery(2, 100, 0), 10.0)  # v2 general query, Max Resp 10 s
    assert stack.igmp.mode(10.0) == 2
    # another member reports G2 first: our G2 answer is suppressed
    stack.receive(ip_frame(OTHER_HOST, G2, 2, W.IgmpReport(W.V2_REPORT, G2).emit(), ttl=1), 10.0)
    sent = igmp_out(run(stack, 21.0, start=10.0))
    assert [(type(m), m.type, m.group, p.dst) for _t, p, m in sent] == [(W.IgmpReport, W.V2_REPORT, G1, G1)]
    assert 10.0 <= sent[0][0] <= 20.01
    assert stack.counters.get("igmp.reports_suppressed") == 1
    # leaving: only the last reporter (G1) sends a v2 leave, to 224.0.0.2
    for u in list(stack.udp.sockets):
        u.close(30.0)
    sent = igmp_out(run(stack, 40.0, start=30.0))
    assert [(m.type, m.group, p.dst) for _t, p, m in sent] == [(W.V2_LEAVE, G1, W.ALL_ROUTERS)]
    # a v2 join is a v2 report to the group, repeated within 10 s
    stack.udp.open().join_group(G3, 50.0)
    sent = igmp_out(run(stack, 62.0, start=50.0, step=0.05))
    assert [(m.type, p.dst) for _t, p, m in sent] == [(W.V2_REPORT, G3)] * 2
    assert sent[1][0] - sent[0][0] <= 10.0 + 0.05
    # back to v3 after the Older Version Querier Present Timeout (2 * 125 + 10 s)
    assert stack.igmp.mode(10.0 + 259.0) == 2 and stack.igmp.mode(10.0 + 260.0) == 3


def test_v1_querier_v1_reports_and_no_leave(stack):
    _joined(stack, G1)
    query(stack, W.IgmpQuery(1, 0, 0), 10.0)
    sent = igmp_out(run(stack, 21.0, start=10.0))
    assert [(m.type, p.dst) for _t, p, m in sent] == [(W.V1_REPORT, G1)]
    for u in list(stack.udp.sockets):
        u.close(30.0)
    assert igmp_out(run(stack, 40.0, start=30.0)) == []


def test_forced_v2_host_never_speaks_v3():
    s = make(igmp_version=2)
    s.udp.open().join_group(G1, 0.0)
    sent = igmp_out(run(s, 12.0, start=0.0, step=0.05))
    assert [(m.type, p.dst) for _t, p, m in sent] == [(W.V2_REPORT, G1)] * 2
    assert_no_internal_error(s)


def test_bad_igmp_is_a_counted_drop(stack):
    _joined(stack, G1)
    good = W.IgmpQuery(2, 100, 0).emit()
    stack.receive(ip_frame(PEER, W.ALL_SYSTEMS, 2, good[:5], ttl=1), 10.0)
    stack.receive(ip_frame(PEER, W.ALL_SYSTEMS, 2, good[:-1] + b"\x01", ttl=1), 10.0)
    stack.receive(ip_frame(PEER, W.ALL_SYSTEMS, 2, W.IgmpQuery(2, 100, ME).emit(), ttl=1), 10.0)
    assert stack.counters.get("igmp.truncated") == 1
    assert stack.counters.get("igmp.bad_checksum") == 1
    assert stack.counters.get("igmp.bad_query_group") == 1
    assert igmp_out(run(stack, 21.0, start=10.0)) == []


# ---- receiving: IP and Ethernet filters, per-socket delivery -------------------------------------
def test_only_joined_groups_are_received_and_only_by_sockets_that_joined(stack):
    a, b, c = stack.udp.open(), stack.udp.open(), stack.udp.open()
    a.bind(0, 5000, reuse=True)
    b.bind(0, 5000, reuse=True)
    c.bind(ME, 5000)  # bound to our unicast address: Windows delivers multicast here too
    a.join_group(G1, 0.0)
    c.join_group(G1, 0.0)
    b.join_group(G2, 0.0)
    stack.receive(udp_frame(PEER, G1, 4000, 5000, b"to g1", ttl=1), 1.0)
    stack.receive(udp_frame(PEER, G2, 4000, 5000, b"to g2", ttl=1), 1.0)
    stack.receive(udp_frame(PEER, G3, 4000, 5000, b"to g3", ttl=1), 1.0)
    assert [x[0] for x in a.queue] == [b"to g1"]
    assert [x[0] for x in b.queue] == [b"to g2"]
    assert [x[0] for x in c.queue] == [b"to g1"]
    assert stack.counters.get("ipv4.multicast_not_joined") == 1
    stack.receive(udp_frame(PEER, G1, 4000, 5001, b"no port", ttl=1), 1.0)
    assert stack.counters.get("udp.no_port_multicast") == 1
    assert stack.counters.get("icmp.errors_out") == 0  # never an ICMP error for multicast
    a.leave_group(G1, 2.0)
    c.leave_group(G1, 2.0)
    stack.receive(udp_frame(PEER, G1, 4000, 5000, b"after", ttl=1), 3.0)
    assert [x[0] for x in a.queue] == [b"to g1"]
    assert stack.counters.get("ipv4.multicast_not_joined") == 2


def test_ethernet_filters_multicast_macs_of_groups_not_joined(estack):
    u = estack.udp.open()
    u.bind(0, 5000)
    frame_g1 = eth(multicast_mac(G1), udp_frame(PEER, G1, 4000, 5000, b"x", ttl=1))
    estack.receive(frame_g1, 1.0)
    assert estack.counters.get("ethernet.multicast_filtered") == 1
    u.join_group(G1, 1.0)
    estack.receive(frame_g1, 2.0)
    assert [x[0] for x in u.queue] == [b"x"]
    # a group sharing G1's MAC passes the Ethernet filter and stops at the IP one
    estack.receive(eth(multicast_mac(G1_ALIAS), udp_frame(PEER, G1_ALIAS, 4000, 5000, b"y", ttl=1)), 2.0)
    assert estack.counters.get("ethernet.multicast_filtered") == 1
    assert estack.counters.get("ipv4.multicast_not_joined") == 1
    # 224.0.0.1's MAC is always accepted; the IPv4 multicast MAC of a left group is not
    u.leave_group(G1, 3.0)
    estack.receive(frame_g1, 4.0)
    assert estack.counters.get("ethernet.multicast_filtered") == 2
    assert multicast_mac(W.ALL_SYSTEMS) in estack.multicast_macs


def test_shared_mac_is_reference_counted(estack):
    a = estack.udp.open()
    a.join_group(G1, 0.0)
    a.join_group(G1_ALIAS, 0.0)
    a.leave_group(G1_ALIAS, 0.0)
    assert multicast_mac(G1) in estack.multicast_macs
    a.leave_group(G1, 0.0)
    assert multicast_mac(G1) not in estack.multicast_macs


def test_reports_go_to_the_group_mac_on_ethernet(estack):
    estack.udp.open().join_group(G1, 0.0)
    frames = estack.poll(0.0)
    assert frames and frames[0][:6] == multicast_mac(W.V3_REPORTS)


# ---- sending ---------------------------------------------------------------------------------
def test_multicast_send_uses_ttl_1_group_mac_and_loops_back_to_members(estack):
    tx, rx = estack.udp.open(), estack.udp.open()
    rx.bind(0, 6000)
    rx.join_group(G1, 0.0)
    estack.poll(0.0)
    tx.sendto(b"hello group", G1, 6000, 1.0)
    frames = estack.poll(1.0)
    udp = [f for f in frames if f[23] == 17]
    assert len(udp) == 1 and udp[0][:6] == multicast_mac(G1)
    p = Ipv4Packet.parse(udp[0][14:])
    assert (p.dst, p.ttl, p.src) == (G1, 1, ME)
    assert UdpDatagram.parse(p.payload, p.src, p.dst).payload == b"hello group"
    assert [x[:2] for x in rx.queue] == [(b"hello group", ME)]  # IP_MULTICAST_LOOP (default on)
    tx.mcast_loop = False
    tx.mcast_ttl = 5
    tx.sendto(b"quiet", G1, 6000, 2.0)
    p = Ipv4Packet.parse([f for f in estack.poll(2.0) if f[23] == 17][0][14:])
    assert p.ttl == 5 and len(rx.queue) == 1
    assert tx.ttl == 64  # unicast keeps its own TTL


def test_multicast_loopback_on_tun_and_an_unjoined_group_is_not_looped(stack):
    tx, rx = stack.udp.open(), stack.udp.open()
    rx.bind(0, 6000)
    rx.join_group(G1, 0.0)
    tx.sendto(b"a", G1, 6000, 1.0)
    tx.sendto(b"b", G2, 6000, 1.0)
    out = [p for _t, p in run(stack, 1.0, start=1.0) if p.proto == 17]
    assert [p.dst for p in out] == [G1, G2]
    assert [x[0] for x in rx.queue] == [b"a"]
    assert stack.counters.get("ipv4.multicast_looped") == 1
