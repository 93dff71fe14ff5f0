"""Loss recovery: RTO (RFC 6298) with backoff and Karn, data retries, fast retransmit (RFC 6582),
SACK-based recovery (RFC 6675), FIN retransmission."""

from __future__ import annotations

import pytest
from tcphelpers import PEER_ISS, Harness

from ustack.core import events as ev
from ustack.core.reasons import Reason
from ustack.tcp import State
from ustack.tcp.sender import Sender
from ustack.wire.tcp import TcpOptions

MSS = 1000


def est(**kw):
    h = Harness(**kw)
    s, c = h.established(options=TcpOptions(mss=MSS, sack_perm=kw.get("sack", False)))
    s.nodelay = True
    return h, s, c


def ack(h, c, at, n, **kw):
    h.peer_sends(at, h.pseg(".", PEER_ISS + 1, c.iss + 1 + n, **kw))


# ---- RTO -----------------------------------------------------------------------------------------
def test_rto_estimator_rfc6298():
    snd = Sender(0, 1000, 1.0, 0.2, 60.0)
    snd.rtt_sample(0.5)
    assert snd.srtt == 0.5 and snd.rttvar == 0.25 and snd.rto == pytest.approx(1.5)
    snd.rtt_sample(0.5)
    assert snd.rttvar == pytest.approx(0.1875) and snd.rto == pytest.approx(1.25)


def test_rto_min_on_variance_floors_the_variance_term_as_linux():
    """Linux's tcp_set_rto: RTO = SRTT + max(4*RTTVAR, rto_min), so a steady 100 ms path gets a
    300 ms RTO; RFC 6298 with a 200 ms floor on the sum gives 200 ms."""
    rfc = Sender(0, 1000, 1.0, 0.2, 60.0)
    linux = Sender(0, 1000, 1.0, 0.2, 60.0, rto_min_on_variance=True)
    for _ in range(40):
        rfc.rtt_sample(0.1)
        linux.rtt_sample(0.1)
    assert rfc.rto == pytest.approx(0.2)
    assert linux.rto == pytest.approx(0.3)
    linux.rtt_sample(0.5)  # a variance above the floor counts as such
    assert linux.rto == pytest.approx(linux.srtt + 4 * linux.rttvar)


def test_rto_clamped_to_min_and_max():
    snd = Sender(0, 1000, 1.0, 0.2, 60.0)
    snd.rtt_sample(0.001)
    assert snd.rto == 0.2
    snd.rtt_sample(100.0)
    assert snd.rto == 60.0


def test_retransmission_with_exponential_backoff():
    h, s, c = est()
    s.send(b"x" * 100, 1.0)
    h.take()
    rto = c.snd.rto
    h.expect_nothing(1.0 + rto - 0.001)
    h.expect_out(1.0 + rto, [dict(seq=c.iss + 1, len=100)])
    h.expect_nothing(1.0 + 3 * rto - 0.001)
    h.expect_out(1.0 + 3 * rto, [dict(seq=c.iss + 1, len=100)])
    h.expect_out(1.0 + 7 * rto, [dict(seq=c.iss + 1, len=100)])


def test_data_retries_exhausted_times_out():
    h, s, c = est(data_retries=3)
    s.send(b"x" * 100, 1.0)
    h.take()
    rto = c.snd.rto
    for k in (1, 3, 7):
        h.expect_out(1.0 + k * rto, [dict(len=100)])
    h.expect_out(1.0 + 15 * rto, [dict(flags="R.")])
    assert s.state is State.CLOSED and s.error is Reason.TIMED_OUT
    assert h.events[-1] & ev.CLOSE


def test_ack_resets_retries_but_backoff_only_on_a_valid_rtt_sample():
    """Progress resets the retry count (the peer is alive), but the ACK of retransmitted data
    gives no RTT sample (Karn), so the backed-off RTO stays until a valid measurement (RFC 6298,
    note after 5.7; Linux resets icsk_backoff only then). A reset here would collapse the RTO to
    the old SRTT before anything showed the path is fast again (bug B7)."""
    h, s, c = est()
    s.send(b"x" * 100, 1.0)
    h.take()
    h.out(1.0 + 3 * 0.2)
    assert c.retries == 2
    ack(h, c, 2.0, 100)
    assert c.retries == 0 and c.snd.backoff == 2
    assert c.timers.rto_at is None
    s.send(b"y" * 100, 2.1)
    h.take()
    ack(h, c, 2.15, 200)  # new data, timed: a valid sample ends the backoff
    assert c.snd.backoff == 0 and c.snd.rto < 2 * 0.2  # back from 4 x RTO to about rto_min


