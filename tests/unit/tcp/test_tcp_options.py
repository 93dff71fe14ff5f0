"""Timestamps (RTT measurement, PAWS), congestion control algorithms, ICMP errors, tracing."""

from __future__ import annotations

import pytest
from tcphelpers import PEER_ISS, REMOTE, RPORT, Harness, seg

from ustack.core import events as ev
from ustack.core.reasons import Reason
from ustack.tcp import State
from ustack.tcp.cc import Cubic, NewReno, make
from ustack.wire.ipv4 import Ipv4Packet
from ustack.wire.tcp import TcpOptions


def ts_est(**kw):
    h = Harness(timestamps=True, **kw)
    s, c = h.established(options=TcpOptions(mss=1000, ts=(5000, 0)))
    return h, s, c


def tsdata(h, c, at, off, payload, tsval, ack_off=0):
    h.peer_sends(at, h.pseg(".", PEER_ISS + 1 + off, c.iss + 1 + ack_off, payload=payload,
                            options=TcpOptions(ts=(tsval, 0))))


# ---- timestamps ----------------------------------------------------------------------------------
def test_timestamps_negotiated_and_echoed():
    h, s, c = ts_est()
    assert c.ts_ok and c.ts_recent == 5000
    s.send(b"hi", 1.0)
    out = h.out(1.0)[0]
    assert out.options.ts[1] == 5000
    assert out.options.ts[0] == (1000 + c.ts_offset) & 0xFFFFFFFF


def test_timestamps_reduce_mss():
    h, s, c = ts_est()
    assert c.snd.mss == 988


def test_ts_recent_updated_by_in_order_segment():
    h, s, c = ts_est()
    tsdata(h, c, 1.0, 0, b"a", 6000)
    assert c.ts_recent == 6000


def test_paws_drops_old_timestamp_and_acks():
    # the peer's clock runs at 1 kHz (5000 at 0 s, 10000 at 5 s); 7000 is 3 s old: far more than
    # the one-RTO allowance for reordering, so an old duplicate (here newer than the SYN even)
    h, s, c = ts_est()
    tsdata(h, c, 5.0, 0, b"a", 10000)
    h.out(5.05)
    tsdata(h, c, 5.1, 1, b"b", 7000)
    h.expect_out(5.1, [dict(flags=".", ack=PEER_ISS + 2)])
    assert s.recv(10) == b"a"
    assert h.stack.counters.get("tcp.paws_drop") == 1
    assert c.ts_recent == 10000


def test_paws_allows_reordered_pure_ack():
    h, s, c = ts_est()
    s.send(b"x" * 10, 1.0)
    h.take()
    tsdata(h, c, 1.0, 0, b"", 6000, ack_off=5)
    tsdata(h, c, 1.0, 0, b"", 5999, ack_off=10)
    assert c.snd.snd_una == c.iss + 11


def test_paws_does_not_apply_to_rst():
    h, s, c = ts_est()
    tsdata(h, c, 1.0, 0, b"a", 6000)
    h.peer_sends(1.1, h.pseg("R", PEER_ISS + 2, 0, options=TcpOptions(ts=(1, 0))))
    assert s.error is Reason.RESET


def test_paws_wraparound_newer_is_accepted():
    h = Harness(timestamps=True)
    s, c = h.established(options=TcpOptions(mss=1000, ts=(0xFFFFFF00, 0)))
    tsdata(h, c, 1.0, 0, b"a", 0x10)  # wrapped: newer
    assert s.recv(10) == b"a"


def test_rtt_measured_from_tsecr():
    h, s, c = ts_est()
    s.send(b"x" * 10, 1.0)
    out = h.out(1.0)[0]
    # 0.15 s: before the 0.2 s RTO fires (an ACK echoing a TSval older than an RTO
    # retransmission gives no sample, see test_rtt_sample_does_not_span_an_rto_backoff_...)
    h.peer_sends(1.15, h.pseg(".", PEER_ISS + 1, c.iss + 11,
                              options=TcpOptions(ts=(5001, out.options.ts[0]))))
    # the handshake sampled ~0 s; one 0.15 s sample moves SRTT by 1/8 (RFC 6298 2.3)
    assert c.snd.retransmits == 0 and c.snd.srtt == pytest.approx(0.15 / 8, abs=0.001)


