"""Audit of issue 4 (TCP): focused tests for requirements the other unit tests covered weakly or
not at all (docs/tcp-checklist.md maps each requirement to its tests)."""

from __future__ import annotations

import random

import pytest
from tcphelpers import LOCAL, PEER_ISS, REMOTE, RPORT, Harness, seg

from ustack.core import events as ev
from ustack.core.errors import UsageError
from ustack.core.ports import PortTable
from ustack.core.reasons import Reason
from ustack.tcp import State
from ustack.wire.ipv4 import Ipv4Packet
from ustack.wire.tcp import TcpOptions

MSS = 1000


def est(**kw):
    h = Harness(**kw)
    s, c = h.established(options=TcpOptions(mss=MSS, sack_perm=kw.get("sack", False)))
    return h, s, c


def ack(h, c, at, n, **kw):
    h.peer_sends(at, h.pseg(".", PEER_ISS + 1, c.iss + 1 + n, **kw))


# ---- all eleven states ---------------------------------------------------------------------------
def test_every_one_of_the_eleven_states_is_entered():
    """Active close, passive close, simultaneous close and LISTEN together visit all 11 states."""
    seen: set[str] = set()
    for scenario in ("active", "passive", "simultaneous"):
        h = Harness(msl_s=0.5)
        h.layer.on_trace = lambda kind, now, **f: seen.add(f["new"]) if kind == "state" else None
        if scenario == "passive":
            lst, s, c = h.accepted(options=TcpOptions(mss=MSS))
            seen.add(str(lst.state))
            h.peer_sends(1.0, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
            assert c.state is State.CLOSE_WAIT
            h.out(1.0)
            s.close(1.1)
            assert c.state is State.LAST_ACK
            h.out(1.1)
            h.peer_sends(1.2, h.pseg(".", PEER_ISS + 2, c.iss + 2))
        else:
            s, c = h.established(options=TcpOptions(mss=MSS))
            s.shutdown(1, 1.0)
            h.out(1.0)
            if scenario == "active":
                h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 2))
                assert c.state is State.FIN_WAIT_2
                h.peer_sends(1.2, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
            else:
                h.peer_sends(1.1, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
                assert c.state is State.CLOSING
                h.peer_sends(1.2, h.pseg(".", PEER_ISS + 2, c.iss + 2))
            assert c.state is State.TIME_WAIT
        h.out(3.0)
        assert c.state is State.CLOSED
    assert seen | {"LISTEN"} >= {st.value for st in State}, {st.value for st in State} - seen


# ---- listener ------------------------------------------------------------------------------------
def test_closing_a_listener_resets_half_open_and_unaccepted_connections():
    h = Harness()
    lst = h.listen(backlog=5)
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=5000))
    sa1 = h.take()[0]
    h.peer_sends(0.0, seg(".", PEER_ISS + 1, sa1.seq + 1, sport=5000))  # completed, not accepted
    h.peer_sends(0.0, seg("S", 7000, 0, sport=5001))  # half-open (SYN-RECEIVED)
    sa2 = h.take()[0]
    assert lst.accept_pending == 1
    lst.close(0.1)
    rsts = sorted(h.out(0.1), key=lambda x: x.dport)
    assert [(r.flags & 0x04 != 0, r.dport) for r in rsts] == [(True, 5000), (True, 5001)]
    assert rsts[0].seq == sa1.seq + 1 and rsts[1].seq == sa2.seq + 1
    assert not h.layer.conns
    # the port is free and nothing answers any more but RSTs for a closed port
    h.peer_sends(0.2, seg(".", PEER_ISS + 1, sa1.seq + 1, sport=5000))
    h.expect_out(0.2, [dict(flags="R", seq=sa1.seq + 1)])


def test_backlog_counts_established_not_half_open_connections():
    """The Windows rule (RST to a SYN) applies to a full accept queue; half-open connections have
    their own budget (issue 10: spoofed SYNs must not make the listener refuse real clients)."""
    h = Harness()
    lst = h.listen(backlog=2)
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=5000))
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=5001))
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=5002))
    synacks = h.take()
    assert [s.flags for s in synacks] == [0x12, 0x12, 0x12]
    for sa in synacks[:2]:
        h.peer_sends(0.0, seg(".", PEER_ISS + 1, sa.seq + 1, sport=sa.dport))
    assert lst.accept_pending == 2
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=5003))
    h.expect_out(0.0, [dict(flags="R.", dport=5003, ack=PEER_ISS + 1)])
    # the third completes into a full queue: reset (its client saw the SYN-ACK)
    h.peer_sends(0.0, seg(".", PEER_ISS + 1, synacks[2].seq + 1, sport=5002))
    h.expect_out(0.0, [dict(flags="R.", dport=5002)])
    assert h.stack.counters.get("tcp.accept_queue_full") == 1


# ---- ephemeral ports (RFC 6056) ------------------------------------------------------------------
def small_range(h, n=8):
    h.stack.tcp_ports = PortTable(random.Random(5), low=60000, high=60000 + n - 1)


