"""Heavy faults (loss, jitter, reordering) on both directions at once: what the two-stack echo
under 10 % loss (tests/runtime/test_sim_heavy_faults.py) tripped over.

- After an RTO pulls SND.NXT back to SND.UNA (go-back-N), segments without data must still carry
  SND.MAX: the peer's RCV.NXT is usually beyond the pulled-back SND.NXT, and it drops a segment
  below RCV.NXT unread. With both ends retransmitting, neither processed the other's ACKs and the
  connection died of `data_retries`.
- PAWS must not drop segments the network merely reordered (TSval a little older than
  TS.Recent, because a later segment overtook them), yet still drop old duplicates.
"""

from __future__ import annotations

from tcphelpers import PEER_ISS, Harness
from test_tcp_stacks import Wire

from ustack.core.reasons import Reason
from ustack.tcp import State, TcpConfig
from ustack.wire.tcp import TcpOptions

MSS = 1000


def est(**kw):
    h = Harness(**kw)
    s, c = h.established(options=TcpOptions(mss=MSS, ts=(5000, 0) if kw.get("timestamps") else None))
    s.nodelay = True
    return h, s, c


def tsseg(h, c, at, off, payload, tsval, ack_off=0):
    h.peer_sends(at, h.pseg(".", PEER_ISS + 1 + off, c.iss + 1 + ack_off, payload=payload,
                            options=TcpOptions(ts=(tsval, 0))))


# ---- segments without data carry SND.MAX ---------------------------------------------------------
def test_ack_after_rto_carries_snd_max_not_the_pulled_back_snd_nxt():
    h, s, c = est()
    s.send(b"x" * 3000, 1.0)
    assert len(h.take()) == 3
    rto = c.snd.rto
    # the RTO retransmits the first segment and pulls SND.NXT back (go-back-N)
    h.expect_out(1.0 + rto, [dict(seq=c.iss + 1, len=MSS)])
    assert c.snd.snd_nxt == c.iss + 1 + MSS and c.snd.snd_max == c.iss + 3001
    # the peer got all 3000 bytes (its ACK was lost) and sends data: its RCV.NXT is iss+3001, so
    # our ACK must say SEQ=iss+3001; SEQ=iss+1001 would be below its RCV.NXT and dropped unread
    h.peer_sends(1.0 + rto + 0.05, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"y" * 10))
    h.expect_out(1.0 + rto + 0.1, [dict(flags=".", seq=c.iss + 3001, ack=PEER_ISS + 11, len=0)])


def test_ack_above_the_pulled_back_snd_nxt_is_acceptable():
    """RFC 5961 5.2 bounds SEG.ACK by SND.NXT; after go-back-N that means SND.MAX: the ACK of
    data sent before the RTO is no blind injection and must advance SND.UNA, not be challenged."""
    h, s, c = est()
    s.send(b"x" * 3000, 1.0)
    h.take()
    h.out(1.0 + c.snd.rto)
    assert c.snd.snd_nxt == c.iss + 1 + MSS
    h.peer_sends(1.3, h.pseg(".", PEER_ISS + 1, c.iss + 3001))
    assert c.snd.snd_una == c.snd.snd_max == c.iss + 3001 and c.retries == 0
    assert h.stack.counters.get("tcp.challenge_ack") == 0 and h.stack.counters.get("tcp.bad_ack") == 0


def test_duplicate_data_after_rto_is_acked_with_snd_max():
    """The peer retransmits data we already have while our own retransmission is pending: the
    immediate ACK for the duplicate must be acceptable to it, or it never learns it arrived."""
    h, s, c = est()
    h.peer_sends(0.5, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"y" * 10))
    s.send(b"x" * 2000, 1.0)
    h.take()
    h.out(1.0 + c.snd.rto)  # our RTO: SND.NXT back to SND.UNA
    assert c.snd.snd_nxt != c.snd.snd_max
    h.peer_sends(1.5, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"y" * 10))  # old duplicate
    h.expect_out(1.5, [dict(flags=".", seq=c.iss + 2001, ack=PEER_ISS + 11, len=0)])


def test_ack_seq_stays_inside_the_peers_window():
    h, s, c = est()
    s.send(b"x" * 3000, 1.0)
    h.take()
    rto = c.snd.rto
    h.out(1.0 + rto)
    # the peer shrank its window to 1500 bytes beyond SND.UNA (RFC 9293 says it should not):
    # SND.MAX would be outside it, so the ACK carries SND.UNA + SND.WND (like Linux)
    h.peer_sends(1.0 + rto + 0.05, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"y" * 10, window=1500))
    assert c.snd.snd_wnd == 1500
    h.expect_out(1.0 + rto + 0.1, [dict(flags=".", seq=c.iss + 1501, ack=PEER_ISS + 11, len=0)])


def test_rst_after_data_retries_carries_snd_max():
    h, s, c = est(data_retries=1)
    s.send(b"x" * 3000, 1.0)
    h.take()
    rto = c.snd.rto
    h.expect_out(1.0 + rto, [dict(seq=c.iss + 1, len=MSS)])
    h.expect_out(1.0 + 3 * rto, [dict(flags="R.", seq=c.iss + 3001)])
    assert s.state is State.CLOSED and s.error is Reason.TIMED_OUT


