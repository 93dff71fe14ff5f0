"""The receiver's ACK policy, like Linux's: quick ACKs at the start of a connection (each data
segment ACKed at once, up to 16 ACKs and at most one per two segments of the initial window),
then every second full-sized segment (one ACK per receive batch, up to the stretch limit) or
the delayed-ACK timer. All in virtual time."""

from __future__ import annotations

from tcphelpers import LOCAL, PEER_ISS, REMOTE, Harness

from ustack.wire.ipv4 import Ipv4Packet
from ustack.wire.tcp import TcpOptions

MSS = 1000


def est(**kw):
    h = Harness(**kw)
    s, c = h.established(options=TcpOptions(mss=MSS))
    return h, s, c


def data_seg(h, c, off, n=MSS):
    return h.pseg(".", PEER_ISS + 1 + off, c.iss + 1, payload=b"q" * n)


def test_quick_acks_at_start_then_every_second_segment():
    h, s, c = est()
    assert c.quickacks == 16  # min(16, 65535 // (2 * MSS))
    for i in range(16):  # each of the first 16 segments is ACKed at once, even a lone one
        h.peer_sends(1.0 + i * 0.001, data_seg(h, c, i * MSS))
        h.expect_out(1.0 + i * 0.001, [dict(flags=".", ack=PEER_ISS + 1 + (i + 1) * MSS)])
    assert c.quickacks == 0
    h.peer_sends(1.1, data_seg(h, c, 16 * MSS))  # quick-ACK mode is over: delayed
    h.expect_nothing(1.1)
    h.peer_sends(1.1, data_seg(h, c, 17 * MSS))  # the second full-sized segment: ACK now
    h.expect_out(1.1, [dict(flags=".", ack=PEER_ISS + 1 + 18 * MSS)])
    h.peer_sends(1.2, data_seg(h, c, 18 * MSS, 100))
    h.expect_nothing(1.239)
    h.expect_out(1.240, [dict(flags=".", ack=PEER_ISS + 1 + 18 * MSS + 100)])  # delayed-ACK timer


def test_quick_acks_are_not_coalesced_in_a_receive_batch():
    """Header-prediction path, several segments in one batch: quick ACKs still go one per
    segment (the sender's slow start sees every one), not one at the batch end."""
    h, s, c = est()
    for i in range(4):
        raw = data_seg(h, c, i * MSS).emit(REMOTE, LOCAL)
        h.layer.on_packet(Ipv4Packet(REMOTE, LOCAL, 6, memoryview(raw)), 1.0)
    assert [g.ack for g in h.take()] == [PEER_ISS + 1 + (i + 1) * MSS for i in range(4)]
    assert c.quickacks == 12


def test_quick_ack_count_is_limited_by_the_initial_window():
    """Linux's tcp_incr_quickack: at most rcv_wnd / (2 * rcv_mss) quick ACKs."""
    h, s, c = est(rcvbuf=4000)
    assert c.quickacks == 2
    h.peer_sends(1.0, data_seg(h, c, 0))
    h.expect_out(1.0, [dict(flags=".", ack=PEER_ISS + 1 + MSS)])
    h.peer_sends(1.0, data_seg(h, c, MSS))
    h.expect_out(1.0, [dict(flags=".", ack=PEER_ISS + 1 + 2 * MSS)])
    assert s.recv(4000)
    h.out(1.0)  # window update
    h.peer_sends(1.1, data_seg(h, c, 2 * MSS, 100))
    h.expect_nothing(1.1)


def test_acks_that_acknowledge_no_new_data_do_not_use_up_quick_acks():
    h, s, c = est()
    s.send(b"x" * 100, 1.0)  # our data segment carries an ACK, but of nothing new
    h.out(1.0)
    assert c.quickacks == 16
    h.peer_sends(1.1, data_seg(h, c, 0))
    h.expect_out(1.1, [dict(flags=".", ack=PEER_ISS + 1 + MSS)])
    assert c.quickacks == 15


def test_quick_acks_can_be_turned_off():
    h, s, c = est(quickack_segments=0)
    h.peer_sends(1.0, data_seg(h, c, 0, 100))
    h.expect_nothing(1.039)
    h.expect_out(1.040, [dict(flags=".", ack=PEER_ISS + 101)])


def test_a_tiny_peer_mss_with_timestamps_does_not_break_the_ack_policy():
    """MSS 12 with timestamps leaves 0 bytes per segment of the peer's: the quick-ACK budget
    must not divide by it (a hostile SYN must not raise in the input path)."""
    h = Harness(timestamps=True)
    s, c = h.established(options=TcpOptions(mss=12, ts=(5000, 0)))
    assert s.state.name == "ESTABLISHED" and c.quickacks == 0  # no quick-ACK mode: no room for data
    assert not h.stack.counters.get("tcp.internal_error")