def test_karn_no_sample_from_retransmitted_segment():
    h, s, c = est()
    s.send(b"x" * 100, 1.0)
    h.take()
    h.out(1.2)  # retransmitted
    srtt = c.snd.srtt
    ack(h, c, 1.9, 100)
    assert c.snd.srtt == srtt


def test_rtt_sample_from_timed_segment():
    h, s, c = est()
    s.send(b"x" * 100, 1.0)
    ack(h, c, 1.05, 100)
    assert c.snd.srtt < 0.05 and c.snd.srtt > 0


def test_rto_restarts_on_partial_ack():
    h, s, c = est()
    s.send(b"x" * 2000, 1.0)
    h.take()
    ack(h, c, 1.1, 1000)
    assert c.timers.rto_at == pytest.approx(1.1 + c.snd.rto)


def test_rto_collapses_cwnd_and_goes_back():
    h, s, c = est(sndbuf=100000)
    s.send(b"x" * 5000, 1.0)
    assert len(h.out(1.0)) == 5
    ack(h, c, 1.01, 1000)
    h.take()
    out = h.out(1.01 + c.snd.rto)
    assert [o.seq for o in out] == [c.iss + 1001]
    assert c.snd.cc.cwnd == MSS
    ack(h, c, 1.3, 2000)
    out = h.out(1.3)
    assert [o.seq for o in out] == [c.iss + 2001, c.iss + 3001]  # slow start again


# ---- fast retransmit without SACK (NewReno) ------------------------------------------------------
def test_three_dupacks_trigger_fast_retransmit_newreno():
    h, s, c = est(congestion_control="newreno", sndbuf=100000)
    s.send(b"x" * 8000, 1.0)
    assert len(h.out(1.0)) == 8
    for _ in range(2):
        ack(h, c, 1.1, 0)
    h.expect_nothing(1.1)  # limited transmit has nothing new beyond 8 segments? (all sent)
    ack(h, c, 1.1, 0)
    h.expect_out(1.1, [dict(seq=c.iss + 1, len=MSS)])
    assert c.snd.in_recovery
    assert c.snd.cc.ssthresh == 4000
    assert h.stack.counters.get("tcp.fast_retransmit") == 1


def test_newreno_partial_ack_retransmits_next_hole():
    h, s, c = est(congestion_control="newreno", sndbuf=100000)
    s.send(b"x" * 8000, 1.0)
    h.take()
    for _ in range(3):
        ack(h, c, 1.1, 0)
    h.take()
    ack(h, c, 1.2, 3000)  # partial: segment at 3000 lost too
    out = h.out(1.2)
    assert out[0].seq == c.iss + 3001
    ack(h, c, 1.3, 8000)
    assert not c.snd.in_recovery


def test_limited_transmit_sends_new_data_on_first_dupacks():
    h, s, c = est(sndbuf=100000)
    s.send(b"x" * 12000, 1.0)
    assert len(h.out(1.0)) == 10
    ack(h, c, 1.1, 0)
    h.expect_out(1.1, [dict(seq=c.iss + 1 + 10 * MSS)])
    ack(h, c, 1.1, 0)
    h.expect_out(1.1, [dict(seq=c.iss + 1 + 11 * MSS)])


def test_slow_start_counts_only_newly_delivered_bytes_after_reordering():
    """The cumulative ACK that ends a reordering episode acknowledges 3000 bytes, 2000 of them
    SACKed before: slow start grows by the 1000 newly delivered (Linux's acked_sacked; packetdrill
    limited_transmit/limited-transmit-sack), not by 3000."""
    h, s, c = est(sack=True, sndbuf=100000)
    s.send(b"x" * 15000, 1.0)
    assert len(h.out(1.0)) == 10
    ack(h, c, 1.1, 0, options=sack_opts(c, (1000, 2000)))
    ack(h, c, 1.11, 0, options=sack_opts(c, (1000, 3000)))
    assert len(h.out(1.11)) == 2  # limited transmit
    assert c.snd.cc.cwnd == 10 * MSS
    ack(h, c, 1.12, 3000)
    assert c.snd.cc.cwnd == 11 * MSS
    assert [o.seq - c.iss - 1 for o in h.out(1.12)] == [12000, 13000]