class BlackoutWire(Wire):
    """A clean wire that loses every frame sent during [blackout_from, blackout_to)."""

    blackout_from = blackout_to = -1.0

    def _carry(self, src, dst) -> None:
        if self.blackout_from <= self.now < self.blackout_to:
            self.dropped += len(src.poll(self.now))
            return
        super()._carry(src, dst)


def test_both_ends_recover_after_both_timed_out_behind_lost_acks():
    """Both ends' data arrives, every ACK is lost, both RTOs fire and pull SND.NXT back. On the
    clean link afterwards each end's retransmission is an old duplicate to the other, so only
    the ACK it triggers can tell the sender; with SEQ = the pulled-back SND.NXT that ACK was
    below the other end's RCV.NXT and dropped unread, both ways, until data_retries aborted."""
    w = BlackoutWire(7, tcp=TcpConfig())  # defaults: SACK, timestamps, data_retries=5
    cli, srv = w.connect_pair()
    w.run_until(lambda: cli.state is State.ESTABLISHED, limit_s=5.0)
    up, down = b"u" * 8000, b"d" * 8000
    assert cli.send(up, w.now) == len(up) and srv.send(down, w.now) == len(down)
    w._carry(w.a, w.b)  # both bursts are on the wire ...
    w._carry(w.b, w.a)
    w.blackout_from, w.blackout_to = w.now, w.now + 2.0  # ... then everything is lost for 2 s
    got_up, got_down = bytearray(), bytearray()

    def done() -> bool:
        got_up.extend(srv.recv(1 << 16))
        got_down.extend(cli.recv(1 << 16))
        return len(got_up) == len(up) and len(got_down) == len(down) and \
            cli.conn.snd.snd_una == cli.conn.snd.snd_max and srv.conn.snd.snd_una == srv.conn.snd.snd_max

    w.run_until(done, limit_s=30.0)
    assert w.dropped > 0 and w.a.counters.get("tcp.rto") > 0 and w.b.counters.get("tcp.rto") > 0
    assert bytes(got_up) == up and bytes(got_down) == down
    assert cli.error is None and srv.error is None


# ---- PAWS under reordering ---------------------------------------------------------------------
def test_paws_accepts_in_order_data_overtaken_by_a_retransmission():
    # the peer's clock: 5000 at 0 s (SYN), 1 kHz. "b" (sent at 5990) waits out of order for "a";
    # the retransmission of "a" (6000) fills the hole and raises TS.Recent; "c", sent at 5995
    # before that retransmission but delayed by jitter, is new in-order data, not a duplicate
    h, s, c = est(timestamps=True)
    tsseg(h, c, 1.0, 1, b"b", 5990)
    tsseg(h, c, 1.01, 0, b"a", 6000)
    assert c.ts_recent == 6000
    tsseg(h, c, 1.02, 2, b"c", 5995)
    assert s.recv(10) == b"abc"
    assert h.stack.counters.get("tcp.paws_drop") == 0
    assert c.ts_recent == 6000  # TS.Recent never moves back


def test_paws_accepts_reordered_pure_ack_above_rcv_nxt():
    # both directions carry data: the peer's pure ACKs say SEQ = its SND.MAX, above our RCV.NXT
    # while its data is in flight; one overtaken by a later segment still carries a good ACK
    h, s, c = est(timestamps=True)
    s.send(b"x" * 3000, 1.0)
    h.take()
    tsseg(h, c, 1.05, 0, b"a", 6050, ack_off=1000)  # data sent after the ACK below
    tsseg(h, c, 1.06, 1000, b"", 6040, ack_off=3000)  # pure ACK, SEQ above RCV.NXT, older TSval
    assert c.snd.snd_una == c.iss + 3001
    assert h.stack.counters.get("tcp.paws_drop") == 0


def test_paws_allowance_follows_the_peers_clock_rate():
    # a 10 Hz peer clock (5000 at 0 s, 5100 at 10 s): one RTO (0.2 s here) is 2 ticks, so a
    # segment 10 ticks (1 s) older is an old duplicate, though 10 ms-ticks would be reordering
    h, s, c = est(timestamps=True)
    assert c.snd.rto == 0.2
    tsseg(h, c, 10.0, 0, b"a", 5100)
    h.out(10.05)
    tsseg(h, c, 10.1, 1, b"b", 5090)
    h.expect_out(10.1, [dict(flags=".", ack=PEER_ISS + 2)])
    assert s.recv(10) == b"a"
    assert h.stack.counters.get("tcp.paws_drop") == 1


def test_paws_still_drops_a_duplicate_older_than_the_connection():
    h, s, c = est(timestamps=True)
    tsseg(h, c, 1.0, 0, b"a", 6000)
    tsseg(h, c, 1.1, 1, b"b", 1000)  # before the peer's SYN: an earlier incarnation
    assert s.recv(10) == b"a"
    assert h.stack.counters.get("tcp.paws_drop") == 1
