"""RFC 9293 3.10.7.4 checks in order: acceptability table, RST (RFC 5961), SYN, ACK."""

from __future__ import annotations

import pytest
from tcphelpers import PEER_ISS, Harness

from ustack.core import events as ev
from ustack.core.reasons import Reason
from ustack.tcp import State
from ustack.tcp.receiver import Receiver


def est(**kw):
    h = Harness(**kw)
    s, c = h.established()
    return h, s, c


# ---- acceptability table -----------------------------------------------------------------------
def _rcv(wnd: int) -> Receiver:
    r = Receiver(wnd if wnd else 1000)
    r.start(999)  # RCV.NXT = 1000
    if wnd == 0:
        r.buf.append(b"x" * 1000)
        r.adv_right = r.rcv_nxt
    else:
        r.adv_right = 1000 + wnd
    return r


@pytest.mark.parametrize("seq,length,wnd,ok", [
    (1000, 0, 0, True), (999, 0, 0, False), (1001, 0, 0, False),      # len 0, wnd 0
    (1000, 0, 100, True), (1099, 0, 100, True), (1100, 0, 100, False), (999, 0, 100, False),
    (1000, 10, 0, False),                                              # len > 0, wnd 0
    (1000, 10, 100, True), (995, 10, 100, True), (990, 10, 100, False),
    (1099, 10, 100, True), (1100, 10, 100, False),
])
def test_acceptability_table(seq, length, wnd, ok):
    assert _rcv(wnd).acceptable(seq, length) is ok


def test_acceptability_across_wrap():
    r = Receiver(1000)
    r.start(0xFFFFFFF0)
    assert r.rcv_nxt == 0xFFFFFFF1
    assert r.acceptable(5, 10)
    assert not r.acceptable(0xFFFFFF00, 10)


def test_unacceptable_data_gets_ack():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1 + 70000, c.iss + 1, payload=b"far"))
    h.expect_out(0.1, [dict(flags=".", seq=c.iss + 1, ack=PEER_ISS + 1)])
    assert s.readable_bytes == 0


def test_old_duplicate_gets_ack():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"abc"))
    h.out(1.0)
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"abc"))
    h.expect_out(1.1, [dict(flags=".", ack=PEER_ISS + 4)])
    assert s.recv(10) == b"abc"


def test_overlapping_segment_trimmed():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"abc"))
    h.peer_sends(0.2, h.pseg(".", PEER_ISS + 2, c.iss + 1, payload=b"bcdef"))
    assert s.recv(10) == b"abcdef"


def test_data_beyond_window_trimmed():
    h = Harness(rcvbuf=10)
    s, c = h.established()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"0123456789abcdef"))
    assert s.recv(100) == b"0123456789"
    out = h.out(0.1)
    assert out[-1].ack == PEER_ISS + 11


def test_zero_window_accepts_ack_not_data():
    h = Harness(rcvbuf=4)
    s, c = h.established()
    s.send(b"hi", h.now)
    h.take()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"abcd"))
    h.out(0.2)
    assert c.rcv.rcv_wnd() == 0
    h.peer_sends(0.3, h.pseg(".", PEER_ISS + 5, c.iss + 3, payload=b"e"))
    assert c.snd.snd_una == c.iss + 3  # ACK processed
    h.expect_out(0.3, [dict(flags=".", ack=PEER_ISS + 5, window=0)])
    assert s.recv(10) == b"abcd"


# ---- RST (RFC 5961 3.2) ------------------------------------------------------------------------
def test_rst_exact_seq_resets():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg("R", PEER_ISS + 1, 0))
    assert s.state is State.CLOSED and s.error is Reason.RESET
    assert h.events[-1] & ev.CLOSE
    h.expect_nothing(100)


def test_rst_in_window_gets_challenge_ack():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg("R", PEER_ISS + 100, 0))
    h.expect_out(0.1, [dict(flags=".", seq=c.iss + 1, ack=PEER_ISS + 1)])
    assert s.state is State.ESTABLISHED
    assert h.stack.counters.get("tcp.challenge_ack") == 1


def test_rst_out_of_window_ignored():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg("R", PEER_ISS - 100, 0))
    h.expect_nothing(0.1)
    assert s.state is State.ESTABLISHED


