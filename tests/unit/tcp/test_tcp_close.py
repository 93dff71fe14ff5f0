"""Closing: active, passive, simultaneous, half-close, TIME-WAIT, RFC 1337, abortive close,
Winsock error reasons (RESET, ABORTED), orphaned FIN-WAIT-2, keepalive."""

from __future__ import annotations

from tcphelpers import PEER_ISS, Harness

from ustack.core import events as ev
from ustack.core.errors import UsageError
from ustack.core.reasons import Reason
from ustack.tcp import State
from ustack.wire.tcp import TcpOptions


def est(**kw):
    h = Harness(**kw)
    s, c = h.established(options=TcpOptions(mss=1000))
    return h, s, c


def test_active_close_through_time_wait():
    h, s, c = est(msl_s=1.0)
    s.close(1.0)
    h.expect_out(1.0, [dict(flags="F.", seq=c.iss + 1, ack=PEER_ISS + 1)])
    assert c.state is State.FIN_WAIT_1
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 2))
    assert c.state is State.FIN_WAIT_2
    h.peer_sends(1.2, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
    h.expect_out(1.2, [dict(flags=".", seq=c.iss + 2, ack=PEER_ISS + 2)])
    assert c.state is State.TIME_WAIT
    assert h.layer.in_use(*c.key)
    h.expect_nothing(3.199)
    assert c.state is State.TIME_WAIT
    h.expect_nothing(3.2)
    assert c.state is State.CLOSED and not h.layer.conns


def test_fin_ack_in_one_segment_goes_to_time_wait():
    h, s, c = est()
    s.shutdown(1, 1.0)
    h.take()
    h.peer_sends(1.1, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
    assert c.state is State.TIME_WAIT


def test_passive_close():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
    h.expect_out(1.0, [dict(flags=".", ack=PEER_ISS + 2)])
    assert c.state is State.CLOSE_WAIT
    assert s.recv(10) == b"" and s.at_eof
    assert h.events[-1] & ev.CLOSE
    s.close(2.0)
    h.expect_out(2.0, [dict(flags="F.", seq=c.iss + 1, ack=PEER_ISS + 2)])
    assert c.state is State.LAST_ACK
    h.peer_sends(2.1, h.pseg(".", PEER_ISS + 2, c.iss + 2))
    assert c.state is State.CLOSED and not h.layer.conns


def test_eof_recv_returns_empty_repeatedly():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg("F.", PEER_ISS + 1, c.iss + 1, payload=b"bye"))
    assert s.recv(10) == b"bye"
    for _ in range(3):
        assert s.recv(10) == b"" and s.at_eof and s.error is None


def test_simultaneous_close():
    h, s, c = est(msl_s=0.5)
    s.shutdown(1, 1.0)
    h.take()
    h.peer_sends(1.1, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
    assert c.state is State.CLOSING
    h.expect_out(1.1, [dict(flags=".", ack=PEER_ISS + 2)])
    h.peer_sends(1.15, h.pseg(".", PEER_ISS + 2, c.iss + 2))
    assert c.state is State.TIME_WAIT
    h.expect_nothing(2.15)
    assert c.state is State.CLOSED


def test_half_close_keeps_receiving():
    h, s, c = est()
    s.shutdown(1, 1.0)
    h.take()
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 2))
    assert c.state is State.FIN_WAIT_2
    h.peer_sends(1.2, h.pseg("P.", PEER_ISS + 1, c.iss + 2, payload=b"more"))
    assert s.recv(10) == b"more"
    try:
        s.send(b"x", 1.3)
        raise AssertionError("send after shutdown must fail")
    except UsageError as e:
        assert e.reason is Reason.SHUTDOWN


def test_peer_half_close_we_keep_sending():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
    h.take()
    assert s.send(b"still", 1.1) == 5
    h.expect_out(1.1, [dict(payload=b"still", ack=PEER_ISS + 2)])


