"""Data transfer: delayed ACKs, out-of-order queue and SACK generation, windows, Nagle, persist."""

from __future__ import annotations

import pytest
from tcphelpers import PEER_ISS, Harness

from ustack.core import events as ev
from ustack.tcp.seq import diff
from ustack.wire.tcp import TcpOptions

MSS = 1460


def est(**kw):
    h = Harness(**kw)
    s, c = h.established(options=TcpOptions(mss=MSS))
    return h, s, c


def data(h, c, at, off, n, **kw):
    h.peer_sends(at, h.pseg(".", PEER_ISS + 1 + off, c.iss + 1, payload=bytes([65 + off % 26]) * n, **kw))


# ---- delayed ACK ---------------------------------------------------------------------------------
def test_single_segment_ack_delayed_40ms():
    h, s, c = est(quickack_segments=0)  # past quick-ACK mode (see test_tcp_ack_policy.py)
    data(h, c, 1.0, 0, 100)
    h.expect_nothing(1.039)
    h.expect_out(1.040, [dict(flags=".", ack=PEER_ISS + 101)])


def test_every_second_full_segment_acked_at_once():
    h, s, c = est(quickack_segments=0)
    data(h, c, 1.0, 0, MSS)
    h.expect_nothing(1.0)
    data(h, c, 1.0, MSS, MSS)
    h.expect_out(1.0, [dict(flags=".", ack=PEER_ISS + 1 + 2 * MSS)])
    h.expect_nothing(2.0)


def test_delack_configurable():
    h, s, c = est(delack_s=0.2, quickack_segments=0)
    data(h, c, 1.0, 0, 10)
    h.expect_nothing(1.19)
    h.expect_out(1.2, [dict(flags=".")])


def test_ack_piggybacked_on_data_cancels_delack():
    h, s, c = est(quickack_segments=0)
    data(h, c, 1.0, 0, 10)
    s.send(b"reply", 1.01)
    h.expect_out(1.01, [dict(flags="P.", ack=PEER_ISS + 11, payload=b"reply")])
    h.expect_nothing(1.2)


def test_read_event_fires_on_data():
    h, s, c = est()
    h.events.clear()
    data(h, c, 1.0, 0, 10)
    assert h.events == [ev.READ]


# ---- out of order and SACK ----------------------------------------------------------------------
def test_out_of_order_gets_immediate_dupack():
    h, s, c = est()
    data(h, c, 1.0, 100, 100)
    h.expect_out(1.0, [dict(flags=".", ack=PEER_ISS + 1)])
    assert s.readable_bytes == 0


def test_hole_fill_delivers_and_acks_immediately():
    h, s, c = est()
    data(h, c, 1.0, 100, 100)
    data(h, c, 1.0, 200, 50)
    h.take()
    data(h, c, 1.1, 0, 100)
    h.expect_out(1.1, [dict(flags=".", ack=PEER_ISS + 251)])
    assert len(s.recv(1000)) == 250


def test_sack_blocks_most_recent_first():
    h = Harness(sack=True)
    s, c = h.established(options=TcpOptions(mss=MSS, sack_perm=True))
    base = PEER_ISS + 1
    data(h, c, 1.0, 100, 100)
    h.expect_out(1.0, [dict(sack=((base + 100, base + 200),))])
    data(h, c, 1.0, 300, 100)
    h.expect_out(1.0, [dict(sack=((base + 300, base + 400), (base + 100, base + 200)))])
    data(h, c, 1.0, 500, 100)
    data(h, c, 1.0, 700, 100)
    got = h.out(1.0)[-1]
    assert got.options.sack[0] == (base + 700, base + 800)
    assert len(got.options.sack) == 4  # no timestamps: room for four blocks
    data(h, c, 1.0, 200, 100)  # joins the first two blocks
    got = h.out(1.0)[-1]
    assert got.options.sack[0] == (base + 100, base + 400)


def test_sack_blocks_limited_to_three_with_timestamps():
    h = Harness(sack=True, timestamps=True)
    s, c = h.established(options=TcpOptions(mss=MSS, sack_perm=True, ts=(1, 0)))
    for i in range(5):
        h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1 + 100 + 200 * i, c.iss + 1, payload=b"x" * 100,
                                 options=TcpOptions(ts=(2, 0))))
    got = h.out(1.0)[-1]
    assert len(got.options.sack) == 3