# ---- congestion control ------------------------------------------------------------------------
def test_initial_window_rfc6928():
    assert NewReno(1460).cwnd == 14600
    assert NewReno(536).cwnd == 5360
    assert NewReno(9000).cwnd == 18000
    assert NewReno(1000, initial_segments=4).cwnd == 4000


def test_newreno_congestion_avoidance_one_mss_per_window():
    cc = NewReno(1000)
    cc.ssthresh = cc.cwnd = 10000
    for _ in range(10):
        cc.on_ack(1000, 1.0, 0.1, 10000)
    assert cc.cwnd == 11000


def test_newreno_loss_halves():
    cc = NewReno(1000)
    cc.cwnd = 20000
    cc.on_loss(0.0, 20000)
    assert cc.ssthresh == 10000 and cc.cwnd == 10000
    cc.on_rto(0.0, 10000)
    assert cc.cwnd == 1000 and cc.ssthresh == 5000


def test_cubic_reduces_by_beta_and_regrows_to_wmax():
    cc = Cubic(1000)
    cc.cwnd = 100_000
    cc.ssthresh = 1
    cc.on_loss(0.0, 100_000)
    assert cc.cwnd == 70_000
    assert cc.w_max == pytest.approx(100)
    t = 0.0
    while t < 10.0:
        t += 0.01
        cc.on_ack(1000, t, 0.01, cc.cwnd)
    assert cc.cwnd > 100_000  # passed the plateau after K seconds


def test_cubic_fast_convergence():
    cc = Cubic(1000)
    cc.w_max = 200
    cc.cwnd = 100_000
    cc.on_loss(0.0, 100_000)
    assert cc.w_max == pytest.approx(100 * 1.7 / 2)


def test_cc_factory():
    assert make("cubic", 1000).name == "cubic"
    assert make("newreno", 1000).name == "newreno"
    with pytest.raises(ValueError):
        make("vegas", 1000)


def test_cc_selected_by_config():
    h = Harness(congestion_control="newreno")
    s, c = h.established()
    assert c.snd.cc.name == "newreno"


# ---- ICMP ---------------------------------------------------------------------------------------
def icmp_for(h, syn_or_seg, kind, mtu=0):
    quoted = Ipv4Packet(syn_or_seg_src(syn_or_seg), REMOTE, 6, b"")
    payload = syn_or_seg.emit(quoted.src, REMOTE)[:8]
    h.layer.on_icmp_error(kind, quoted, payload, mtu, h.now)


def syn_or_seg_src(_):
    from tcphelpers import LOCAL
    return LOCAL


@pytest.mark.parametrize("kind,reason", [
    (Reason.HOST_UNREACH, Reason.HOST_UNREACH), (Reason.NET_UNREACH, Reason.NET_UNREACH),
    (Reason.PORT_UNREACH, Reason.REFUSED), (Reason.PROTO_UNREACH, Reason.PROTO_UNREACH)])
def test_icmp_unreachable_fails_connect(kind, reason):
    h = Harness()
    s, syn = h.connect()
    icmp_for(h, syn, kind)
    assert s.error is reason and s.state is State.CLOSED
    assert h.events[-1] & ev.CONNECT
    h.expect_nothing(30)


def test_icmp_with_wrong_seq_ignored():
    h = Harness()
    s, syn = h.connect()
    icmp_for(h, syn._replace(seq=syn.seq + 5000), Reason.HOST_UNREACH)
    assert s.state is State.SYN_SENT


def test_icmp_time_exceeded_ignored():
    h = Harness()
    s, syn = h.connect()
    icmp_for(h, syn, Reason.TTL_EXPIRED)
    assert s.state is State.SYN_SENT


