"""Receive side of a connection: RCV.NXT/WND, acceptability, reassembly, SACK blocks, window."""

from __future__ import annotations

from .seq import MASK, diff, gt, in_window, le, lt


class RecvBuffer:
    """In-order bytes the application has not read: a list of chunks and a byte count.

    Chunks are usually memoryviews into the received frames (immutable `bytes`), so taking a
    segment costs no copy; the one copy happens in `read`. Views of mutable buffers are copied
    on arrival, since a device might reuse them."""

    __slots__ = ("chunks", "size")

    def __init__(self) -> None:
        self.chunks: list = []
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def append(self, data: bytes | bytearray | memoryview) -> None:
        if type(data) is memoryview and type(data.obj) is not bytes:
            data = bytes(data)
        self.chunks.append(data)
        self.size += len(data)

    def __iadd__(self, data: bytes | bytearray | memoryview) -> RecvBuffer:
        self.append(data)
        return self

    def read(self, n: int) -> bytes:
        chunks = self.chunks
        if n >= self.size:
            out = bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self.size = 0
            return out
        parts = []
        need = n
        i = 0
        while need:
            c = chunks[i]
            m = len(c)
            if m <= need:
                parts.append(c)
                need -= m
                i += 1
            else:
                mv = c if type(c) is memoryview else memoryview(c)
                parts.append(mv[:need])
                chunks[i] = mv[need:]
                need = 0
        del chunks[:i]
        self.size -= n
        return b"".join(parts)

    def peek(self, n: int) -> bytes:
        if n >= self.size:
            return b"".join(self.chunks)
        out = bytearray()
        for c in self.chunks:
            out += c[: n - len(out)]
            if len(out) >= n:
                break
        return bytes(out)