def test_time_wait_acks_retransmitted_fin_and_restarts():
    h, s, c = est(msl_s=1.0)
    s.shutdown(1, 1.0)
    h.take()
    h.peer_sends(1.1, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
    h.take()
    h.peer_sends(2.0, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
    h.expect_out(2.0, [dict(flags=".", ack=PEER_ISS + 2)])
    h.expect_nothing(3.5)
    assert c.state is State.TIME_WAIT  # restarted at 2.0: ends at 4.0
    h.expect_nothing(4.0)
    assert c.state is State.CLOSED


def test_rfc1337_rst_ignored_in_time_wait():
    h, s, c = est()
    s.shutdown(1, 1.0)
    h.take()
    h.peer_sends(1.1, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
    h.take()
    h.peer_sends(1.2, h.pseg("R", PEER_ISS + 2, 0))
    assert c.state is State.TIME_WAIT
    assert h.stack.counters.get("tcp.rst_time_wait_ignored") == 1


def test_time_wait_rst_closes_without_rfc1337():
    h, s, c = est(rfc1337=False)
    s.shutdown(1, 1.0)
    h.take()
    h.peer_sends(1.1, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
    h.peer_sends(1.2, h.pseg("R", PEER_ISS + 2, 0))
    assert c.state is State.CLOSED


def test_new_syn_reopens_time_wait_for_listener():
    h = Harness(msl_s=30)
    lst, s, c = h.accepted()
    s.close(1.0)
    h.take()
    h.peer_sends(1.1, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
    assert c.state is State.TIME_WAIT
    h.take()
    h.peer_sends(2.0, h.pseg("S", PEER_ISS + 100000, 0))
    h.expect_out(2.0, [dict(flags="S.", ack=PEER_ISS + 100001)])


def test_linger_zero_sends_rst():
    h, s, c = est()
    s.linger = 0
    s.close(1.0)
    h.expect_out(1.0, [dict(flags="R.", seq=c.iss + 1)])
    assert not h.layer.conns
    h.expect_nothing(100)


def test_abort_sends_rst():
    h, s, c = est()
    s.abort(1.0)
    h.expect_out(1.0, [dict(flags="R.")])
    assert not h.layer.conns


def test_close_with_unread_data_resets():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg("P.", PEER_ISS + 1, c.iss + 1, payload=b"unread"))
    h.take()
    s.close(1.1)
    h.expect_out(1.1, [dict(flags="R.")])


def test_graceful_close_sends_pending_data_first():
    h, s, c = est(nagle_minshall=False)  # classic Nagle holds the 500-byte tail until close
    s.send(b"x" * 2500, 1.0)
    s.close(1.0)
    out = h.out(1.0)
    assert [len(o.payload) for o in out] == [1000, 1000, 500]
    assert out[-1].flags & 1  # FIN rides on the last segment


def test_graceful_close_after_a_tail_minshall_sent_at_once():
    h, s, c = est()
    s.send(b"x" * 2500, 1.0)
    assert [len(o.payload) for o in h.out(1.0)] == [1000, 1000, 500]
    s.close(1.0)
    h.expect_out(1.0, [dict(flags="F.", len=0, seq=c.iss + 2501)])


def test_peer_rst_after_fin_and_our_send_is_aborted():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
    s.send(b"data", 1.1)
    h.take()
    h.peer_sends(1.2, h.pseg("R", PEER_ISS + 2, 0))
    assert s.error is Reason.ABORTED


def test_peer_rst_in_close_wait_without_send_is_reset():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
    h.peer_sends(1.2, h.pseg("R", PEER_ISS + 2, 0))
    assert s.error is Reason.RESET


def test_send_after_reset_raises_reason():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg("R", PEER_ISS + 1, 0))
    try:
        s.send(b"x", 1.1)
        raise AssertionError
    except UsageError as e:
        assert e.reason is Reason.RESET


def test_rst_in_last_ack_closes_quietly():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
    s.shutdown(1, 1.1)
    h.take()
    assert c.state is State.LAST_ACK
    h.peer_sends(1.2, h.pseg("R", PEER_ISS + 2, 0))
    assert c.state is State.CLOSED


def test_last_ack_fin_retransmitted_then_gives_up():
    h, s, c = est(data_retries=2)
    h.peer_sends(1.0, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
    s.close(1.1)
    h.take()
    out = h.out(30)
    assert sum(1 for o in out if o.flags & 1) == 2
    assert c.state is State.CLOSED


def test_orphaned_fin_wait_2_times_out():
    h, s, c = est(fin_wait2_s=5.0)
    s.close(1.0)
    h.take()
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 2))
    assert c.state is State.FIN_WAIT_2
    h.expect_nothing(6.0)
    assert c.state is State.FIN_WAIT_2
    h.expect_nothing(6.1)
    assert c.state is State.CLOSED


def test_half_closed_fin_wait_2_waits_forever():
    h, s, c = est(fin_wait2_s=5.0)
    s.shutdown(1, 1.0)
    h.take()
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 2))
    h.expect_nothing(100)
    assert c.state is State.FIN_WAIT_2


def test_data_after_shutdown_receive_resets():
    h, s, c = est()
    s.shutdown(0, 1.0)
    h.peer_sends(1.1, h.pseg("P.", PEER_ISS + 1, c.iss + 1, payload=b"late"))
    h.expect_out(1.1, [dict(flags="R.")])
    assert c.state is State.CLOSED


