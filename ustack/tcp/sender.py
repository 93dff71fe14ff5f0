"""Send side of a connection: SND.UNA/NXT/WND, the send buffer, RTT/RTO, SACK scoreboard.

The send buffer is one bytearray; `buf[buf_off]` has sequence number `buf_seq` (== SND.UNA once
the SYN is acknowledged). `buf_off` is 0 except while a super-segment handed to the device still
views the buffer (transmit offload): acknowledged bytes are then cut off at the next ACK. The
retransmission queue is simply the range SND.UNA..SND.MAX of that buffer: retransmitting
re-slices it, nothing is copied per segment.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable

from .cc import CongestionControl
from .seq import MASK, diff, gt, le, lt, smax

SACK_SMALL_FREE = 8  # scoreboard ranges beyond which sub-MSS blocks no longer start a range


class Sender:
    __slots__ = ("iss", "snd_una", "snd_nxt", "snd_max", "snd_wnd", "snd_wl1", "snd_wl2",
                 "max_snd_wnd", "wscale", "buf", "buf_off", "buf_seq", "sndbuf", "fin_queued", "fin_sent",
                 "mss", "cc", "srtt", "rttvar", "rto", "rto_min", "rto_max", "backoff", "rtt_seq",
                 "rtt_at", "sacked", "sack_ok", "dupacks", "in_recovery", "recover", "high_rxt",
                 "retries", "dupthresh", "retransmits", "bytes_acked", "rxt_mark", "undo",
                 "undo_retrans", "rescued", "rto_streak", "rxt_ts", "snd_sml", "sacked_total",
                 "sack_max", "count", "rto_min_on_variance",
                 "last_data_at", "max_out", "cwnd_usage_seq", "was_cwnd_limited",
                 "prr_delivered", "prr_out", "prior_cwnd", "dupthresh_base", "rxt_log", "min_rtt")

    def __init__(self, iss: int, sndbuf: int, rto_initial_s: float, rto_min_s: float,
                 rto_max_s: float, dupthresh: int = 3, sack_max: int = 256,
                 count: Callable[[str], None] | None = None, *,
                 rto_min_on_variance: bool = False) -> None:
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
        self.buf_off = 0
        self.buf_seq = (iss + 1) & MASK
        self.sndbuf = sndbuf
        self.fin_queued = False
        self.fin_sent = False
        self.mss = 536
        self.cc: CongestionControl | None = None
        self.srtt: float | None = None
        self.min_rtt: float | None = None  # the smallest RTT sample (TSO sizing, as Linux's)
        self.rttvar = 0.0
        self.rto = rto_initial_s
        self.rto_min = rto_min_s
        self.rto_max = rto_max_s
        # Linux floors the variance term, not the sum: RTO = SRTT + max(4*RTTVAR, rto_min)
        self.rto_min_on_variance = rto_min_on_variance
        self.last_data_at: float | None = None  # when data was last sent (slow start after idle)
        self.backoff = 0
        self.rtt_seq: int | None = None  # segment being timed when timestamps are off (Karn)
        # consecutive timeouts without an ACK of new data: the first one starts a loss episode
        # (ssthresh cut); kept apart from `backoff`, which lives until a valid RTT sample (Karn)
        self.rto_streak = 0
        # TSval of our latest RTO retransmission: an ACK echoing an older TSval spans the
        # backoff (Karn's spirit, Eifel RFC 3522/4015) and gives no RTT sample
        self.rxt_ts: int | None = None
        self.rtt_at = 0.0
        # the SACK scoreboard: [left, right) ranges above SND.UNA, sorted, disjoint, not adjacent;
        # at most `sack_max` of them, `sacked_total` bytes (kept up to date, never summed)
        self.sacked: list[list[int]] = []
        self.sacked_total = 0
        self.sack_max = sack_max
        self.count = count  # counts a SACK block the scoreboard ignores (a counter name)
        self.sack_ok = False
        self.dupacks = 0
        self.in_recovery = False
        self.recover = iss  # RFC 6582 "recover"
        self.high_rxt = iss  # RFC 6675 HighRxt
        self.retries = 0
        self.dupthresh = dupthresh
        self.dupthresh_base = dupthresh  # DupThresh before any D-SACK showed reordering
        self.retransmits = 0
        self.bytes_acked = 0
        self.rxt_mark: int | None = None  # SND.MAX when SND.UNA was last retransmitted
        self.undo: tuple[int, int] | None = None  # (cwnd, ssthresh) before the current recovery
        self.rescued = False  # RFC 6675 rescue retransmission done in this recovery
        self.undo_retrans = 0  # retransmissions of that recovery not yet shown spurious by D-SACK
        self.snd_sml = iss  # end of the last sub-MSS segment sent (Minshall's Nagle variant)
        # cwnd validation (RFC 7661, as Linux's tcp_cwnd_validate): the most bytes outstanding
        # during the current window (until SND.UNA passes cwnd_usage_seq), and whether cwnd
        # limited a send in it
        self.max_out = 0
        self.cwnd_usage_seq = iss
        self.was_cwnd_limited = False
        # Proportional Rate Reduction (RFC 6937) during fast recovery, in bytes
        self.prr_delivered = 0
        self.prr_out = 0
        self.prior_cwnd = 0
        # retransmissions of the current recovery in the order sent, (seq, end); at most sack_max
        self.rxt_log: list[tuple[int, int]] = []

    # -- buffer -----------------------------------------------------------------------------------
    @property
    def buf_end(self) -> int:
        """Sequence number just after the last queued data byte (the FIN's number, if queued)."""
        return (self.buf_seq + len(self.buf) - self.buf_off) & MASK

    def buffered(self) -> int:
        """Bytes in the send buffer (unacknowledged or unsent)."""
        return len(self.buf) - self.buf_off

    def free_space(self) -> int:
        return max(0, self.sndbuf - len(self.buf) + self.buf_off)

    def queue(self, data: bytes | bytearray | memoryview, overcommit: bool = False) -> int:
        """Bytes taken into the send buffer: as many as fit, or with `overcommit` all of them
        whenever the buffer is not full (Windows' send; the buffer then drains below sndbuf)."""
        free = self.free_space()
        n = len(data) if overcommit and free > 0 else min(len(data), free)
        if n:
            part = data[:n] if n < len(data) else data
            try:
                self.buf += part
            except BufferError:  # a super-segment not yet written views it: grow a new one
                self.buf = self.buf[self.buf_off:] + part
                self.buf_off = 0
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
            held = len(self.buf) - self.buf_off
            if data > held:
                data = held
            cut = self.buf_off + data
            try:
                del self.buf[:cut]
                self.buf_off = 0
            except BufferError:  # a super-segment handed to the device still views these bytes
                self.buf_off = cut
            self.buf_seq = (self.buf_seq + data) & MASK
        self.snd_una = ack
        if lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        sacked = self.sacked
        if sacked:
            # ranges wholly acknowledged form a prefix (the board is sorted): cut it off
            k = bisect_right(sacked, 0, key=lambda r: diff(r[1], ack))
            if k:
                self.sacked_total -= sum(diff(r, left) for left, r in sacked[:k])
                del sacked[:k]
            if sacked and lt(sacked[0][0], ack):
                self.sacked_total -= diff(ack, sacked[0][0])
                sacked[0][0] = ack
        self.bytes_acked += n
        return n

    # -- cwnd validation (RFC 7661) ---------------------------------------------------------------
    def note_sent(self, cwnd: int) -> None:
        """After sending new data (or being stopped by cwnd): remember how much of cwnd this
        window used; a new window starts once SND.UNA reaches the end of the previous one."""
        out = diff(self.snd_max, self.snd_una)
        # in segments, as Linux counts: cwnd limits the sender once no full segment fits in it
        # (a byte-counted cwnd in congestion avoidance is rarely a whole number of segments)
        limited = out - self.sacked_total + self.mss > cwnd
        if (not lt(self.snd_una, self.cwnd_usage_seq) or limited
                or (not self.was_cwnd_limited and out > self.max_out)):
            self.was_cwnd_limited = limited
            self.max_out = out
            self.cwnd_usage_seq = self.snd_nxt

    def cwnd_limited(self, cwnd: int, slow_start: bool) -> bool:
        """May an ACK grow cwnd? Only while cwnd is what limits the sender; in slow start while
        cwnd is below twice the most outstanding this window (Linux's tcp_is_cwnd_limited), so
        an application-limited sender does not build a huge, untested cwnd."""
        return self.was_cwnd_limited or (slow_start and cwnd < 2 * self.max_out)

    def _delivered(self, seq: int, end: int) -> bool:
        una = self.snd_una
        if le(end, una):
            return True
        lo = seq if gt(seq, una) else una
        return self._unsacked_between(una, end) == self._unsacked_between(una, lo)

    def lost_retransmission(self) -> int | None:
        """A retransmission is lost when one sent after it has been delivered (RACK's rule, RFC
        8985, zero reordering window in recovery): the lowest such start, or None."""
        log = self.rxt_log
        last = -1
        for k in range(len(log) - 1, 0, -1):
            if self._delivered(*log[k]):
                last = k
                break
        if last <= 0:
            return None
        lost = None
        for seq, end in log[:last]:
            if not self._delivered(seq, end) and (lost is None or lt(seq, lost)):
                lost = seq if gt(seq, self.snd_una) else self.snd_una
        del log[:last + 1]
        return lost

    # -- Proportional Rate Reduction (RFC 6937) --------------------------------------------------
    def prr_cwnd(self, delivered: int, pipe: int, ssthresh: int, una_advanced: bool) -> int | None:
        """The cwnd that lets the sender send what PRR allows on this ACK (pipe + sndcnt, as
        Linux's tcp_cwnd_reduction with slow-start reduction bound), or None when the ACK
        delivered nothing. `delivered`: bytes newly SACKed or acknowledged by this ACK."""
        if delivered <= 0 or self.prior_cwnd <= 0:
            return None
        self.prr_delivered += delivered
        delta = ssthresh - pipe
        if delta < 0:  # pipe above ssthresh: send in proportion to what was delivered
            # rounded up to whole segments, as Linux counts packets
            segs = -(-ssthresh * self.prr_delivered // (self.prior_cwnd * self.mss))
            sndcnt = segs * self.mss - self.prr_out
        else:  # pipe below ssthresh: slow-start reduction bound, at most up to ssthresh
            sndcnt = max(self.prr_delivered - self.prr_out, delivered)
            if una_advanced:
                sndcnt += self.mss
            sndcnt = min(delta, sndcnt)
        if not self.prr_out and sndcnt < self.mss:
            sndcnt = self.mss  # the fast retransmission goes out on entering recovery
        return pipe + max(sndcnt, 0)

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
        if self.min_rtt is None or r < self.min_rtt:
            self.min_rtt = r
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
        var = max(0.001, 4 * self.rttvar)  # RFC 6298 2.3: G, a 1 ms clock
        if self.rto_min_on_variance and var < self.rto_min:
            var = self.rto_min
        self.rto = min(max(self.srtt + var, self.rto_min), self.rto_max)

    def on_timeout(self) -> None:
        """Back the timer off (RFC 6298 5.5) and forget the timed segment (Karn)."""
        self.backoff += 1
        self.rto = min(self.rto * 2, self.rto_max)
        self.rtt_seq = None

    # -- SACK scoreboard (RFC 6675) --------------------------------------------------------------
    # Bounded against a receiver that SACKs bytes one by one (the CVE-2019-11478 class): blocks
    # merge with what they touch, at most `sack_max` ranges are kept, and once the board holds
    # SACK_SMALL_FREE ranges a block shorter than an MSS that would start a range of its own
    # (not reaching SND.MAX) is ignored, so the room left goes to full segments. Ignoring a block
    # is always safe: its bytes merely count as not yet SACKed. Each block costs O(log n).
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

    def clear_sack(self) -> None:
        """Forget every SACK (after an RTO: the peer may have reneged, RFC 2018 section 8)."""
        self.sacked.clear()
        self.sacked_total = 0

    def _insert_sack(self, left: int, right: int) -> bool:
        sacked = self.sacked
        una = self.snd_una
        # ranges[i:j] overlap or touch [left, right]: the first whose right edge reaches `left`,
        # up to the last whose left edge is not beyond `right`
        rel_left, rel_right = diff(left, una), diff(right, una)
        i = bisect_left(sacked, rel_left, key=lambda r: diff(r[1], una))
        j = bisect_right(sacked, rel_right, lo=i, key=lambda r: diff(r[0], una))
        if i == j:
            n = len(sacked)
            if n >= self.sack_max:
                self._ignored("tcp.sack_board_full")
                return False
            if n >= SACK_SMALL_FREE and rel_right - rel_left < self.mss and right != self.snd_max:
                self._ignored("tcp.sack_small_ignored")
                return False
            sacked.insert(i, [left, right])
            self.sacked_total += rel_right - rel_left
            return True
        lo = sacked[i][0] if lt(sacked[i][0], left) else left
        hi = sacked[j - 1][1] if gt(sacked[j - 1][1], right) else right
        if j == i + 1 and sacked[i][0] == lo and sacked[i][1] == hi:
            return False
        self.sacked_total += diff(hi, lo) - sum(diff(r, s) for s, r in sacked[i:j])
        sacked[i:j] = [[lo, hi]]
        return True

    def _ignored(self, reason: str) -> None:
        if self.count is not None:
            self.count(reason)

    def sacked_bytes(self) -> int:
        return self.sacked_total

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
        sacked = self.sacked
        if self.in_recovery and sacked and self.dupthresh == self.dupthresh_base:
            # in recovery, with no reordering seen, everything sent before the highest SACKed
            # data and not SACKed is lost (RACK, RFC 8985, with a zero reordering window in
            # recovery as Linux; for data sent once, "sent before" is "below")
            return sacked[-1][0]
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
        """Bytes in [lo, hi) not SACKed; `lo` is SND.UNA (every range lies above it)."""
        if not lt(lo, hi):
            return 0
        sacked = self.sacked
        una = self.snd_una
        k = bisect_left(sacked, diff(hi, una), key=lambda r: diff(r[0], una))  # ranges below hi
        # the SACKed bytes below hi, summed over the shorter side of the board
        if k <= len(sacked) - k:
            below = sum(diff(r, left) for left, r in sacked[:k])
        else:
            below = self.sacked_total - sum(diff(r, left) for left, r in sacked[k:])
        if k and gt(sacked[k - 1][1], hi):
            below -= diff(sacked[k - 1][1], hi)
        return diff(hi, lo) - below

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
        sacked = self.sacked
        una = self.snd_una
        i = bisect_right(sacked, diff(s, una), key=lambda r: diff(r[1], una))  # first right > s
        if i == len(sacked):
            return s, None
        left, right = sacked[i]
        if le(left, s):  # inside a SACKed range: skip it (the next one is not adjacent)
            s = right
            i += 1
            if i == len(sacked):
                return s, None
            left = sacked[i][0]
        return s, left