def test_rst_with_ack_in_established_resets():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg("R.", PEER_ISS + 1, c.iss + 1))
    assert s.error is Reason.RESET


def test_rst_keeps_buffered_data_readable():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"data"))
    h.peer_sends(0.2, h.pseg("R", PEER_ISS + 5, 0))
    assert s.error is Reason.RESET
    assert s.recv(10) == b"data"


def test_challenge_acks_rate_limited():
    h, s, c = est(challenge_ack_limit=3)
    for i in range(10):
        h.peer_sends(0.1, h.pseg("R", PEER_ISS + 10 + i, 0))
    assert 2 <= len(h.out(0.1)) <= 4  # a random budget in [limit/2, limit*3/2)
    h.peer_sends(1.2, h.pseg("R", PEER_ISS + 50, 0))
    assert len(h.out(1.2)) == 1


# ---- SYN in synchronized states (RFC 5961 4.2) ---------------------------------------------------
def test_syn_in_window_gets_challenge_ack():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg("S", PEER_ISS + 5, 0))
    h.expect_out(0.1, [dict(flags=".", ack=PEER_ISS + 1)])
    assert s.state is State.ESTABLISHED


def test_syn_out_of_window_gets_ack():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg("S", PEER_ISS - 5000, 0))
    h.expect_out(0.1, [dict(flags=".", ack=PEER_ISS + 1)])
    assert s.state is State.ESTABLISHED


# ---- ACK field ---------------------------------------------------------------------------------
def test_ack_beyond_snd_nxt_challenged_and_dropped():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 500, payload=b"zz"))
    h.expect_out(0.1, [dict(flags=".", ack=PEER_ISS + 1)])
    assert s.readable_bytes == 0


def test_ack_too_old_challenged():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss - 200000, payload=b"zz"))
    h.expect_out(0.1, [dict(flags=".", ack=PEER_ISS + 1)])
    assert s.readable_bytes == 0


def test_old_ack_within_window_processes_data():
    h, s, c = est()
    s.send(b"x" * 100, h.now)
    h.take()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 101))
    h.peer_sends(0.2, h.pseg(".", PEER_ISS + 1, c.iss + 50, payload=b"late"))
    assert s.recv(10) == b"late"
    assert c.snd.snd_una == c.iss + 101


def test_segment_without_ack_dropped():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg("P", PEER_ISS + 1, 0, payload=b"noack"))
    h.expect_nothing(0.1)
    assert s.readable_bytes == 0


def test_window_update_rule_uses_wl1_wl2():
    h, s, c = est()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=1000))
    assert c.snd.snd_wnd == 1000
    # an older segment (lower seq) must not change the window
    h.peer_sends(0.2, h.pseg(".", PEER_ISS, c.iss + 1, window=5))
    assert c.snd.snd_wnd == 1000


def test_sequence_wraparound_transfer():
    h = Harness()
    s, syn = h.connect()
    peer = 0xFFFFFFF0
    from tcphelpers import seg
    h.peer_sends(0.0, seg("S.", peer, syn.seq + 1, dport=syn.sport))
    h.take()
    h.peer_sends(0.1, h.pseg(".", peer + 1, syn.seq + 1, payload=b"a" * 40, dport=syn.sport))
    h.peer_sends(0.1, h.pseg(".", peer + 41, syn.seq + 1, payload=b"b" * 40, dport=syn.sport))
    assert s.recv(100) == b"a" * 40 + b"b" * 40
    assert s.conn.rcv.rcv_nxt == (peer + 81) & 0xFFFFFFFF


def test_out_of_window_pure_acks_answered_at_most_twice_a_second():
    h, s, c = est()
    for i in range(5):
        h.peer_sends(0.1 + i * 0.01, h.pseg(".", PEER_ISS + 90000, c.iss + 1))
    assert len(h.out(0.2)) == 1
    h.peer_sends(0.7, h.pseg(".", PEER_ISS + 90000, c.iss + 1))
    assert len(h.out(0.7)) == 1
    assert h.stack.counters.get("tcp.out_of_window_ack_suppressed") == 4


def test_out_of_window_data_always_acked():
    h, s, c = est()
    for _ in range(3):
        h.peer_sends(0.1, h.pseg(".", PEER_ISS + 90000, c.iss + 1, payload=b"d"))
    assert len(h.out(0.1)) == 3