def test_slow_start_without_sack_discounts_segments_reported_by_dupacks():
    """Without SACK, two duplicate ACKs reported two segments delivered: the cumulative ACK of
    3000 bytes that follows counts one new segment (packetdrill limited-transmit-no-sack)."""
    h, s, c = est(sndbuf=100000)
    s.send(b"x" * 15000, 1.0)
    assert len(h.out(1.0)) == 10
    ack(h, c, 1.1, 0)
    ack(h, c, 1.11, 0)
    assert len(h.out(1.11)) == 2  # limited transmit
    ack(h, c, 1.12, 3000)
    assert c.snd.cc.cwnd == 11 * MSS
    assert [o.seq - c.iss - 1 for o in h.out(1.12)] == [12000, 13000]


def test_go_back_retransmission_resends_whole_segment_around_a_partial_sack():
    """After an RTO, a segment whose last byte alone was SACKed is resent whole (1000 bytes), not
    as the 999 un-SACKed bytes: Linux's unit is the segment (packetdrill fr-4pkt-fack-last-byte),
    and SACKs of odd bytes cannot make the sender emit runts."""
    h, s, c = est(sack=True, sndbuf=100000)
    s.send(b"x" * 4000, 1.0)
    assert len(h.out(1.0)) == 4
    ack(h, c, 1.1, 0, options=TcpOptions(sack=((c.iss + 4000, c.iss + 4001),)))
    h.take()
    assert [o.seq - c.iss - 1 for o in h.out(2.5) if o.payload][:1] == [0]  # the RTO
    ack(h, c, 3.5, 3000, options=TcpOptions(sack=((c.iss + 4000, c.iss + 4001),)))
    got = [(o.seq - c.iss - 1, len(o.payload)) for o in h.take() if o.payload]
    assert got == [(3000, 1000)]


# ---- SACK recovery (RFC 6675) ----------------------------------------------------------------------
def sack_opts(c, *ranges):
    return TcpOptions(sack=tuple((c.iss + 1 + a, c.iss + 1 + b) for a, b in ranges))


def test_prr_slow_start_bound_sends_one_segment_per_sack_below_ssthresh():
    """PRR (RFC 6937), pipe below ssthresh: four segments lost of ten; each SACK lets one
    segment out (slow-start reduction bound), not all four holes on entering recovery as RFC
    6675's pipe alone allowed (packetdrill prr-ss-30pkt-lost1_4)."""
    h, s, c = est(sack=True, sndbuf=100000)
    s.send(b"x" * 10000, 1.0)
    assert len(h.out(1.0)) == 10
    sent = []
    for hi in range(5000, 11000, 1000):
        ack(h, c, 1.1, 0, options=sack_opts(c, (4000, hi)))
        sent.append([o.seq - c.iss - 1 for o in h.out(1.1)])
    assert sent == [[], [], [0], [1000], [2000], [3000]]
    assert c.snd.in_recovery and c.snd.cc.ssthresh == 7000


def test_prr_sends_in_proportion_while_pipe_is_above_ssthresh():
    """PRR's proportional part: with one segment lost of twenty, pipe stays above ssthresh
    (0.7 * 20) and recovery sends ceil(ssthresh * delivered / prior cwnd) - sent so far: seven
    segments for every ten delivered, spread over the ACKs (RFC 6937 section 3; rounded up
    to whole segments as Linux's tcp_cwnd_reduction)."""
    h, s, c = est(sack=True, sndbuf=100000)
    c.snd.cc.cwnd = 20 * MSS
    s.send(b"x" * 40000, 1.0)
    assert len(h.out(1.0)) == 20
    counts = []
    for hi in range(2000, 12000, 1000):
        ack(h, c, 1.1, 0, options=sack_opts(c, (1000, hi)))
        counts.append(len(h.out(1.1)))
    # two limited transmits, then recovery: ceil(14 * k / 20) segments after k delivered
    assert counts == [1, 1, 1, 1, 1, 0, 1, 1, 0, 1]
    assert c.snd.prr_out == 6 * MSS and c.snd.prr_delivered == 8 * MSS