def test_no_sack_blocks_when_not_permitted():
    h = Harness(sack=True)
    s, c = h.established(options=TcpOptions(mss=MSS))
    data(h, c, 1.0, 100, 100)
    h.expect_out(1.0, [dict(sack=())])


def test_out_of_order_fin_processed_after_hole_filled():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg("F.", PEER_ISS + 101, c.iss + 1, payload=b"b" * 10))
    h.take()
    assert not s.at_eof
    data(h, c, 1.1, 0, 100)
    assert s.conn.rcv.eof
    assert len(s.recv(1000)) == 110 and s.at_eof
    h.expect_out(1.1, [dict(flags=".", ack=PEER_ISS + 112)])


def test_ooo_queue_bounded():
    h, s, c = est(ooo_max_segments=2)
    data(h, c, 1.0, 100, 10)
    data(h, c, 1.0, 200, 10)
    data(h, c, 1.0, 300, 10)
    assert len(c.rcv.ooo) == 2
    assert h.stack.counters.get("tcp.ooo_drop") == 1


def test_ooo_overlapping_blocks_merge():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 11, c.iss + 1, payload=b"bbbbb"))
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 14, c.iss + 1, payload=b"cccccc"))
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"aaaaaaaaaa"))
    # bytes already queued win over an overlapping newcomer (Linux delivers the same)
    assert s.recv(100) == b"aaaaaaaaaabbbbbcccc"


# ---- receive window -----------------------------------------------------------------------------
def test_window_shrinks_as_buffer_fills_and_reopens_on_read():
    h = Harness(rcvbuf=4000, quickack_segments=0)
    s, c = h.established(options=TcpOptions(mss=MSS))
    data(h, c, 1.0, 0, 1460)
    data(h, c, 1.0, 1460, 1460)
    h.expect_out(1.0, [dict(window=4000 - 2920)])
    s.recv(4000)
    h.expect_out(1.0, [dict(flags=".", window=4000)])  # window update after the read


def test_no_window_update_for_small_read():
    h = Harness(rcvbuf=20000)
    s, c = h.established(options=TcpOptions(mss=MSS))
    data(h, c, 1.0, 0, 1460)
    data(h, c, 1.0, 1460, 1460)
    h.out(1.0)
    s.recv(100)
    h.expect_nothing(1.0)


def test_receiver_sws_avoidance_holds_small_openings():
    h = Harness(rcvbuf=3000)
    s, c = h.established(options=TcpOptions(mss=1000))
    for i in range(3):
        data(h, c, 1.0, 1000 * i, 1000)
    out = h.out(1.1)
    assert out[-1].window == 0
    s.recv(100)  # 100 bytes free: below min(rcvbuf/2, mss) -> keep advertising 0
    data(h, c, 1.2, 3000, 0)
    h.peer_sends(1.3, h.pseg(".", PEER_ISS + 3001, c.iss + 1))
    assert c.rcv.advertise() == 0
    s.recv(2000)
    assert c.rcv.advertise() == 2100


def test_window_scaling_applied_both_ways():
    h = Harness(window_scaling=True, rcvbuf=1 << 20)
    s, c = h.established(options=TcpOptions(mss=MSS, wscale=3), window=1000)
    assert c.rcv.wscale == 5 and c.snd.wscale == 3
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=1000))
    assert c.snd.snd_wnd == 8000
    data(h, c, 1.0, 0, 10)
    got = h.out(1.1)[-1]
    assert got.window == ((1 << 20) - 10) >> 5


def test_window_scaling_off_when_peer_does_not_offer():
    h = Harness(window_scaling=True, rcvbuf=1 << 20)
    s, c = h.established(options=TcpOptions(mss=MSS))
    assert c.rcv.wscale == 0 and c.snd.wscale == 0
    data(h, c, 1.0, 0, 10)
    assert h.out(1.1)[-1].window == 65535