def test_ephemeral_ports_unique_until_the_range_is_exhausted():
    h = Harness()
    small_range(h)
    ports = []
    for _ in range(8):
        s = h.socket()
        s.connect(REMOTE, RPORT, 0.0)
        ports.append(s.local[1])
    assert sorted(ports) == list(range(60000, 60008))
    with pytest.raises(UsageError) as e:
        h.socket().connect(REMOTE, RPORT, 0.0)
    assert e.value.reason is Reason.ADDR_IN_USE
    # another destination may reuse the ports: uniqueness is per 4-tuple
    other = h.socket()
    other.connect(REMOTE, RPORT + 1, 0.0)
    assert 60000 <= other.local[1] <= 60007


def test_ephemeral_port_not_reused_while_a_real_time_wait_lingers():
    h = Harness(msl_s=10.0)
    small_range(h, n=2)
    s, c = h.established(options=TcpOptions(mss=MSS))
    port = s.local[1]
    s.close(1.0)  # active close down to TIME-WAIT; the socket handle is gone
    h.out(1.0)
    h.peer_sends(1.1, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
    assert c.state is State.TIME_WAIT
    h.out(1.1)
    t = h.socket()
    t.connect(REMOTE, RPORT, 1.2)
    assert t.local[1] != port
    with pytest.raises(UsageError):  # the only other port is the TIME-WAIT one
        h.socket().connect(REMOTE, RPORT, 1.2)
    h.out(21.2)  # 2*MSL later the TIME-WAIT entry is gone and the port usable again
    assert c.state is State.CLOSED
    u = h.socket()
    u.connect(REMOTE, RPORT, 21.3)
    assert u.local[1] == port


def test_ephemeral_port_sequence_depends_on_the_destination():
    """RFC 6056 algorithm 3: the offset is a keyed hash of (laddr, raddr, rport)."""
    a = PortTable(random.Random(9))
    b = PortTable(random.Random(9))
    pa = [a.connect_port(LOCAL, REMOTE, 80) for _ in range(3)]
    pb = [b.connect_port(LOCAL, REMOTE, 81) for _ in range(3)]
    assert pa[1] == pa[0] + 1 and pb[1] == pb[0] + 1  # one counter, consecutive tries
    assert pa[0] != pb[0]  # different 3-tuple, different offset
    c = PortTable(random.Random(10))
    assert c.connect_port(LOCAL, REMOTE, 80) != pa[0]  # another secret, another port


def test_explicit_bind_port_used_by_connect():
    h = Harness()
    s = h.socket()
    s.bind(0, 12345)
    s.connect(REMOTE, RPORT, 0.0)
    assert s.local == (LOCAL, 12345)
    assert h.take()[0].sport == 12345


# ---- ISN (RFC 6528) ------------------------------------------------------------------------------
def test_isn_through_the_layer_advances_with_a_4us_clock_and_depends_on_the_4tuple():
    h = Harness()
    a = h.socket()
    a.bind(0, 40000)
    a.connect(REMOTE, RPORT, 0.0)
    isn_a = h.take()[0].seq
    a.close(0.0)  # SYN-SENT: gone at once, the 4-tuple is free again
    h.advance(1.0)
    b = h.socket()
    b.bind(0, 40000)
    b.connect(REMOTE, RPORT, 1.0)
    isn_b = h.take()[0].seq
    assert (isn_b - isn_a) & 0xFFFFFFFF == 250_000  # same 4-tuple: one tick per 4 microseconds
    c = h.socket()
    c.bind(0, 40001)
    c.connect(REMOTE, RPORT, 1.0)
    isn_c = h.take()[0].seq
    # a different 4-tuple at the same time: a different, unpredictable offset (not clock + k)
    assert abs(((isn_c - isn_b + 2**31) & 0xFFFFFFFF) - 2**31) > 1000
    # the secret comes from the stack's rng: another seed, another ISN for the same tuple and time
    h2 = Harness(seed=2)
    d = h2.socket()
    d.bind(0, 40000)
    h2.advance(1.0)
    d.connect(REMOTE, RPORT, 1.0)
    assert h2.take()[0].seq != isn_b


def test_passive_open_isn_also_keyed_and_clocked():
    h = Harness()
    h.listen()
    h.peer_sends(2.0, seg("S", PEER_ISS, 0, sport=5000))
    sa = h.take()[0]
    assert sa.seq == h.layer.isn.isn(LOCAL, 80, REMOTE, 5000, 2.0)


# ---- RFC 5961 --------------------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["CLOSE_WAIT", "FIN_WAIT_2"])
def test_syn_in_other_synchronized_states_gets_challenge_ack(state):
    h, s, c = est()
    rcv = PEER_ISS + 1
    if state == "CLOSE_WAIT":
        h.peer_sends(0.1, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
        rcv += 1
    else:
        s.shutdown(1, 0.1)
        h.out(0.1)
        h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 2))
    h.out(0.1)
    assert c.state.name == state
    h.peer_sends(0.2, h.pseg("S", rcv + 5, 0))
    got = h.expect_out(0.2, [dict(flags=".", ack=rcv)])
    assert got[0].seq == c.snd.snd_nxt
    assert c.state.name == state and h.stack.counters.get("tcp.challenge_ack") == 1