def test_in_recovery_holes_below_sacked_data_are_lost_at_once():
    """In recovery, with no reordering seen, data sent before SACKed data is lost (RACK, RFC
    8985, with Linux's zero reordering window in recovery): after a partial ACK, the holes
    4000:8000 below the SACKed 8000:9000 are retransmitted as PRR allows, although fewer than
    DupThresh segments are SACKed above them (packetdrill prr-ss-ack-below-snd_una-cubic)."""
    h, s, c = est(sack=True, sndbuf=100000)
    s.send(b"x" * 10000, 1.0)
    assert len(h.out(1.0)) == 10
    ack(h, c, 1.1, 0, options=sack_opts(c, (1000, 2000)))
    ack(h, c, 1.1, 0, options=sack_opts(c, (1000, 3000)))
    ack(h, c, 1.1, 0, options=sack_opts(c, (1000, 3000), (8000, 9000)))
    assert [o.seq - c.iss - 1 for o in h.out(1.1)] == [0]
    ack(h, c, 1.12, 4000, options=sack_opts(c, (8000, 9000)))
    assert [o.seq - c.iss - 1 for o in h.out(1.12)] == [4000, 5000, 6000]


def test_retransmission_lost_when_a_later_retransmission_is_sacked():
    """Segments 0-2 lost and retransmitted in that order; the SACK of the retransmissions of 1
    and 2 shows the retransmission of 0 lost too (RACK's rule: something sent after it was
    delivered), so 0 goes out again at once (packetdrill prr-ss-30pkt-lost-1_4-11_16)."""
    h, s, c = est(sack=True, sndbuf=100000)
    s.send(b"x" * 10000, 1.0)
    assert len(h.out(1.0)) == 10
    rexmits = []
    for hi in range(4000, 9000, 1000):
        ack(h, c, 1.1, 0, options=sack_opts(c, (3000, hi)))
        rexmits += [o.seq - c.iss - 1 for o in h.out(1.1)]
    assert rexmits == [0, 1000, 2000]
    ack(h, c, 1.11, 0, options=sack_opts(c, (1000, 8000)))
    assert [o.seq - c.iss - 1 for o in h.out(1.11)][:1] == [0]
    assert h.stack.counters.get("tcp.lost_retransmit") == 1


def test_sack_recovery_retransmits_only_holes():
    h, s, c = est(sack=True, sndbuf=100000)
    s.send(b"x" * 10000, 1.0)
    assert len(h.out(1.0)) == 10
    # segments 0 and 2 lost; 1 and 3..9 SACKed
    ack(h, c, 1.1, 0, options=sack_opts(c, (1000, 2000)))
    ack(h, c, 1.1, 0, options=sack_opts(c, (3000, 4000), (1000, 2000)))
    ack(h, c, 1.1, 0, options=sack_opts(c, (3000, 6000), (1000, 2000)))
    out = h.out(1.1)
    rexmit = [o.seq - c.iss - 1 for o in out if o.seq - c.iss - 1 < 10000]
    assert rexmit[:2] == [0, 2000]
    assert c.snd.in_recovery
    ack(h, c, 1.2, 10000)
    assert not c.snd.in_recovery


def test_sack_scoreboard_merges_and_trims():
    snd = Sender(0, 100000, 1.0, 0.2, 60.0)
    snd.snd_una = 1
    snd.snd_max = snd.snd_nxt = 10001
    snd.mss = 1000
    assert snd.add_sack(((2001, 3001), (4001, 5001)))
    assert not snd.add_sack(((2001, 3001),))
    assert snd.add_sack(((3001, 4001),))
    assert snd.sacked == [[2001, 5001]]
    snd.add_sack(((20000, 30000),))  # beyond SND.MAX: ignored
    assert snd.sacked == [[2001, 5001]]
    assert snd.lost_end() == 2001
    assert snd.next_hole(snd.lost_end()) == (1, 2000)
    snd.ack_data(3001)
    assert snd.sacked == [[3001, 5001]]


def test_pipe_counts_unsacked_not_lost_plus_retransmitted():
    snd = Sender(0, 100000, 1.0, 0.2, 60.0)
    snd.snd_una = 1
    snd.snd_max = snd.snd_nxt = 10001
    snd.mss = 1000
    snd.add_sack(((1001, 4001),))
    lost = snd.lost_end()
    assert lost == 1001
    assert snd.pipe(lost) == 10000 - 3000 - 1000
    snd.high_rxt = 1001
    assert snd.pipe(lost) == 10000 - 3000