# ---- sending: Nagle, buffers, windows -------------------------------------------------------------
def test_nagle_minshall_sends_a_small_tail_behind_full_segments():
    """Minshall's variant (Linux's tcp_minshall_check, the default): the tail of a write goes out
    at once while only full-sized segments are unacknowledged; the next small segment waits
    until that tail is acknowledged. Classic Nagle (RFC 896) holds the tail behind any data."""
    h, s, c = est()
    s.send(b"x" * (2 * MSS + 100), 1.0)
    h.expect_out(1.0, [dict(len=MSS), dict(len=MSS), dict(len=100)])
    s.send(b"y" * 10, 1.0)
    h.expect_nothing(1.0)  # a small segment (the 100 bytes) is unacknowledged
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 1 + 2 * MSS))
    h.expect_nothing(1.1)  # full segments acked, the small one not yet
    h.peer_sends(1.2, h.pseg(".", PEER_ISS + 1, c.iss + 1 + 2 * MSS + 100))
    h.expect_out(1.2, [dict(len=10)])
    h2, s2, c2 = est(nagle_minshall=False)
    s2.send(b"x" * (2 * MSS + 100), 1.0)
    h2.expect_out(1.0, [dict(len=MSS), dict(len=MSS)])


def test_nagle_holds_small_segment_while_unacked():
    h, s, c = est()
    s.send(b"a", 1.0)
    h.expect_out(1.0, [dict(payload=b"a")])
    s.send(b"b", 1.0)
    s.send(b"c", 1.0)
    h.expect_nothing(1.0)
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 2))
    h.expect_out(1.1, [dict(payload=b"bc")])


def test_nodelay_sends_at_once():
    h, s, c = est()
    s.nodelay = True
    s.send(b"a", 1.0)
    s.send(b"b", 1.0)
    h.expect_out(1.0, [dict(payload=b"a"), dict(payload=b"b")])


def test_setting_nodelay_flushes():
    h, s, c = est()
    s.send(b"a", 1.0)
    s.send(b"b", 1.0)
    h.take()
    s.nodelay = True
    h.expect_out(1.0, [dict(payload=b"b")])


def test_full_segments_not_delayed_by_nagle():
    h, s, c = est()
    s.send(b"x" * (3 * MSS), 1.0)
    h.expect_out(1.0, [dict(len=MSS)] * 3)


def test_send_limited_by_peer_window():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=2 * MSS))
    s.send(b"x" * 5000, 1.0)
    h.expect_out(1.0, [dict(len=MSS), dict(len=MSS)])
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 1 + MSS, window=2 * MSS))
    h.expect_out(1.1, [dict(len=MSS, seq=c.iss + 1 + 2 * MSS)])


def test_sender_sws_avoidance_holds_small_window_remainder():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=2000))
    s.send(b"x" * 5000, 1.0)
    h.expect_out(1.0, [dict(len=MSS)])  # 540 more would fit: too small (max window 65535)
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 1 + MSS, window=2000))
    h.expect_out(1.1, [dict(len=MSS)])


def test_send_limited_by_initial_cwnd():
    h, s, c = est(sndbuf=100000)
    s.send(b"x" * 100000, 1.0)
    assert len(h.out(1.0)) == 10  # RFC 6928 IW10


def test_sndbuf_limits_send():
    h, s, c = est(sndbuf=1000)
    assert s.writable_bytes == 1000
    assert s.send(b"x" * 1500, 1.0) == 1000
    assert s.send(b"y", 1.0) == 0
    assert s.writable_bytes == 0
    h.take()
    h.events.clear()
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 1001))
    assert s.writable_bytes == 1000
    assert any(e & ev.WRITE for e in h.events)


def test_slow_start_grows_cwnd():
    h, s, c = est(sndbuf=1 << 20)
    s.send(b"x" * 200000, 1.0)
    h.take()
    cw = c.snd.cc.cwnd
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 1 + 2 * MSS))
    assert c.snd.cc.cwnd == cw + 2 * MSS  # byte counting (RFC 3465): both segments count
    assert len(h.out(1.1)) == 4


# ---- zero window and persist ------------------------------------------------------------------------
def test_zero_window_probe_with_backoff():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=0))
    s.send(b"hello", 1.0)
    h.expect_nothing(1.0)
    rto = c.snd.rto
    out1 = h.out(1.0 + rto)
    assert len(out1) == 1 and out1[0].seq == c.iss and len(out1[0].payload) == 0
    h.expect_nothing(1.0 + 3 * rto - 0.001)
    assert len(h.out(1.0 + 3 * rto)) == 1  # backed off: 2x
    assert len(h.out(4.9)) == 2  # 1.0 + 7*rto, 1.0 + 15*rto
    h.peer_sends(5.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=1000))
    h.expect_out(5.0, [dict(payload=b"hello")])