def test_rst_at_rcv_nxt_plus_one_is_challenged_not_accepted():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg("R.", PEER_ISS + 2, c.iss + 1))
    h.expect_out(0.1, [dict(flags=".", ack=PEER_ISS + 1)])
    assert s.error is None and c.state is State.ESTABLISHED
    h.peer_sends(0.2, h.pseg("R.", PEER_ISS + 1, c.iss + 1))  # the exact one resets
    assert s.error is Reason.RESET


def test_challenge_ack_limit_is_per_connection_and_resets_each_second():
    """Each connection has its own budget (issue 10: a host-wide one is the CVE-2016-5696 side
    channel); limit 2 gives 1 or 2 a second."""
    h = Harness(challenge_ack_limit=2)
    s1, c1 = h.established(options=TcpOptions(mss=MSS))
    p1 = h.lport
    s2 = h.socket()
    s2.connect(REMOTE, RPORT + 1, h.now)
    syn2 = h.take()[0]
    h.peer_sends(h.now, seg("S.", PEER_ISS, syn2.seq + 1, sport=RPORT + 1, dport=syn2.sport))
    h.take()
    for i in range(5):
        h.peer_sends(0.5, seg("R", PEER_ISS + 9 + i, 0, dport=p1))
    n1 = len(h.out(0.5))
    for i in range(5):
        h.peer_sends(0.5, seg("R", PEER_ISS + 9 + i, 0, sport=RPORT + 1, dport=syn2.sport))
    n2 = len(h.out(0.5))
    assert 1 <= n1 <= 2 and 1 <= n2 <= 2  # the first connection's did not use up the second's
    assert h.stack.counters.get("tcp.challenge_ack_suppressed") == 10 - n1 - n2
    h.peer_sends(1.6, seg("R", PEER_ISS + 9, 0, dport=p1))
    assert len(h.out(1.6)) == 1


# ---- retransmission timing -------------------------------------------------------------------------
def test_passive_data_rto_is_three_seconds_after_the_synack_timed_out():
    """RFC 6298 5.7, passive side: the SYN-ACK was retransmitted, so there is no RTT sample and
    the first data RTO must be 3 s, not the 1 s of RFC 6298 2.1."""
    h = Harness()
    lst = h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, options=TcpOptions(mss=MSS)))
    sa = h.take()[0]
    # the handshake completes after the SYN-ACK was retransmitted: Karn, no sample
    h.out(3.0)
    h.peer_sends(3.5, seg(".", PEER_ISS + 1, sa.seq + 1))
    s = lst.accept()
    c = s.conn
    assert c.snd.srtt is None
    s.send(b"x" * 100, 4.0)
    h.take()
    assert c.timers.rto_at == pytest.approx(4.0 + 3.0)  # RFC 6298 5.7: 3 s after a SYN timeout


def test_data_rto_is_three_seconds_after_the_syn_timed_out():
    """RFC 6298 5.7: when the SYN (or SYN-ACK) timed out and the RTO in use is below 3 s, the
    RTO must be re-initialised to 3 s when data transmission begins."""
    h = Harness()
    s, syn = h.connect()
    h.out(3.0)  # the SYN is retransmitted
    h.peer_sends(3.1, seg("S.", PEER_ISS, syn.seq + 1, sport=RPORT, dport=syn.sport,
                          options=TcpOptions(mss=MSS)))
    h.take()
    c = s.conn
    s.send(b"x" * 100, 4.0)
    h.take()
    assert c.timers.rto_at == pytest.approx(4.0 + 3.0)


def test_rto_backoff_doubles_and_is_capped_at_rto_max():
    h, s, c = est(data_retries=15, rto_max_s=60.0)
    rto0 = c.snd.rto
    assert rto0 == 0.2  # the handshake sampled ~0 s: RTO clamped to rto_min_s (RFC 6298 2.4)
    s.send(b"x" * 100, 1.0)
    h.take()
    t = 1.0
    gaps = []
    for _ in range(12):
        nxt = c.timers.rto_at
        gaps.append(round(nxt - t, 6))
        t = nxt
        assert len(h.out(t)) == 1
    assert gaps == [min(rto0 * 2 ** k, 60.0) for k in range(12)]
    assert gaps[-3:] == [60.0, 60.0, 60.0]


def test_default_data_retries_five_then_rst_and_timed_out():
    h, s, c = est()
    assert s.data_retries == 5
    rto = c.snd.rto
    s.send(b"x" * 100, 1.0)
    h.take()
    t = 1.0
    for k in range(5):
        t += rto * 2 ** k
        h.expect_out(t, [dict(len=100)])
    assert s.error is None
    h.expect_nothing(t + 32 * rto - 0.001)
    h.expect_out(t + 32 * rto, [dict(flags="R.")])
    assert s.error is Reason.TIMED_OUT and c.state is State.CLOSED
    with pytest.raises(UsageError) as e:
        s.send(b"y", t + 33)
    assert e.value.reason is Reason.TIMED_OUT


def test_synack_retransmitted_then_half_open_connection_dropped():
    h = Harness()
    lst = h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0))
    sa = h.take()[0]
    h.expect_out(3.0, [dict(flags="S.", seq=sa.seq)])
    h.expect_out(9.0, [dict(flags="S.", seq=sa.seq)])
    h.expect_nothing(21.0)
    assert not h.layer.conns and lst.accept() is None