# ---- FIN retransmission ----------------------------------------------------------------------------
def test_fin_retransmitted():
    h, s, c = est()
    s.shutdown(1, 1.0)
    h.expect_out(1.0, [dict(flags="F.", seq=c.iss + 1)])
    rto = c.snd.rto
    h.expect_out(1.0 + rto, [dict(flags="F.", seq=c.iss + 1)])
    ack(h, c, 1.0 + 2 * rto, 1)
    assert s.state is State.FIN_WAIT_2
    h.expect_nothing(10.0)


def test_fin_after_data_retransmitted_with_data():
    h, s, c = est()
    s.send(b"abc", 1.0)
    s.shutdown(1, 1.0)
    out = h.out(1.0)
    assert out[-1].flags & 1
    h.out(1.0 + c.snd.rto)
    ack(h, c, 2.0, 3)
    out = h.out(2.0)
    assert s.state is State.FIN_WAIT_1
    ack(h, c, 2.1, 4)
    assert s.state is State.FIN_WAIT_2


def test_sack_dupack_counted_even_when_window_moves():
    # Linux grows its window on every ACK; RFC 6675 counts ACKs that SACK new data as dupacks
    h, s, c = est(sack=True, sndbuf=100000)
    s.send(b"x" * 6000, 1.0)
    h.take()
    for i, w in enumerate((30000, 31000, 32000)):
        ack(h, c, 1.1, 0, window=w, options=sack_opts(c, (1000, 2000 + 1000 * i)))
    assert c.snd.in_recovery
    assert h.out(1.1)[0].seq == c.iss + 1


def test_lost_retransmission_detected_by_later_sack():
    h, s, c = est(sack=True, sndbuf=100000)
    s.send(b"x" * 30000, 1.0)
    assert len(h.out(1.0)) == 10
    for hi in (2000, 3000, 4000):  # segment 0 lost; limited transmit sends 10000 and 11000
        ack(h, c, 1.1, 0, options=sack_opts(c, (1000, hi)))
    out = h.out(1.1)
    assert out[-1].seq == c.iss + 1  # recovery: segment 0 retransmitted
    ack(h, c, 1.12, 0, options=sack_opts(c, (1000, 12000)))  # (the RTO would fire at 1.2)
    out = h.out(1.12)
    assert out and all(o.seq - c.iss - 1 >= 12000 for o in out)  # pipe is small: new data
    # data sent after the retransmission is SACKed while segment 0 is still missing
    ack(h, c, 1.14, 0, options=sack_opts(c, (1000, 13000)))
    out = h.out(1.14)
    assert out and out[0].seq == c.iss + 1
    assert h.stack.counters.get("tcp.lost_retransmit") == 1


def test_lost_retransmission_mark_ends_when_snd_una_passes_it():
    """The "retransmission of SND.UNA is lost" test compares SACKs with SND.MAX at that
    retransmission; once a cumulative ACK covers it, the retransmission arrived and SACKs of
    later data say nothing about the next hole's retransmission, still in flight (it was
    re-sent again and again, each a D-SACK, in the dynamics benchmark)."""
    h, s, c = est(sack=True, sndbuf=100000)
    s.send(b"x" * 40000, 1.0)
    assert len(h.out(1.0)) == 10
    for hi in (2000, 3000, 4000):  # segments 0 and 5 lost
        ack(h, c, 1.1, 0, options=sack_opts(c, (1000, hi)))
    assert [o.seq - c.iss - 1 for o in h.out(1.1)] == [10000, 11000, 0]  # segment 0 again
    for hi in (7000, 8000, 9000):
        ack(h, c, 1.12, 0, options=sack_opts(c, (6000, hi), (1000, 5000)))
    # 5 again: in recovery a hole below SACKed data is lost at once (RACK's zero reordering window)
    assert [o.seq - c.iss - 1 for o in h.out(1.12)] == [5000, 12000, 13000]
    ack(h, c, 1.14, 5000, options=sack_opts(c, (6000, 13000)))  # segment 0's retransmission came
    h.out(1.14)
    # 12000 and 13000 were sent after segment 0's retransmission (and after segment 5's)
    ack(h, c, 1.14, 5000, options=sack_opts(c, (6000, 14000)))
    assert 5000 not in [o.seq - c.iss - 1 for o in h.out(1.14)]
    assert h.stack.counters.get("tcp.lost_retransmit") == 0