# ---- keepalive -----------------------------------------------------------------------------------
def test_keepalive_probes_then_times_out():
    h, s, c = est()
    s.keepalive_idle_s = 10.0
    s.keepalive_interval_s = 1.0
    s.keepalive_probes = 3
    s.keepalive = True
    h.expect_nothing(9.99)
    h.expect_out(10.0, [dict(flags=".", seq=c.iss, len=0)])
    h.expect_out(11.0, [dict(seq=c.iss)])
    h.expect_out(12.0, [dict(seq=c.iss)])
    h.expect_out(13.0, [dict(flags="R.")])
    assert s.error is Reason.KEEPALIVE_FAILED  # a reason of its own (Windows: WSAENETRESET)
    assert h.stack.counters.get("tcp.keepalive_timeout") == 1
    assert h.events[-1] & ev.CLOSE and h.events[-1] & ev.ERROR


def test_data_retries_exhausted_with_keepalive_on_stays_timed_out():
    # the keepalive timer never runs while data is outstanding: the RTO ends it as TIMED_OUT
    h, s, c = est(data_retries=2)
    s.keepalive_idle_s = 1.0
    s.keepalive_interval_s = 0.5
    s.keepalive_probes = 1
    s.keepalive = True
    s.send(b"x" * 100, 0.5)
    h.out(200.0)
    assert c.state is State.CLOSED
    assert s.error is Reason.TIMED_OUT
    assert h.stack.counters.get("tcp.data_timeout") == 1
    assert h.stack.counters.get("tcp.keepalive_timeout") == 0


def test_keepalive_answered_keeps_connection():
    h, s, c = est()
    s.keepalive_idle_s = 10.0
    s.keepalive = True
    h.expect_out(10.0, [dict(seq=c.iss)])
    h.peer_sends(10.01, h.pseg(".", PEER_ISS + 1, c.iss + 1))
    h.expect_nothing(20.0)
    h.expect_out(20.01, [dict(seq=c.iss)])
    assert s.error is None


def test_keepalive_off_by_default():
    h, s, c = est()
    h.expect_nothing(10000.0)
    assert c.state is State.ESTABLISHED


def test_data_to_orphaned_connection_gets_rst():
    # RFC 1122 4.2.2.13; makes Winsock item 62 work for the peer
    h, s, c = est()
    s.close(1.0)
    h.take()
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 2))
    assert c.state is State.FIN_WAIT_2
    h.peer_sends(1.2, h.pseg("P.", PEER_ISS + 1, c.iss + 2, payload=b"anyone?"))
    h.expect_out(1.2, [dict(flags="R.", seq=c.iss + 2)])
    assert c.state is State.CLOSED


def test_fin_waits_for_the_peer_to_open_its_zero_window():
    """A FIN takes one sequence number of the peer's window (RFC 9293 3.8.6.2.1, as Linux's
    tcp_snd_wnd_test): into a zero window it is held, zero-window probes go out, and the FIN
    follows the window update."""
    h, s, c = est()
    s.send(b"d" * 500, 1.0)
    h.expect_out(1.0, [dict(flags="P.", len=500)])
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 501, window=0))  # all ACKed, window closed
    s.close(1.2)
    assert c.state is State.FIN_WAIT_1
    out = h.out(1.2)
    assert all(not g.flags & 0x01 for g in out), "no FIN into a zero window"
    probes = h.out(5.0)
    assert probes and all(not g.flags & 0x01 and g.seq == c.iss + 500 for g in probes)
    assert h.stack.counters.get("tcp.zero_window_probe") >= 1
    h.peer_sends(5.1, h.pseg(".", PEER_ISS + 1, c.iss + 501, window=1000))
    h.expect_out(5.1, [dict(flags="F.", seq=c.iss + 501)])
    h.peer_sends(5.2, h.pseg(".", PEER_ISS + 1, c.iss + 502, window=1000))
    assert c.state is State.FIN_WAIT_2


def test_fin_on_last_data_segment_only_when_the_window_takes_it():
    h, s, c = est()
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=300))
    s.send(b"e" * 300, 1.0)
    h.expect_out(1.0, [dict(flags="P.", len=300)])
    s.close(1.0)
    h.expect_nothing(1.0)  # the window is full: the FIN waits
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 301, window=0))
    h.expect_nothing(1.1)
    h.peer_sends(1.2, h.pseg(".", PEER_ISS + 1, c.iss + 301, window=1))
    h.expect_out(1.2, [dict(flags="F.", seq=c.iss + 301)])