# ---- zero-window probing ---------------------------------------------------------------------------
def test_zero_window_probes_answered_with_zero_window_never_abort():
    """RFC 9293 3.8.6.1: a receiver that keeps answering the probes keeps the connection open
    indefinitely, whatever data_retries says."""
    h, s, c = est()
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=0))
    s.send(b"hello", 1.0)
    t = 1.0
    probes = 0
    for _ in range(40):
        t = c.timers.persist_at
        assert t is not None, f"no persist timer after {probes} probes (state {c.state})"
        out = h.out(t)
        assert [o.seq for o in out] == [c.iss], out
        probes += 1
        h.peer_sends(t + 0.01, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=0))
    assert s.error is None and c.state is State.ESTABLISHED
    h.peer_sends(t + 0.02, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=1000))
    h.expect_out(t + 0.02, [dict(payload=b"hello")])


def test_zero_window_probes_unanswered_eventually_time_out():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=0))
    s.send(b"hello", 1.0)
    h.out(100_000.0)
    assert s.error is Reason.TIMED_OUT and c.state is State.CLOSED


# ---- congestion control, both algorithms -----------------------------------------------------------
@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_fast_retransmit_on_third_dupack_not_second(cc):
    h, s, c = est(congestion_control=cc, sndbuf=100000)
    s.nodelay = True
    assert c.snd.cc.name == cc
    assert c.snd.cc.cwnd == 10 * MSS  # RFC 6928 IW10
    s.send(b"x" * 10_000, 1.0)
    assert len(h.out(1.0)) == 10
    ack(h, c, 1.1, 0)
    ack(h, c, 1.1, 0)
    h.expect_nothing(1.1)
    assert not c.snd.in_recovery
    ack(h, c, 1.1, 0)
    out = h.out(1.1)
    assert out and out[0].seq == c.iss + 1 and len(out[0].payload) == MSS
    assert c.snd.in_recovery
    beta = 0.5 if cc == "newreno" else 0.7
    assert c.snd.cc.ssthresh == pytest.approx(beta * 10 * MSS, abs=MSS)


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_slow_start_doubles_per_round_trip(cc):
    """Slow start doubles cwnd every round trip however the receiver spaces its ACKs: counted
    in acknowledged bytes (RFC 3465), a stretch ACK for a whole window (our receiver's one ACK
    per batch, a GRO receiver's) grows it as much as one ACK per segment does (Linux)."""
    h, s, c = est(congestion_control=cc, sndbuf=1 << 20)
    s.nodelay = True
    s.send(b"x" * 400_000, 1.0)
    assert len(h.out(1.0)) == 10
    sent = 0
    for i in range(1, 11):  # round 1: an ACK per segment
        ack(h, c, 1.1, i * MSS)
        sent += len(h.out(1.1))
    assert sent == 20 and c.snd.cc.cwnd == 20 * MSS
    ack(h, c, 1.2, 30 * MSS)  # round 2: one stretch ACK for all 20 segments
    assert c.snd.cc.cwnd == 40 * MSS and len(h.out(1.2)) == 40
    for i in range(1, 21):  # round 3: an ACK every second segment (delayed ACKs)
        ack(h, c, 1.3, 30 * MSS + 2 * i * MSS)
    assert c.snd.cc.cwnd == 80 * MSS  # (the peer's 64 KB window, not cwnd, now limits sending)


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_slow_start_byte_counting_limit_l(cc):
    """abc_limit_segments = 2 is RFC 3465's L = 2*SMSS: delayed ACKs still double cwnd per round
    trip, a stretch ACK grows it by two segments only; slow start never overshoots ssthresh."""
    h, s, c = est(congestion_control=cc, sndbuf=1 << 20, abc_limit_segments=2)
    s.nodelay = True
    s.send(b"x" * 200_000, 1.0)
    assert len(h.out(1.0)) == 10
    for i in range(1, 6):
        ack(h, c, 1.1, 2 * i * MSS)
    assert c.snd.cc.cwnd == 20 * MSS
    h.out(1.1)
    ack(h, c, 1.2, 30 * MSS)
    assert c.snd.cc.cwnd == 22 * MSS
    c.snd.cc.ssthresh = 23 * MSS
    h.out(1.2)
    ack(h, c, 1.3, 32 * MSS)
    assert c.snd.cc.cwnd >= 23 * MSS and not c.snd.cc.in_slow_start()
    assert c.snd.cc.cwnd < 24 * MSS  # the rest of the ACK went to congestion avoidance


def test_unknown_congestion_control_is_rejected_by_the_config():
    """A typo must fail where it is made, not as an internal error at the first handshake."""
    from ustack.tcp import TcpConfig

    with pytest.raises(ValueError, match="vegas"):
        TcpConfig(congestion_control="vegas")
    assert TcpConfig(congestion_control="newreno").congestion_control == "newreno"