def tlp_est(window=65535, **kw):
    """Established with SRTT = 0.1 s (the SYN-ACK took 0.1 s), TLP on."""
    from tcphelpers import seg
    h = Harness(tail_loss_probe=True, **kw)
    s, syn = h.connect()
    h.lport = syn.sport
    h.peer_sends(0.1, seg("S.", PEER_ISS, syn.seq + 1, window, dport=syn.sport,
                          options=TcpOptions(mss=MSS)))
    h.take()
    s.nodelay = True
    return h, s, s.conn


def test_tail_loss_probe_sends_last_segment_before_rto():
    h, s, c = tlp_est()
    assert c.snd.srtt == 0.1 and c.snd.rto == pytest.approx(0.3)
    s.send(b"y" * 3000, 1.0)
    assert len(h.out(1.0)) == 3
    h.expect_nothing(1.1999)
    out = h.out(1.2)  # PTO = 2 * SRTT, before the RTO at 1.3
    assert [(o.seq - c.iss - 1, len(o.payload)) for o in out] == [(2000, 1000)]
    assert h.stack.counters.get("tcp.tail_loss_probe") == 1
    assert c.snd.cc.cwnd == 10 * MSS  # a probe is not a congestion signal
    h.expect_nothing(1.4)  # one probe per tail; the RTO was pushed to 1.2 + RTO
    assert h.stack.counters.get("tcp.rto") == 0


def test_tail_loss_probe_for_single_segment_waits_for_delayed_ack():
    h, s, c = tlp_est()
    s.send(b"y" * 100, 1.0)
    h.take()
    # RFC 8985 7.2: PTO = 2 * SRTT + WCDelAckT (200 ms) = 0.4 s, beyond the RTO (0.3 s): the
    # probe takes the RTO's place, and the RTO is restarted from it (Linux does the same)
    assert c.timers.probe_at < c.timers.rto_at == 1.3
    h.expect_nothing(1.2998)
    h.expect_out(1.3, [dict(len=100)])
    assert c.snd.backoff == 0 and c.timers.rto_at == pytest.approx(1.3 + c.snd.rto)


def test_tail_loss_probe_sends_new_data_when_available():
    h, s, c = tlp_est(window=3000, sndbuf=100000)
    s.send(b"y" * 5000, 1.0)
    assert len(h.out(1.0)) == 3  # window-limited
    h.peer_sends(1.05, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=3500))  # SWS holds 500 bytes
    h.expect_nothing(1.05)
    out = h.out(1.25)
    assert [(o.seq - c.iss - 1, len(o.payload)) for o in out] == [(3000, 500)]


def test_tail_loss_probe_repeats_last_sent_segment_not_queued_data():
    h, s, c = tlp_est(window=3000, sndbuf=100000)
    s.send(b"y" * 5000, 1.0)
    assert len(h.out(1.0)) == 3
    out = h.out(1.2)
    assert [(o.seq - c.iss - 1, len(o.payload)) for o in out] == [(2000, 1000)]


def test_tail_loss_probe_off_by_config():
    h = Harness(tail_loss_probe=False)
    s, c = h.established(options=TcpOptions(mss=MSS))
    s.send(b"y" * 3000, 1.0)
    h.take()
    h.expect_nothing(1.0 + c.snd.rto - 0.001)


def test_dsack_undoes_spurious_recovery_and_raises_dupthresh():
    h, s, c = est(sack=True, sndbuf=100000)
    s.send(b"x" * 30000, 1.0)  # more than cwnd: recovery has new data (no rescue)
    h.take()
    for hi in (2000, 3000, 5000):  # segment 0 only reordered, but it looks lost
        ack(h, c, 1.1, 0, options=sack_opts(c, (1000, hi)))
    out = h.out(1.1)
    assert c.iss + 1 in [o.seq for o in out] and c.snd.in_recovery
    before = c.snd.undo[0]
    assert c.snd.cc.cwnd < before
    # the original arrives, then our retransmission: the peer reports it with a D-SACK
    ack(h, c, 1.12, 5000)
    ack(h, c, 1.13, 5000, options=sack_opts(c, (0, 1000)))
    assert c.snd.retransmits == 1
    assert c.snd.cc.cwnd >= before
    assert c.snd.dupthresh == 4
    assert h.stack.counters.get("tcp.spurious_recovery_undone") == 1