def test_zero_window_probes_do_not_abort_while_answered():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=0))
    s.send(b"hello", 1.0)
    t = 1.0
    for _ in range(30):
        t += 61
        out = h.out(t)
        assert out
        h.peer_sends(t, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=0))
    assert s.error is None


def test_window_opening_without_ack_progress_resumes_sending():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=0))
    s.send(b"abc", 1.0)
    h.peer_sends(1.05, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=100))
    h.expect_out(1.05, [dict(payload=b"abc")])


@pytest.mark.parametrize("n", [1, 1000, MSS + 1])
def test_every_byte_arrives_once(n):
    h, s, c = est()
    payload = bytes(range(256)) * (n // 256 + 1)
    payload = payload[:n]
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=payload[: n // 2]))
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1 + n // 2, c.iss + 1, payload=payload[n // 2:]))
    assert s.recv(10 * n) == payload


def test_data_segments_shrink_to_fit_sack_blocks():
    # MSS excludes options (RFC 6691): SACK blocks on a data segment reduce its payload
    h = Harness(sack=True, sndbuf=100000, nagle_minshall=False)
    s, c = h.established(options=TcpOptions(mss=MSS, sack_perm=True))
    data(h, c, 1.0, 100, 100)  # out of order: we now carry one SACK block
    h.take()
    s.send(b"x" * 5000, 1.0)
    out = h.out(1.0)
    assert all(len(o.payload) <= MSS - 12 for o in out)
    assert out[0].options.sack and len(out[0].payload) == MSS - 12
    assert [len(o.payload) for o in out] == [MSS - 12] * 3  # Nagle holds the 656-byte tail


def test_window_closing_with_data_outstanding_probes_without_timing_out():
    h, s, c = est(data_retries=2)
    s.send(b"x" * 2000, 1.0)
    h.take()
    h.peer_sends(1.01, h.pseg(".", PEER_ISS + 1, c.iss + 1001, window=0))  # half acked, window 0
    t = 1.01
    for _ in range(6):  # more timeouts than data_retries: the peer answers each probe
        t = c.timers.rto_at
        out = h.out(t)
        assert out and out[0].seq == c.iss + 1001
        h.peer_sends(t + 0.01, h.pseg(".", PEER_ISS + 1, c.iss + 1001, window=0))
    assert s.error is None and c.state.name == "ESTABLISHED"
    h.peer_sends(t + 0.02, h.pseg(".", PEER_ISS + 1, c.iss + 1001, window=5000))
    assert c.snd.snd_wnd == 5000


def test_acks_coalesced_within_a_receive_batch():
    h, s, c = est(quickack_segments=0)
    for i in range(8):  # one batch: no poll in between
        h.layer.on_packet(_ip(h, c, i * MSS, MSS), 1.0)
    assert h.take() == []
    h.expect_out(1.0, [dict(flags=".", ack=PEER_ISS + 1 + 8 * MSS)])  # one ACK at the batch end


def test_ack_stretch_limit_forces_ack():
    h, s, c = est(ack_stretch_segments=4, quickack_segments=0)
    for i in range(4):
        h.layer.on_packet(_ip(h, c, i * MSS, MSS), 1.0)
    got = h.take()
    assert len(got) == 1 and got[0].ack == PEER_ISS + 1 + 4 * MSS


def _ip(h, c, off, n):
    from tcphelpers import LOCAL, REMOTE

    from ustack.wire.ipv4 import Ipv4Packet
    raw = h.pseg(".", PEER_ISS + 1 + off, c.iss + 1, payload=b"z" * n).emit(REMOTE, LOCAL)
    return Ipv4Packet(REMOTE, LOCAL, 6, memoryview(raw))


def test_cwnd_does_not_grow_when_application_limited():
    h, s, c = est()
    s.nodelay = True
    cw = c.snd.cc.cwnd
    for i in range(20):
        s.send(b"x" * 100, 1.0 + i)
        h.peer_sends(1.0 + i + 0.01, h.pseg(".", PEER_ISS + 1, c.iss + 1 + 100 * (i + 1)))
    assert c.snd.cc.cwnd == cw


def test_cwnd_limited_when_no_full_segment_fits():
    """A byte-counted cwnd in congestion avoidance is rarely a whole number of segments: a bulk
    sender held back because the next full segment does not fit is cwnd-limited (Linux counts
    packets: in flight >= cwnd), so cwnd keeps growing. Counted as 'out >= cwnd' in bytes, the
    sender never looked limited after the first loss and cwnd froze (100 MB at 1 % loss took
    3x longer in the Simulator)."""
    h, s, c = est(sndbuf=400_000)
    snd = c.snd
    s.send(b"x" * 300_000, 1.0)
    snd.was_cwnd_limited = False
    snd.note_sent(diff(snd.snd_max, snd.snd_una) + MSS // 2)  # room left: half a segment
    assert snd.was_cwnd_limited
    snd.was_cwnd_limited = False
    snd.note_sent(diff(snd.snd_max, snd.snd_una) + 2 * MSS)  # room for two more segments
    assert not snd.was_cwnd_limited


def _acked(h, c, at, n):
    h.peer_sends(at, h.pseg(".", PEER_ISS + 1, c.iss + 1 + n))


def test_slow_start_grows_only_below_twice_the_most_outstanding():
    """RFC 7661 / Linux's tcp_is_cwnd_limited: in slow start cwnd grows while it is below twice
    the most data outstanding in the current window. 5 segments out of cwnd 10: no growth
    (packetdrill slow-start-ack-per-2pkt-send-5pkt); 9 out: growth up to 18 even as the flight
    drains (slow-start-app-limited-9-packets-out)."""
    h, s, c = est(sndbuf=100_000)
    s.nodelay = True
    cw = c.snd.cc.cwnd
    assert cw == 10 * MSS
    s.send(b"x" * 5 * MSS, 1.0)
    for k in (2, 4, 5):
        _acked(h, c, 1.1, k * MSS)
        assert c.snd.cc.cwnd == cw
    h, s, c = est(sndbuf=100_000)
    s.nodelay = True
    s.send(b"x" * 9 * MSS, 1.0)
    grown = []
    for k in (2, 4, 6, 8, 9):
        _acked(h, c, 1.1, k * MSS)
        grown.append(c.snd.cc.cwnd // MSS)
    assert grown == [12, 14, 16, 18, 18]


def test_recv_buffer_reads_across_chunks():
    from ustack.tcp.receiver import RecvBuffer
    b = RecvBuffer()
    for part in (b"abc", memoryview(b"defgh"), bytearray(b"ij")):
        b.append(part)
    assert len(b) == 10 and b.peek(4) == b"abcd"
    assert b.read(4) == b"abcd" and b.read(2) == b"ef" and len(b) == 4
    assert b.peek(100) == b"ghij" and b.read(100) == b"ghij" and not b


def test_recv_buffer_copies_views_of_mutable_buffers():
    from ustack.tcp.receiver import RecvBuffer
    frame = bytearray(b"hello")
    b = RecvBuffer()
    b.append(memoryview(frame)[1:4])
    frame[1:4] = b"XXX"  # a device reusing its buffer must not change queued data
    assert b.read(10) == b"ell"


def test_duplicate_segment_reported_with_dsack():
    h = Harness(sack=True)
    s, c = h.established(options=TcpOptions(mss=MSS, sack_perm=True))
    base = PEER_ISS + 1
    data(h, c, 1.0, 0, 100)
    h.out(1.1)
    data(h, c, 1.2, 0, 100)  # the same segment again: our ACK was lost
    h.expect_out(1.2, [dict(ack=base + 100, sack=((base, base + 100),))])
    data(h, c, 1.3, 300, 100)  # later ACKs carry only normal blocks
    h.expect_out(1.3, [dict(sack=((base + 300, base + 400),))])


def test_partial_duplicate_reported_with_dsack_then_data_taken():
    h = Harness(sack=True)
    s, c = h.established(options=TcpOptions(mss=MSS, sack_perm=True))
    base = PEER_ISS + 1
    data(h, c, 1.0, 0, 100)
    data(h, c, 1.0, 50, 100)  # 50 old bytes, 50 new
    assert s.readable_bytes == 150
    got = h.out(1.1)
    assert got[-1].options.sack[0] == (base + 50, base + 100)