# ---- ICMP ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [Reason.NET_UNREACH, Reason.HOST_UNREACH])
def test_icmp_unreachable_during_connect_reports_and_fires_connect_event(kind):
    h = Harness()
    s, syn = h.connect()
    quoted = Ipv4Packet(LOCAL, REMOTE, 6, b"")
    h.layer.on_icmp_error(kind, quoted, syn.emit(LOCAL, REMOTE)[:8], 0, 0.5)
    assert s.error is kind and s.state is State.CLOSED
    assert h.events[-1] & ev.CONNECT and h.events[-1] & ev.ERROR
    h.expect_nothing(30.0)  # no more SYNs
    s.connect(REMOTE, RPORT, 30.0)  # the socket may connect again
    assert h.take()[0].flags == 0x02


# ---- the header-prediction fast path (TcpLayer.on_packet with NOP NOP TS) ---------------------------
def ts_est():
    h = Harness(timestamps=True, quickack_segments=0)
    s, c = h.established(options=TcpOptions(mss=MSS, ts=(5000, 0)))
    return h, s, c


def ts_data(h, c, off, n, tsval, ack_off=0):
    return h.pseg(".", PEER_ISS + 1 + off, c.iss + 1 + ack_off, payload=b"d" * n,
                  options=TcpOptions(ts=(tsval, 0)))


def test_fast_path_segment_with_bad_checksum_is_dropped_and_counted():
    h, s, c = ts_est()
    raw = bytearray(ts_data(h, c, 0, 100, 5001).emit(REMOTE, LOCAL))
    raw[-1] ^= 0xFF  # payload corrupted, checksum stale
    h.layer.on_packet(Ipv4Packet(REMOTE, LOCAL, 6, memoryview(bytes(raw))), 1.0)
    assert s.readable_bytes == 0 and c.rcv.rcv_nxt == PEER_ISS + 1
    assert h.stack.counters.get("tcp.bad_checksum") == 1
    h.expect_nothing(1.1)


def test_fast_path_delayed_ack_and_ack_every_second_full_segment():
    h, s, c = ts_est()
    full = c.rcv.mss  # our MSS minus the timestamp option
    h.peer_sends(1.0, ts_data(h, c, 0, 100, 5001))
    h.expect_nothing(1.039)
    h.expect_out(1.040, [dict(flags=".", ack=PEER_ISS + 101)])
    h.peer_sends(2.0, ts_data(h, c, 100, full, 5002))
    h.peer_sends(2.0, ts_data(h, c, 100 + full, full, 5003))
    h.expect_out(2.0, [dict(flags=".", ack=PEER_ISS + 101 + 2 * full)])
    assert s.recv(1 << 20) == b"d" * (100 + 2 * full)
    # RFC 7323 4.3: a delayed ACK echoes the oldest unacknowledged segment's TSval
    assert c.ts_recent == 5002


def test_fast_path_paws_drops_a_much_older_timestamp():
    h, s, c = ts_est()
    h.peer_sends(1.0, ts_data(h, c, 0, 100, 900_000))
    h.out(1.1)
    h.peer_sends(1.2, ts_data(h, c, 100, 100, 900_000 - 500_000))  # 500 s older: an old duplicate
    h.expect_out(1.2, [dict(flags=".", ack=PEER_ISS + 101)])
    assert s.readable_bytes == 100 and h.stack.counters.get("tcp.paws_drop") == 1


# ---- every failure maps to a Winsock error -----------------------------------------------------------
def test_every_tcp_failure_reason_maps_to_its_winsock_error():
    from ustack.winsock import constants as C
    from ustack.winsock import errors as E

    expected = {
        Reason.REFUSED: C.WSAECONNREFUSED, Reason.RESET: C.WSAECONNRESET,
        Reason.ABORTED: C.WSAECONNABORTED, Reason.TIMED_OUT: C.WSAETIMEDOUT,
        Reason.NET_UNREACH: C.WSAENETUNREACH, Reason.HOST_UNREACH: C.WSAEHOSTUNREACH,
    }
    assert {r: E.wsa_code(r) for r in expected} == expected


def test_rtt_sample_does_not_span_an_rto_backoff_with_timestamps():
    """Bug B4. After lost ACKs and several RTO retransmissions, the ACK that finally arrives echoes
    the TSval of the ORIGINAL transmission (duplicates do not update the peer's TS.Recent, RFC 7323
    4.3): a sample spanning the whole backoff (SRTT 5-8 s, RTO 60 s seen at 20 % loss). Karn's
    spirit / Eifel (RFC 3522): a TSecr older than our latest retransmission gives no sample; the
    backoff stays until a valid one (RFC 6298, bug B7), which the next echo of a fresh TSval is."""
    h, s, c = ts_est()
    rto0 = c.snd.rto
    srtt0 = c.snd.srtt
    s.send(b"x" * 100, 1.0)
    first = h.out(1.0)[0]
    t = 1.0
    for _ in range(4):  # the peer got the data, but every ACK is lost: we retransmit with backoff
        t = c.timers.rto_at
        h.out(t)
    assert c.snd.backoff == 4
    # the peer's ACK (answering a duplicate) echoes the original segment's TSval
    h.peer_sends(t + 0.01, h.pseg(".", PEER_ISS + 1, c.iss + 101,
                                  options=TcpOptions(ts=(5010, first.options.ts[0]))))
    assert c.snd.snd_una == c.iss + 101
    assert c.snd.srtt == srtt0 and c.snd.backoff == 4  # no sample spanning the backoff
    # new data, and its ACK echoes that segment's TSval: a genuine sample collapses the RTO
    s.send(b"y" * 100, t + 0.02)
    seg = h.out(t + 0.02)[0]
    h.peer_sends(t + 0.03, h.pseg(".", PEER_ISS + 1, c.iss + 201,
                                  options=TcpOptions(ts=(5011, seg.options.ts[0]))))
    assert c.snd.backoff == 0 and c.snd.srtt < max(srtt0 or 0, 0.05)
    assert c.snd.rto < 4 * max(rto0, 0.2)