def test_dupthresh_capped():
    h, s, c = est(sack=True, sndbuf=100000, max_dupthresh=5)
    s.send(b"x" * 3000, 1.0)
    h.take()
    h.out(1.0 + c.snd.rto)  # one retransmission, so D-SACKs are believable
    for i in range(10):
        ack(h, c, 1.5 + i * 0.001, 1000, options=sack_opts(c, (0, 1000)))
    assert c.snd.dupthresh == 5


def test_sack_rescue_retransmission_of_the_tail_once_per_recovery():
    h, s, c = est(sack=True, sndbuf=100000, congestion_control="newreno")
    s.send(b"x" * 10000, 1.0)  # all of it: no new data to send during recovery
    h.take()
    # 0 and 9 missing; 1..8 SACKed (9 might be in flight or lost: IsLost cannot tell)
    for hi in (2000, 3000, 9000):
        ack(h, c, 1.1, 0, options=sack_opts(c, (1000, hi)))
    sent = [o.seq - c.iss - 1 for o in h.out(1.1)]
    assert sent == [0, 9000]  # hole 0, then the rescue retransmission of the tail
    assert h.stack.counters.get("tcp.rescue_retransmit") == 1
    ack(h, c, 1.12, 0, options=sack_opts(c, (1000, 9000)))
    assert h.out(1.12) == []  # only once per recovery


# ---- retransmitted-segment counters --------------------------------------------------------------
def rexmit_counts(h):
    cnt = h.stack.counters
    return cnt.get("tcp.retransmitted_segments"), cnt.get("tcp.retransmitted_bytes")


def test_rto_retransmission_counts_one_segment_and_its_bytes():
    h, s, c = est()
    s.send(b"x" * 100, 1.0)
    h.take()
    h.expect_nothing(1.0 + c.snd.rto - 0.001)
    assert rexmit_counts(h) == (0, 0)  # first transmissions are not counted
    h.expect_out(1.0 + c.snd.rto, [dict(seq=c.iss + 1, len=100)])
    assert rexmit_counts(h) == (1, 100)
    assert h.stack.counters.get("tcp.rto") == 1


def test_sack_fast_retransmit_counts_the_one_lost_segment():
    h, s, c = est(sack=True, sndbuf=100000)
    s.send(b"x" * 5000, 1.0)
    assert len(h.out(1.0)) == 5
    for hi in (2000, 3000, 5000):  # segment 1 lost; 2..5 SACKed
        ack(h, c, 1.1, 0, options=sack_opts(c, (1000, hi)))
    out = h.out(1.1)
    assert [(o.seq, len(o.payload)) for o in out] == [(c.iss + 1, MSS)]
    assert h.stack.counters.get("tcp.fast_retransmit") == 1
    assert rexmit_counts(h) == (1, MSS)
    ack(h, c, 1.11, 5000)  # the retransmission repaired it: nothing more is resent
    assert h.out(5.0) == [] and rexmit_counts(h) == (1, MSS)


def test_newreno_fast_retransmit_counts_one_segment():
    h, s, c = est(congestion_control="newreno", sndbuf=100000)
    s.send(b"x" * 8000, 1.0)
    h.take()
    for _ in range(3):
        ack(h, c, 1.1, 0)
    h.expect_out(1.1, [dict(seq=c.iss + 1, len=MSS)])
    assert rexmit_counts(h) == (1, MSS)


def test_syn_and_fin_retransmissions_count_as_segments_without_bytes():
    # like Linux's RetransSegs: every segment re-sending sequence space, SYN and FIN included
    h = Harness()
    s, syn = h.connect()
    h.expect_out(s.syn_rto_s, [dict(flags="S", seq=syn.seq)])
    assert rexmit_counts(h) == (1, 0)
    h2, s2, c2 = est()
    s2.shutdown(1, 1.0)
    h2.expect_out(1.0, [dict(flags="F.")])
    h2.expect_out(1.0 + c2.snd.rto, [dict(flags="F.", seq=c2.iss + 1)])
    assert rexmit_counts(h2) == (1, 0)


def test_keepalive_and_zero_window_probes_are_not_retransmissions():
    h, s, c = est()
    s.keepalive_idle_s = 10.0
    s.keepalive = True
    h.expect_out(10.0, [dict(flags=".", seq=c.iss, len=0)])
    ack(h, c, 10.5, 0, window=0)
    s.send(b"y" * 10, 10.5)
    assert h.out(10.5) == []
    h.out(30.0)
    assert h.stack.counters.get("tcp.zero_window_probe") >= 1
    assert rexmit_counts(h) == (0, 0)