class Receiver:
    """Receive sequence space (RFC 9293 3.3.1) and the application's receive buffer.

    `buf` (a RecvBuffer) holds in-order bytes the application has not read; `ooo` holds out-of-order blocks as
    `[start, bytearray, stamp]`, disjoint, non-adjacent and sorted, bounded by the window (which
    never exceeds the free buffer space) and by `ooo_max` blocks.
    """

    __slots__ = ("irs", "rcv_nxt", "buf", "rcvbuf", "wscale", "adv_right", "ooo", "ooo_bytes",
                 "ooo_max", "stamp", "fin_seq", "unacked", "mss", "last_ack_sent", "eof",
                 "shut", "delivered")

    def __init__(self, rcvbuf: int, ooo_max: int = 1024) -> None:
        self.irs = 0
        self.rcv_nxt = 0
        self.buf = RecvBuffer()
        self.rcvbuf = rcvbuf
        self.wscale = 0  # our shift (applied to the windows we advertise)
        self.adv_right = 0  # right edge of the last advertised window (never moves left)
        self.ooo: list[list] = []
        self.ooo_bytes = 0
        self.ooo_max = ooo_max
        self.stamp = 0
        self.fin_seq: int | None = None  # a FIN that arrived out of order
        self.unacked = 0  # bytes received since our last ACK (delayed-ACK accounting)
        self.mss = 536  # largest segment we expect (for ACK-every-2nd and SWS avoidance)
        self.last_ack_sent = 0
        self.eof = False  # peer's FIN consumed
        self.shut = False  # application shut down receiving
        self.delivered = 0  # total bytes delivered in order (statistics)

    def start(self, irs: int) -> None:
        self.irs = irs
        self.rcv_nxt = (irs + 1) & MASK
        self.last_ack_sent = self.rcv_nxt
        self.adv_right = (self.rcv_nxt + min(self.free(), 65535)) & MASK

    # -- window ---------------------------------------------------------------------------------
    def free(self) -> int:
        return max(0, self.rcvbuf - len(self.buf))

    def rcv_wnd(self) -> int:
        """RCV.WND: what the last advertisement allows beyond RCV.NXT."""
        d = diff(self.adv_right, self.rcv_nxt)
        return d if d > 0 else 0

    def advertise(self) -> int:
        """The 16-bit window field for an outgoing segment (scaled), updating the right edge.

        Receiver SWS avoidance (RFC 9293 3.8.6.2.2): the right edge moves only by at least
        min(rcvbuf/2, MSS); it never moves left (RFC 9293 3.8.6.2.1 "shrinking the window").
        """
        right = (self.rcv_nxt + self.free()) & MASK
        adv = self.adv_right
        if lt(adv, self.rcv_nxt):
            adv = self.rcv_nxt
        if gt(right, adv):
            if diff(right, adv) < min(self.rcvbuf // 2, self.mss):
                right = adv
        else:
            right = adv
        wnd = diff(right, self.rcv_nxt)
        raw = wnd >> self.wscale
        if raw > 0xFFFF:
            raw = 0xFFFF
        self.adv_right = (self.rcv_nxt + (raw << self.wscale)) & MASK
        if lt(self.adv_right, adv):  # rounding down by the scale must not shrink the window
            self.adv_right = adv
        return raw

    def window_update_due(self) -> bool:
        """After the application read: is the window worth announcing now? Yes when it grew by at
        least an MSS and doubled, or grew by half the buffer (like Linux's cleanup_rbuf rule)."""
        free, wnd = self.free(), self.rcv_wnd()
        step = min(self.mss, max(self.rcvbuf // 2, 1))
        return free - wnd >= step and (free >= 2 * wnd or free - wnd >= self.rcvbuf // 2)

    # -- acceptability (RFC 9293 3.10.7.4, first check) -----------------------------------------
    def acceptable(self, seq: int, seg_len: int) -> bool:
        wnd = self.rcv_wnd()
        nxt = self.rcv_nxt
        if seg_len == 0:
            return seq == nxt if wnd == 0 else in_window(seq, nxt, wnd)
        if wnd == 0:
            return False
        return in_window(seq, nxt, wnd) or in_window((seq + seg_len - 1) & MASK, nxt, wnd)

    # -- reassembly ------------------------------------------------------------------------------
    def add_ooo(self, seq: int, data: bytes | memoryview) -> bool:
        """Queue an out-of-order block (seq > RCV.NXT, inside the window). False when dropped."""
        n = len(data)
        nxt = self.rcv_nxt
        rel = diff(seq, nxt)
        rel_end = rel + n
        ooo = self.ooo
        self.stamp += 1
        # find blocks overlapping or adjacent to [seq, end)
        first = last = -1
        for i, blk in enumerate(ooo):
            bs = diff(blk[0], nxt)
            be = bs + len(blk[1])
            if be < rel:
                continue
            if bs > rel_end:
                break
            if first < 0:
                first = i
            last = i
        if first < 0:
            if len(ooo) >= self.ooo_max:
                return False
            pos = 0
            while pos < len(ooo) and diff(ooo[pos][0], nxt) < rel:
                pos += 1
            ooo.insert(pos, [seq, bytearray(data), self.stamp])
            self.ooo_bytes += n
            return True
        lo_blk, hi_blk = ooo[first], ooo[last]
        lo_rel = diff(lo_blk[0], nxt)
        hi_end_rel = diff(hi_blk[0], nxt) + len(hi_blk[1])
        merged = bytearray()
        start = seq
        if lo_rel < rel:
            merged += lo_blk[1][: rel - lo_rel]
            start = lo_blk[0]
        merged += data
        if hi_end_rel > rel_end:
            merged += hi_blk[1][len(hi_blk[1]) - (hi_end_rel - rel_end):]
        old = sum(len(b[1]) for b in ooo[first:last + 1])
        ooo[first:last + 1] = [[start, merged, self.stamp]]
        self.ooo_bytes += len(merged) - old
        return True

    def pull_ooo(self) -> int:
        """Move blocks that RCV.NXT has reached into the buffer; returns bytes moved."""
        moved = 0
        ooo = self.ooo
        while ooo:
            start, data, _ = ooo[0]
            skip = diff(self.rcv_nxt, start)
            if skip < 0:
                break
            ooo.pop(0)
            self.ooo_bytes -= len(data)
            if skip < len(data):
                chunk = data[skip:] if skip else data
                self.buf.append(chunk)
                self.rcv_nxt = (self.rcv_nxt + len(chunk)) & MASK
                moved += len(chunk)
        self.delivered += moved
        return moved

    def sack_blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to `limit` SACK blocks, the most recently changed first (RFC 2018 section 4)."""
        if not self.ooo:
            return []
        blocks = sorted(self.ooo, key=lambda b: -b[2])[:limit]
        return [(b[0], (b[0] + len(b[1])) & MASK) for b in blocks]

    def read(self, n: int) -> bytes:
        return self.buf.read(n)

    def in_order_fin_due(self) -> bool:
        return self.fin_seq is not None and le(self.fin_seq, self.rcv_nxt)