def test_rtt_sample_kept_when_the_ack_echoes_the_retransmission_tsval():
    """The other half of B4: an ACK whose TSecr echoes the retransmission's own TSval is an
    unambiguous measurement of that retransmission and is used (it also ends the backoff)."""
    h, s, c = ts_est()
    s.send(b"x" * 100, 1.0)
    h.out(1.0)
    t = c.timers.rto_at
    rx = h.out(t)[0]
    assert c.snd.backoff == 1
    srtt0 = c.snd.srtt
    h.peer_sends(t + 0.01, h.pseg(".", PEER_ISS + 1, c.iss + 101,
                                  options=TcpOptions(ts=(5010, rx.options.ts[0]))))
    # a 10 ms sample was taken (RFC 6298 2.3 smoothing), not the span since the original send
    assert c.snd.backoff == 0 and c.snd.srtt == pytest.approx(0.875 * srtt0 + 0.125 * 0.01, abs=2e-4)


# ---- two stacks, every option combination, both directions, loss + reordering + duplication ----------
def _two_stack_exchange(seed: int, size: int, **cfg) -> None:
    from test_tcp_stacks import Wire

    from ustack.tcp import TcpConfig

    class DupWire(Wire):
        def _carry(self, src, dst) -> None:
            for f in src.poll(self.now):
                if self.rng.random() < self.loss:
                    self.dropped += 1
                    continue
                for _ in range(2 if self.rng.random() < 0.02 else 1):
                    d = self.delay + (self.rng.random() * 0.01 if self.rng.random() < self.reorder else 0)
                    self.n += 1
                    self.inflight.append((self.now + d, self.n, dst, f))

    w = DupWire(seed, loss=0.08, reorder=0.2, delay=0.002, tcp=TcpConfig(data_retries=15, **cfg))
    cli, srv = w.connect_pair()
    up = random.Random(seed).randbytes(size)
    down = random.Random(seed + 1).randbytes(size // 2)
    got_up, got_down = bytearray(), bytearray()
    sent_up = sent_down = 0
    while len(got_up) < len(up) or len(got_down) < len(down):
        if sent_up < len(up):
            sent_up += cli.send(up[sent_up:sent_up + 65536], w.now)
            if sent_up == len(up):
                cli.shutdown(1, w.now)
        if sent_down < len(down):
            sent_down += srv.send(down[sent_down:sent_down + 65536], w.now)
            if sent_down == len(down):
                srv.shutdown(1, w.now)
        got_up += srv.recv(1 << 20)
        got_down += cli.recv(1 << 20)
        assert cli.error is None and srv.error is None, (cli.error, srv.error)
        if len(got_up) < len(up) or len(got_down) < len(down):
            assert w.step(), "stalled"
        assert w.now < 600, f"too slow: {len(got_up)}/{len(up)} {len(got_down)}/{len(down)}"
    assert bytes(got_up) == up and bytes(got_down) == down  # every byte once, in order
    w.run_until(lambda: srv.at_eof and cli.at_eof)
    cli.close(w.now)
    srv.close(w.now)
    w.run_until(lambda: not w.a.tcp.conns and not w.b.tcp.conns)  # nothing left behind
    assert w.dropped > 0 and w.a.counters.get("tcp.retransmitted_segments") > 0


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
@pytest.mark.parametrize("sack", [True, False])
@pytest.mark.parametrize("timestamps", [True, False])
@pytest.mark.parametrize("window_scaling", [True, False])
def test_two_stacks_bidirectional_under_loss_reordering_duplication(cc, sack, timestamps, window_scaling):
    _two_stack_exchange(7, 120_000, congestion_control=cc, sack=sack, timestamps=timestamps,
                        window_scaling=window_scaling, msl_s=1.0)


# ---- CLOSE in SYN-RECEIVED (RFC 9293 3.10.4: the FIN is queued until ESTABLISHED) -----------------
def test_close_during_simultaneous_open_sends_fin_once_the_handshake_completes():
    h = Harness(msl_s=1.0)
    s, syn = h.connect()
    h.peer_sends(0.01, seg("S", PEER_ISS, 0, dport=syn.sport, options=TcpOptions(mss=MSS)))
    h.expect_out(0.01, [dict(flags="S.", seq=syn.seq)])
    c = s.conn
    assert c.state is State.SYN_RCVD
    s.close(0.02)  # the application gives up on the socket before the handshake completed
    h.expect_nothing(0.02)
    h.peer_sends(0.03, seg("S.", PEER_ISS, syn.seq + 1, dport=syn.sport, options=TcpOptions(mss=MSS)))
    h.expect_out(0.03, [dict(flags="F.", seq=syn.seq + 1, ack=PEER_ISS + 1)])
    assert c.state is State.FIN_WAIT_1
    h.peer_sends(0.04, seg("F.", PEER_ISS + 1, syn.seq + 2, dport=syn.sport))
    h.expect_out(0.04, [dict(flags=".", ack=PEER_ISS + 2)])
    assert c.state is State.TIME_WAIT
    h.expect_nothing(3.0)
    assert c.state is State.CLOSED and not h.layer.conns
    assert h.stack.counters.get("tcp.internal_error") == 0


# ---- every user call in every state, then a silent peer: no internal error, nothing left behind ---
def _drive_to(name: str, h: Harness):
    if name == "SYN_SENT":
        s, _ = h.connect()
        return s, s.conn
    if name == "SYN_RCVD":
        s, syn = h.connect()
        h.peer_sends(h.now, seg("S", PEER_ISS, 0, dport=syn.sport, options=TcpOptions(mss=MSS)))
        h.take()
        return s, s.conn
    s, c = h.established(options=TcpOptions(mss=MSS))
    if name in ("FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "TIME_WAIT"):
        s.shutdown(1, h.now)
        h.take()
        if name == "CLOSING":
            h.peer_sends(h.now, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
        elif name != "FIN_WAIT_1":
            h.peer_sends(h.now, h.pseg(".", PEER_ISS + 1, c.iss + 2))
            if name == "TIME_WAIT":
                h.peer_sends(h.now, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
    elif name in ("CLOSE_WAIT", "LAST_ACK"):
        h.peer_sends(h.now, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
        if name == "LAST_ACK":
            s.shutdown(1, h.now)
    h.take()
    return s, c


_OPS = ("send", "recv", "shutdown0", "shutdown1", "shutdown2", "close", "abort", "linger0",
        "nodelay", "keepalive", "rcvbuf", "sndbuf")


def _apply(op: str, s, now: float) -> None:
    try:
        if op == "send":
            s.send(b"x" * 3000, now)
        elif op == "recv":
            s.recv(100)
        elif op.startswith("shutdown"):
            s.shutdown(int(op[-1]), now)
        elif op == "close":
            s.close(now)
        elif op == "abort":
            s.abort(now)
        elif op == "linger0":
            s.linger = 0
            s.close(now)
        elif op == "nodelay":
            s.nodelay = True
        elif op == "keepalive":
            s.keepalive_idle_s = 1.0
            s.keepalive = True
        elif op == "rcvbuf":
            s.rcvbuf = 100
        elif op == "sndbuf":
            s.sndbuf = 10
    except UsageError:
        pass  # misuse in this state: raising is the contract


@pytest.mark.parametrize("state", ["SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                   "CLOSING", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK"])
def test_any_two_user_calls_in_any_state_wind_down_cleanly(state):
    for op1 in _OPS:
        for op2 in (*_OPS, None):
            h = Harness(msl_s=1.0)
            s, c = _drive_to(state, h)
            assert c.state.name == state
            _apply(op1, s, h.now)
            if op2:
                _apply(op2, s, h.now)
            h.out(h.now + 10_000)  # the peer is silent from now on
            assert h.stack.counters.get("tcp.internal_error") == 0, (state, op1, op2)
            if s.closed:
                assert not h.layer.conns, (state, op1, op2, [x.state for x in h.layer.conns.values()])


def test_random_user_calls_on_both_ends_of_two_stacks_never_break_them():
    """150 seeded runs: random sends, reads, shutdowns, closes, aborts, option changes and listener
    closes on both ends of a lossy, reordering link; then everyone closes. No internal error,
    and after the dust settles neither stack holds a connection."""
    from test_tcp_stacks import B, Wire

    from ustack.tcp import TcpConfig

    ops = ("send", "send_big", "recv", "shutdown0", "shutdown1", "shutdown2", "close", "abort",
           "linger0", "nodelay", "keepalive", "rcvbuf", None, None, None)
    accepted = 0
    for i in range(150):
        rng = random.Random(i)
        tcp = TcpConfig(msl_s=0.5, sack=rng.random() < .5, timestamps=rng.random() < .5,
                        congestion_control=rng.choice(["cubic", "newreno"]),
                        rcvbuf=rng.choice([2000, 65535, 1 << 20]), keepalive_idle_s=0.5,
                        keepalive_interval_s=0.1)
        w = Wire(i, loss=rng.choice([0, 0.05, 0.2]), reorder=rng.choice([0, 0.3]), delay=0.002, tcp=tcp)
        lst = w.b.tcp.open()
        lst.bind(0, 80)
        lst.listen(rng.choice([1, 5]))
        cli = w.a.tcp.open()
        cli.connect(B, 80, w.now)
        srv = None
        for _ in range(rng.randint(1, 40)):
            for _ in range(rng.randint(0, 400)):
                if not w.step():
                    break
            if srv is None and lst.accept_pending:
                srv = lst.accept()
                accepted += 1
            if rng.random() < 0.1:
                lst.close(w.now)
            op = rng.choice(ops)
            sock = cli if srv is None or rng.random() < .5 else srv
            if op == "send_big":
                try:
                    sock.send(b"z" * 200_000, w.now)
                except UsageError:
                    pass
            elif op is not None:
                _apply(op, sock, w.now)
        for s in (cli, srv, lst):
            if s is not None:
                s.close(w.now)
        end = w.now + 5000
        while w.now < end and w.step():
            pass
        for st in (w.a, w.b):
            assert st.counters.get("tcp.internal_error") == 0, (i, st.internal_errors[-1:])
            assert not st.tcp.conns, (i, [c.state for c in st.tcp.conns.values()])
    assert accepted > 100


def test_every_second_full_segment_acked_when_the_peer_mss_is_smaller_than_ours():
    """RFC 5681 4.2: "full-sized" is the sender's SMSS. A peer that announced MSS 536 (its MTU is
    576) sends 536-byte segments: every second one is ACKed at once, not every sixth."""
    h = Harness(quickack_segments=0)
    s, c = h.established(options=TcpOptions(mss=536))
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"a" * 536))
    h.expect_nothing(1.0)
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 537, c.iss + 1, payload=b"b" * 536))
    h.expect_out(1.0, [dict(flags=".", ack=PEER_ISS + 1 + 2 * 536)])


def test_backed_off_rto_kept_until_a_valid_rtt_sample_karn():
    """RFC 6298 5 (note after 5.7) and Karn: an ACK for retransmitted data gives no RTT sample, so
    the backed-off RTO stays for the next segment; only a new measurement collapses it (Linux:
    "only reset backoff on valid RTT measurement")."""
    h, s, c = est()
    rto = c.snd.rto
    s.send(b"x" * 100, 1.0)
    h.take()
    h.expect_out(1.0 + rto, [dict(len=100)])  # RTO: retransmitted, RTO doubled
    ack(h, c, 1.0 + rto + 0.01, 100)  # acks the retransmitted data: no sample (Karn)
    s.send(b"y" * 100, 1.5)
    h.take()
    assert c.timers.rto_at == pytest.approx(1.5 + 2 * rto)  # still backed off
    ack(h, c, 1.52, 200)  # new data, timed: a valid sample
    s.send(b"z" * 100, 1.6)
    h.take()
    assert c.timers.rto_at == pytest.approx(1.6 + c.snd.rto) and c.snd.rto < 2 * rto


def test_syn_reopening_time_wait_gets_an_isn_above_the_old_incarnation():
    """RFC 1122 4.2.2.13: a SYN may reopen a TIME-WAIT connection only if the new ISN is larger
    than the largest sequence number of the previous incarnation (Linux: old SND.NXT + 65537).
    Here the old connection sent 1 MB in 0.5 s, far more than the 4 µs clock advanced."""
    h = Harness(msl_s=30, sndbuf=1 << 21)
    lst, s, c = h.accepted(options=TcpOptions(mss=MSS))
    s.nodelay = True
    s.send(b"x" * 1_000_000, 0.0)
    t = 0.0
    while c.snd.snd_una != (c.iss + 1 + 1_000_000) & 0xFFFFFFFF:
        h.out(t)
        h.peer_sends(t, h.pseg(".", PEER_ISS + 1, c.snd.snd_nxt, window=65535))
        t += 0.001
    s.close(t)
    h.take()
    h.peer_sends(t, h.pseg("F.", PEER_ISS + 1, c.iss + 2 + 1_000_000))
    assert c.state is State.TIME_WAIT
    h.take()
    old_max = c.snd.snd_max
    h.peer_sends(t + 0.01, h.pseg("S", PEER_ISS + 100000, 0))
    sa = h.expect_out(t + 0.01, [dict(flags="S.", ack=PEER_ISS + 100001)])[0]
    assert 0 < ((sa.seq - old_max) & 0xFFFFFFFF) < 2**31, (sa.seq, old_max)


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_slow_start_restarts_after_an_idle_rto(cc):
    """RFC 5681 4.1 (Linux's tcp_cwnd_restart): data after more than an RTO without sending
    starts from the restart window min(IW, cwnd), halved once per further RTO of silence but not
    below it; ssthresh keeps 3/4 of the old cwnd. Within an RTO nothing changes; the knob off
    keeps cwnd."""
    for knob in (True, False):
        h, s, c = est(congestion_control=cc, sndbuf=1 << 20, slow_start_after_idle=knob)
        s.nodelay = True
        s.send(b"x" * 30 * MSS, 1.0)
        h.out(1.0)
        for i in range(1, 31):
            ack(h, c, 1.1, i * MSS)
            h.out(1.1)
        grown = c.snd.cc.cwnd
        assert grown > 20 * MSS and c.snd.snd_max == c.snd.snd_una
        s.send(b"y" * MSS, 1.1 + c.snd.rto / 2)  # within an RTO: no restart
        h.out(1.1 + c.snd.rto / 2)
        ack(h, c, 1.12 + c.snd.rto / 2, 31 * MSS)
        assert c.snd.cc.cwnd >= grown
        idle_from = c.snd.last_data_at
        later = idle_from + 3.5 * c.snd.rto
        s.send(b"z" * 60 * MSS, later)
        out = h.out(later)
        if knob:
            assert c.snd.cc.cwnd == 10 * MSS and len(out) == 10
            assert c.snd.cc.ssthresh >= 3 * grown // 4
        else:
            assert c.snd.cc.cwnd >= grown and len(out) > 20
