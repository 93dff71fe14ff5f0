"""Send side of a connection: SND.UNA/NXT/WND, the send buffer, RTT/RTO, SACK scoreboard.

The send buffer is one bytearray; `buf[0]` has sequence number `buf_seq` (== SND.UNA once the SYN
is acknowledged). The retransmission queue is simply the range SND.UNA..SND.MAX of that buffer:
retransmitting re-slices it, nothing is copied per segment.
"""

from __future__ import annotations

from .cc import CongestionControl
from .seq import MASK, diff, ge, gt, le, lt, smax


class Sender:
    __slots__ = ("iss", "snd_una", "snd_nxt", "snd_max", "snd_wnd", "snd_wl1", "snd_wl2",
                 "max_snd_wnd", "wscale", "buf", "buf_seq", "sndbuf", "fin_queued", "fin_sent",
                 "mss", "cc", "srtt", "rttvar", "rto", "rto_min", "rto_max", "backoff", "rtt_seq",
                 "rtt_at", "sacked", "sack_ok", "dupacks", "in_recovery", "recover", "high_rxt",
                 "retries", "dupthresh", "retransmits", "bytes_acked", "rxt_mark", "undo",
                 "undo_retrans", "rescued", "rto_streak", "rxt_ts", "snd_sml")

    def __init__(self, iss: int, sndbuf: int, rto_initial_s: float, rto_min_s: float,
                 rto_max_s: float, dupthresh: int = 3) -> None:
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss  # highest sequence sent + 1 (SND.NXT is pulled back after an RTO)
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.wscale = 0  # peer's shift, applied to windows it advertises
        self.buf = bytearray()
        self.buf_seq = (iss + 1) & MASK
        self.sndbuf = sndbuf
        self.fin_queued = False
        self.fin_sent = False
        self.mss = 536
        self.cc: CongestionControl | None = None
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = rto_initial_s
        self.rto_min = rto_min_s
        self.rto_max = rto_max_s
        self.backoff = 0
        self.rtt_seq: int | None = None  # segment being timed when timestamps are off (Karn)
        # consecutive timeouts without an ACK of new data: the first one starts a loss episode
        # (ssthresh cut); kept apart from `backoff`, which lives until a valid RTT sample (Karn)
        self.rto_streak = 0
        # TSval of our latest RTO retransmission: an ACK echoing an older TSval spans the
        # backoff (Karn's spirit, Eifel RFC 3522/4015) and gives no RTT sample
        self.rxt_ts: int | None = None
        self.rtt_at = 0.0
        self.sacked: list[list[int]] = []  # [left, right) ranges above SND.UNA, sorted, disjoint
        self.sack_ok = False
        self.dupacks = 0
        self.in_recovery = False
        self.recover = iss  # RFC 6582 "recover"
        self.high_rxt = iss  # RFC 6675 HighRxt
        self.retries = 0
        self.dupthresh = dupthresh
        self.retransmits = 0
        self.bytes_acked = 0
        self.rxt_mark: int | None = None  # SND.MAX when SND.UNA was last retransmitted
        self.undo: tuple[int, int] | None = None  # (cwnd, ssthresh) before the current recovery
        self.rescued = False  # RFC 6675 rescue retransmission done in this recovery
        self.undo_retrans = 0  # retransmissions of that recovery not yet shown spurious by D-SACK
        self.snd_sml = iss  # end of the last sub-MSS segment sent (Minshall's Nagle variant)

    # -- buffer -----------------------------------------------------------------------------------
    @property
    def buf_end(self) -> int:
        """Sequence number just after the last queued data byte (the FIN's number, if queued)."""
        return (self.buf_seq + len(self.buf)) & MASK

    def free_space(self) -> int:
        return max(0, self.sndbuf - len(self.buf))

    def queue(self, data: bytes | bytearray | memoryview, overcommit: bool = False) -> int:
        """Bytes taken into the send buffer: as many as fit, or with `overcommit` all of them
        whenever the buffer is not full (Windows' send; the buffer then drains below sndbuf)."""
        free = self.free_space()
        n = len(data) if overcommit and free > 0 else min(len(data), free)
        if n:
            self.buf += data[:n] if n < len(data) else data
        return n

    def flight(self) -> int:
        return diff(self.snd_nxt, self.snd_una)

    def outstanding(self) -> int:
        return diff(self.snd_max, self.snd_una)

    def unsent(self) -> int:
        d = diff(self.buf_end, self.snd_nxt)
        return d if d > 0 else 0

    def small_unacked(self) -> bool:
        """Is a sub-MSS segment we sent still unacknowledged? (Linux's tcp_minshall_check)"""
        return gt(self.snd_sml, self.snd_una) and le(self.snd_sml, self.snd_max)

    def fin_acked(self) -> bool:
        return self.fin_sent and self.snd_una == ((self.buf_end + 1) & MASK)

    def ack_data(self, ack: int) -> int:
        """Advance SND.UNA to `ack` and drop acknowledged bytes; returns sequence space acked."""
        n = diff(ack, self.snd_una)
        data = diff(ack, self.buf_seq)
        if data > 0:
            if data > len(self.buf):
                data = len(self.buf)
            del self.buf[:data]
            self.buf_seq = (self.buf_seq + data) & MASK
        self.snd_una = ack
        if lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        if self.sacked:
            self.sacked = [[smax(left, ack), r] for left, r in self.sacked if gt(r, ack)]
        self.bytes_acked += n
        return n

    # -- window -----------------------------------------------------------------------------------
    def update_window(self, seq: int, ack: int, raw_wnd: int) -> bool:
        """RFC 9293 3.10.7.4 window update rule; returns True when the window changed."""
        if lt(self.snd_wl1, seq) or (self.snd_wl1 == seq and le(self.snd_wl2, ack)):
            wnd = raw_wnd << self.wscale
            changed = wnd != self.snd_wnd
            self.snd_wnd = wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
            return changed
        return False

    # -- RTT / RTO (RFC 6298) --------------------------------------------------------------------
    def rtt_sample(self, r: float) -> None:
        if r < 0:
            return
        if self.srtt is None:
            self.srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        self.backoff = 0
        self._set_rto()

    def _set_rto(self) -> None:
        if self.srtt is None:
            return
        rto = self.srtt + max(0.001, 4 * self.rttvar)
        self.rto = min(max(rto, self.rto_min), self.rto_max)

    def on_timeout(self) -> None:
        """Back the timer off (RFC 6298 5.5) and forget the timed segment (Karn)."""
        self.backoff += 1
        self.rto = min(self.rto * 2, self.rto_max)
        self.rtt_seq = None

    # -- SACK scoreboard (RFC 6675) --------------------------------------------------------------
    def add_sack(self, blocks: tuple[tuple[int, int], ...]) -> bool:
        """Merge SACK blocks into the scoreboard; True when something new was SACKed."""
        una, top = self.snd_una, self.snd_max
        new = False
        for left, right in blocks:
            if not gt(right, una) or gt(right, top) or not lt(left, right):
                continue  # old, beyond what we sent, or empty: ignore (RFC 2883 D-SACK included)
            if lt(left, una):
                left = una
            new |= self._insert_sack(left, right)
        return new

    def _insert_sack(self, left: int, right: int) -> bool:
        sacked = self.sacked
        i = 0
        while i < len(sacked) and lt(sacked[i][1], left):
            i += 1
        j = i
        lo, hi = left, right
        while j < len(sacked) and le(sacked[j][0], right):
            if lt(sacked[j][0], lo):
                lo = sacked[j][0]
            if gt(sacked[j][1], hi):
                hi = sacked[j][1]
            j += 1
        if j == i + 1 and sacked[i][0] == lo and sacked[i][1] == hi:
            return False
        sacked[i:j] = [[lo, hi]]
        return True

    def sacked_bytes(self) -> int:
        return sum(diff(r, left) for left, r in self.sacked)

    def thresh(self) -> int:
        """DupThresh in use: raised by D-SACKs for reordering, but at most half the segments in
        flight (so a small window can still detect loss without a timeout; cf. RFC 5827)."""
        d = self.dupthresh
        if d > 3:
            half = diff(self.snd_max, self.snd_una) // (2 * self.mss)
            if half < d:
                d = half if half > 3 else 3
        return d

    def lost_end(self) -> int:
        """Everything unSACKed below this sequence number is lost (RFC 6675 IsLost, per hole)."""
        thresh = self.thresh()
        limit = (thresh - 1) * self.mss
        acc = 0
        count = 0
        for left, right in reversed(self.sacked):
            count += 1
            acc += diff(right, left)
            if count >= thresh or acc > limit:
                return left
        return self.snd_una

    def pipe(self, lost_end: int) -> int:
        """RFC 6675 SetPipe: unSACKed octets not lost, plus those retransmitted."""
        una = self.snd_una
        total = diff(self.snd_max, una) - self.sacked_bytes()
        lost = self._unsacked_between(una, lost_end)
        rxt = self._unsacked_between(una, self.high_rxt) if gt(self.high_rxt, una) else 0
        return total - lost + rxt

    def _unsacked_between(self, lo: int, hi: int) -> int:
        if not lt(lo, hi):
            return 0
        n = diff(hi, lo)
        for left, right in self.sacked:
            if ge(left, hi):
                break
            a = left if gt(left, lo) else lo
            b = right if lt(right, hi) else hi
            if lt(a, b):
                n -= diff(b, a)
        return n

    def next_hole(self, lost_end: int) -> tuple[int, int] | None:
        """RFC 6675 NextSeg rule 1: the first lost, unSACKed range at or above HighRxt."""
        s = smax(self.high_rxt, self.snd_una)
        if not lt(s, lost_end):
            return None
        s, next_left = self.skip_sacked(s)
        end = next_left if next_left is not None and lt(next_left, lost_end) else lost_end
        return (s, diff(end, s)) if lt(s, end) else None

    def skip_sacked(self, s: int) -> tuple[int, int | None]:
        """For go-back retransmission: move `s` past SACKed data; also return the next SACKed
        block's left edge (a limit for the segment) or None."""
        for left, right in self.sacked:
            if le(right, s):
                continue
            if le(left, s):
                s = right
                continue
            return s, left
        return s, None