def test_icmp_unreachable_soft_when_established():
    h = Harness()
    s, c = h.established()
    s.send(b"x", 1.0)
    out = h.out(1.0)[0]
    icmp_for(h, out, Reason.HOST_UNREACH)
    assert s.state is State.ESTABLISHED and s.error is None
    assert c.soft_error is Reason.HOST_UNREACH


def test_frag_needed_lowers_mss_and_resends():
    h = Harness()
    s, c = h.established(options=TcpOptions(mss=1460))
    s.send(b"x" * 1460, 1.0)
    out = h.out(1.0)[0]
    assert len(out.payload) == 1460
    icmp_for(h, out, Reason.FRAG_NEEDED, mtu=1000)
    got = h.out(1.0)
    assert [len(g.payload) for g in got] == [960, 500]
    assert c.snd.mss == 960


def test_arp_failure_during_connect_is_host_unreach():
    # the core reports ARP failure as on_icmp_error(HOST_UNREACH) quoting the whole packet
    h = Harness()
    s, syn = h.connect()
    from tcphelpers import LOCAL
    raw = syn.emit(LOCAL, REMOTE)
    h.layer.on_icmp_error(Reason.HOST_UNREACH, Ipv4Packet(LOCAL, REMOTE, 6, raw), raw, 0, 0.5)
    assert s.error is Reason.HOST_UNREACH


def test_send_failure_net_unreach_fails_connect():
    h = Harness()
    h.stack.fail_send = Reason.NET_UNREACH
    s = h.socket()
    s.connect(REMOTE, RPORT, 0.0)
    assert s.error is Reason.NET_UNREACH


# ---- tracing -------------------------------------------------------------------------------------
def test_trace_hook_sees_states_and_cwnd():
    h = Harness()
    seen = []
    conns = []

    def hook(kind, now, conn=None, **f):
        conns.append(conn)
        seen.append((kind, f))

    h.layer.on_trace = hook
    s, c = h.established(options=TcpOptions(mss=1000))
    s.send(b"x" * 20000, 1.0)  # cwnd-limited: 10 segments in flight
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 3001))
    assert conns and all(x is c for x in conns)  # every event names its connection
    kinds = [k for k, _ in seen]
    assert ("state", {"old": "SYN-SENT", "new": "ESTABLISHED"}) in seen
    assert kinds.count("cwnd") >= 2
    assert seen[-1][1]["cwnd"] == 13000  # slow start counts the 3 acked segments (RFC 3465)


def test_segment_from_wrong_peer_port_gets_rst():
    h = Harness()
    s, c = h.established()
    h.peer_sends(1.0, seg(".", 1, 2, sport=RPORT + 1, dport=h.lport))
    h.expect_out(1.0, [dict(flags="R", seq=2)])


def test_cubic_ssthresh_is_beta_times_cwnd_even_when_application_limited():
    # RFC 9438 4.6 and Linux's bictcp_recalc_ssthresh: 0.7 * cwnd, not 0.7 * FlightSize
    # (packetdrill cubic-rto-ss-ca-cwnd-bump: one segment out of cwnd 10 -> ssthresh 7)
    cc = Cubic(1000)
    cc.on_rto(0.0, 1000)
    assert cc.ssthresh == 7000 and cc.cwnd == 1000
    cc = Cubic(1000)
    cc.cwnd = 20_000
    cc.on_loss(0.0, 4000)
    assert cc.ssthresh == 14_000 and cc.cwnd == 14_000


def test_cubic_after_timeout_starts_its_curve_at_the_current_cwnd():
    # RFC 9438 4.8: in the first congestion avoidance after a timeout K = 0 and W_max is the
    # cwnd at its start (Linux resets the curve on TCP_CA_Loss), not the W_max before the loss
    cc = Cubic(1000)
    cc.cwnd = 100_000
    cc.on_rto(0.0, 100_000)
    assert cc.ssthresh == 70_000 and cc.w_max == 0
    cc.cwnd = 70_000
    cc.on_ack(1000, 1.0, 0.1, 70_000)
    assert cc.k == 0 and cc.w_max == pytest.approx(70)
