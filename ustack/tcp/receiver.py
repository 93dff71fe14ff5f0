"""Receive side of a connection: RCV.NXT/WND, acceptability, reassembly, SACK blocks, window."""

from __future__ import annotations

import heapq
import sys
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable
from operator import attrgetter

from ..core.memory import BYTEARRAY_OVERHEAD, BYTES_OVERHEAD, VIEW_OVERHEAD, MemoryBudget, truesize
from .seq import MASK, diff, gt, in_window, le, lt

INITIAL_RCV_MSS = 536  # Receiver.mss until the handshake settles it (RFC 9293's default MSS)

# A chunk at least this long, in a frame not much larger, is queued as a view of its frame (no
# copy). Shorter ones, and slivers of big frames, are copied into a shared bytearray tail: tiny
# segments then cost ~1 byte of memory per byte, not a frame and two objects each (Linux's
# tcp_try_coalesce does the same on queueing).
VIEW_MIN = 512
COALESCE_MAX = 64 * 1024  # a coalesced bytearray chunk grows up to this


# what an out-of-order range costs beyond its chunks (the object, its deque, list slots)
_RANGE_OVERHEAD = 120 + sys.getsizeof(deque()) + 3 * 8


def _lean_cost(data: bytes | bytearray | memoryview, n: int) -> int:
    """The true size of `data` (n bytes) queued as it is, or 0 when it must be copied: only a
    bytes object, or a view of an immutable frame not much larger than it, of VIEW_MIN bytes or
    more, is kept (the one rule for both queues)."""
    if n >= VIEW_MIN:
        if type(data) is memoryview:
            obj = data.obj
            if type(obj) is bytes and len(obj) <= 2 * n:
                return VIEW_OVERHEAD + BYTES_OVERHEAD + len(obj)
        elif type(data) is bytes:
            return BYTES_OVERHEAD + n
    return 0


def _append_chunk(chunks: list | deque, data: bytes | bytearray | memoryview, n: int) -> int:
    """Queue `data` at the end of `chunks`: as it is when lean, else copied into the bytearray
    tail (coalescing small data). Returns the true size added."""
    t = _lean_cost(data, n)
    if t:
        chunks.append(data)
        return t
    tail = chunks[-1] if chunks else None
    if type(tail) is bytearray and len(tail) + n <= COALESCE_MAX:
        tail += data
        return n
    chunks.append(bytearray(data))
    return BYTEARRAY_OVERHEAD + n


class RecvBuffer:
    """In-order bytes the application has not read: a list of chunks, a byte count and their
    true size (`mem`, charged to the stack's memory budget as "tcp_rcv").

    Chunks are usually memoryviews into the received frames (immutable `bytes`), so taking a
    segment costs no copy; the one copy happens in `read`. Small data, views of mutable buffers
    and slivers of big frames are copied into a bytearray tail chunk instead (bounded copy)."""

    __slots__ = ("chunks", "size", "mem", "memory")

    def __init__(self, memory: MemoryBudget | None = None) -> None:
        self.chunks: list = []
        self.size = 0
        self.mem = 0  # true size of the chunks
        self.memory = memory

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def _charge(self, t: int) -> None:
        self.mem += t
        if self.memory is not None:
            self.memory.charge("tcp_rcv", t)

    def append(self, data: bytes | bytearray | memoryview) -> None:
        n = len(data)
        if not n:
            return
        t = _append_chunk(self.chunks, data, n)
        self.size += n
        self.mem += t
        memory = self.memory
        if memory is not None:
            memory.charge("tcp_rcv", t)

    def extend(self, chunks: Iterable[bytes | bytearray | memoryview], size: int, mem: int) -> None:
        """Take over chunks already accounted elsewhere (the out-of-order queue): `size` payload
        bytes of true size `mem`, which the caller has uncharged."""
        self.chunks.extend(chunks)
        self.size += size
        self._charge(mem)

    def __iadd__(self, data: bytes | bytearray | memoryview) -> RecvBuffer:
        self.append(data)
        return self

    def read(self, n: int) -> bytes:
        chunks = self.chunks
        if n >= self.size:
            out = bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self.size = 0
            self._charge(-self.mem)
            return out
        parts = []
        need = n
        i = 0
        freed = 0
        while need:
            c = chunks[i]
            m = len(c)
            if m <= need:
                parts.append(c)
                freed += truesize(c)
                need -= m
                i += 1
            elif type(c) is bytearray:
                parts.append(bytes(c[:need]))
                del c[:need]  # cheap: CPython moves the start of a bytearray
                freed += need
                need = 0
            else:
                mv = c if type(c) is memoryview else memoryview(c)
                parts.append(mv[:need])
                rest = mv[need:]
                freed += truesize(c) - truesize(rest)
                chunks[i] = rest
                need = 0
        del chunks[:i]
        self.size -= n
        self._charge(-freed)
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


_stamp_of = attrgetter("stamp")


class _Range:
    """One run of contiguous out-of-order bytes: [start, end) as keys (offsets from the queue's
    anchor), `seq` the sequence number of `start`, its chunks in order, their true size."""

    __slots__ = ("start", "end", "seq", "chunks", "mem", "stamp")

    def __init__(self, start: int, seq: int) -> None:
        self.start = start
        self.end = start
        self.seq = seq
        self.chunks: deque = deque()
        self.mem = 0
        self.stamp = 0

    def add_right(self, data: bytes | bytearray | memoryview) -> int:
        """Append data after `end`; returns the true size it added."""
        n = len(data)
        self.end += n
        t = _append_chunk(self.chunks, data, n)
        self.mem += t
        return t

    def add_left(self, data: bytes | bytearray | memoryview) -> int:
        """Prepend data before `start`; returns the true size it added."""
        n = len(data)
        self.start -= n
        self.seq = (self.seq - n) & MASK
        t = _lean_cost(data, n)
        chunk = data if t else bytes(data)
        self.chunks.appendleft(chunk)
        t = t or truesize(chunk)
        self.mem += t
        return t

    def collapse(self) -> int:
        """Join the chunks into one bytes object (Linux's tcp_collapse); returns memory freed."""
        joined = b"".join(self.chunks)
        self.chunks = deque((joined,))
        old, self.mem = self.mem, truesize(joined) + _RANGE_OVERHEAD
        return old - self.mem


class Receiver:
    """Receive sequence space (RFC 9293 3.3.1) and the application's receive buffer.

    `buf` (a RecvBuffer) holds in-order bytes the application has not read; `ooo` holds the
    out-of-order data as `_Range`s: disjoint, non-adjacent, sorted, found by bisecting
    `ooo_starts`/`ooo_ends` (keys are offsets from `anchor`, a sequence number at or below
    RCV.NXT, so they never wrap). A range keeps the segments' views (no copy) and merges with
    its neighbours by moving chunk lists, the shorter into the longer: each segment costs
    O(log n) whatever the queue holds. Bounds: the window (never beyond the free buffer),
    `ooo_max` ranges, and a true-size limit of `mem_limit` for buf + ooo together (2 * rcvbuf
    + 64 KB, like Linux's rcvbuf that counts skb truesize), kept by collapsing small chunks and
    then refusing. The stack's memory budget (`memory`) is charged for both queues; under its
    pressure the window offered is clamped to `pressure_window` bytes and out-of-order data is
    refused.
    """

    __slots__ = ("irs", "rcv_nxt", "buf", "rcvbuf", "wscale", "adv_right", "ooo", "ooo_starts",
                 "ooo_ends", "ooo_bytes", "ooo_mem", "ooo_max", "anchor", "recent", "stamp",
                 "fin_seq", "unacked", "mss", "last_ack_sent", "eof", "shut", "delivered",
                 "memory", "pressure_segments", "collapsed_at")

    def __init__(self, rcvbuf: int, ooo_max: int = 1024, memory: MemoryBudget | None = None,
                 pressure_segments: int = 4) -> None:
        self.irs = 0
        self.rcv_nxt = 0
        self.memory = memory if memory is not None else MemoryBudget(1 << 62, 1 << 62, 1 << 62)
        self.buf = RecvBuffer(self.memory)
        self.rcvbuf = rcvbuf
        self.wscale = 0  # our shift (applied to the windows we advertise)
        self.adv_right = 0  # right edge of the last advertised window (never moves left)
        self.ooo: list[_Range] = []
        self.ooo_starts: list[int] = []  # keys of the ranges' starts, sorted (bisect)
        self.ooo_ends: list[int] = []  # keys of their ends, sorted too (the ranges are disjoint)
        self.ooo_bytes = 0
        self.ooo_mem = 0  # true size of the out-of-order queue
        self.ooo_max = ooo_max
        self.anchor = 0  # sequence number the keys count from
        self.recent: list[_Range] = []  # most recently changed ranges first (SACK blocks)
        self.stamp = 0
        self.pressure_segments = pressure_segments  # window clamp under memory pressure, in MSS
        self.collapsed_at = -1  # true size after the last collapse (collapse again only well above)
        self.fin_seq: int | None = None  # a FIN that arrived out of order
        self.unacked = 0  # bytes received since our last ACK (delayed-ACK accounting)
        self.mss = INITIAL_RCV_MSS  # largest segment we expect (for ACK-every-2nd and SWS avoidance)
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
        return self.space(self.rcvbuf, len(self.buf), self.memory, self.pressure_segments * self.mss)

    @staticmethod
    def space(rcvbuf: int, queued: int, memory: MemoryBudget, pressure_clamp: int) -> int:
        """Free receive space to offer: the buffer's room, clamped to `pressure_clamp` bytes while
        the stack's memory is under pressure (Linux's tcp_clamp_window under tcp_mem pressure).
        Also the window of a SYN cookie's SYN-ACK, which has no Receiver."""
        free = rcvbuf - queued
        if memory.pressure and free > pressure_clamp:
            free = pressure_clamp
        return free if free > 0 else 0

    @property
    def mem(self) -> int:
        """True size held by this connection's receive and out-of-order queues."""
        return self.buf.mem + self.ooo_mem

    @property
    def mem_limit(self) -> int:
        return 2 * self.rcvbuf + 65536

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
        least an MSS and doubled, or grew by half the buffer (like Linux's cleanup_rbuf rule).
        Free space beyond the largest window the header can carry (65535 << wscale) is not
        window that could be announced."""
        free, wnd = min(self.free(), 0xFFFF << self.wscale), self.rcv_wnd()
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

    # -- memory ----------------------------------------------------------------------------------
    def room_for_in_order(self, n: int) -> bool:
        """May `n` in-order bytes be queued? The stack's budget at its high mark first costs us
        our out-of-order queue (Linux prunes it the same way); an empty receive buffer always
        takes the segment, so a connection never stalls for good."""
        memory = self.memory
        est = n + VIEW_OVERHEAD + BYTES_OVERHEAD + 128
        if memory.used + est <= memory.high or not self.buf:
            return True
        if self.ooo:
            self.drop_ooo()
            if memory.used + est <= memory.high:
                return True
        return memory.allows(est)  # counts memory.high_drop

    def drop_ooo(self) -> int:
        """Discard the whole out-of-order queue (memory pressure; RFC 2018 8 allows reneging).
        Returns the bytes discarded."""
        n = self.ooo_bytes
        self.memory.uncharge("tcp_ooo", self.ooo_mem)
        self.ooo.clear()
        self.ooo_starts.clear()
        self.ooo_ends.clear()
        self.recent.clear()
        self.ooo_bytes = self.ooo_mem = 0
        self.collapsed_at = -1
        return n

    def release_memory(self) -> None:
        """The connection is closed: give its memory back to the stack. The out-of-order queue
        goes; unread in-order bytes stay readable by the socket but are no longer charged."""
        self.drop_ooo()
        self.memory.uncharge("tcp_rcv", self.buf.mem)
        self.memory = self.buf.memory = MemoryBudget(1 << 62, 1 << 62, 1 << 62)
        self.memory.charge("tcp_rcv", self.buf.mem)

    def _ooo_refusal(self, n: int) -> str | None:
        """Why `n` more out-of-order bytes cannot be queued (a counter name), or None."""
        memory = self.memory
        if memory.pressure:
            return "tcp.ooo_mem_pressure"
        est = n + VIEW_OVERHEAD + BYTES_OVERHEAD + _RANGE_OVERHEAD
        if not memory.allows(est):
            return "tcp.ooo_mem_drop"
        limit = self.mem_limit
        if self.buf.mem + self.ooo_mem + est > limit:
            # collapse small chunks, but only when enough was added since the last collapse
            # (each collapse then pays for itself)
            if self.collapsed_at < 0 or self.mem > self.collapsed_at + limit // 8:
                self._collapse_ooo()
            if self.buf.mem + self.ooo_mem + est > limit:
                return "tcp.ooo_mem_drop"
        return None

    def _collapse_ooo(self) -> None:
        freed = 0
        for r in self.ooo:
            if len(r.chunks) > 1:
                freed += r.collapse()
        self.ooo_mem -= freed
        self.memory.uncharge("tcp_ooo", freed)
        self.collapsed_at = self.mem

    # -- reassembly ------------------------------------------------------------------------------
    def add_ooo(self, seq: int, data: bytes | memoryview) -> str | None:
        """Queue an out-of-order block (seq > RCV.NXT, inside the window). Returns None when
        queued (or already held), else the counter naming why it was dropped. Bytes already
        held win over a retransmission that overlaps them (Linux delivers the same)."""
        n = len(data)
        if not n:
            return None
        ranges = self.ooo
        if not ranges:
            self.anchor = self.rcv_nxt
        elif diff(self.rcv_nxt, self.anchor) > 1 << 30:
            self._rebase()
        if type(data) is not memoryview:
            data = memoryview(data)
        key = (seq - self.anchor) & MASK
        end = key + n
        starts, ends = self.ooo_starts, self.ooo_ends
        i = bisect_left(ends, key)  # the first range ending at or after our start
        j = bisect_right(starts, end, i)  # ranges[i:j] overlap or touch [key, end]
        if i == j:
            if len(ranges) >= self.ooo_max:
                return "tcp.ooo_drop"
            why = self._ooo_refusal(n)
            if why is not None:
                return why
            r = _Range(key, seq)
            t = r.add_right(data) + _RANGE_OVERHEAD
            r.mem += _RANGE_OVERHEAD
            ranges.insert(i, r)
            starts.insert(i, key)
            ends.insert(i, end)
            self.ooo_bytes += n
            self._ooo_charge(t)
            self._touch(r)
            return None
        first = ranges[i]
        if j == i + 1 and first.start <= key and end <= first.end:
            self._touch(first)  # all of it already held
            return None
        why = self._ooo_refusal(n)
        if why is not None:
            return why
        added = 0
        t = 0
        if key < first.start:
            part = data[: first.start - key]
            t += first.add_left(part)
            added += len(part)
        for k in range(i + 1, j):
            r = ranges[k]
            gap = data[first.end - key: r.start - key]
            t += first.add_right(gap)
            added += len(gap)
            if len(r.chunks) > len(first.chunks):  # the shorter list moves into the longer
                r.chunks.extendleft(reversed(first.chunks))
                first.chunks = r.chunks
            else:
                first.chunks.extend(r.chunks)
            first.end = r.end
            first.mem += r.mem - _RANGE_OVERHEAD
            t -= _RANGE_OVERHEAD
            if r in self.recent:
                self.recent.remove(r)
        if end > first.end:
            part = data[first.end - key:]
            t += first.add_right(part)
            added += len(part)
        del ranges[i + 1:j], starts[i + 1:j], ends[i + 1:j]
        starts[i] = first.start
        ends[i] = first.end
        self.ooo_bytes += added
        self._ooo_charge(t)
        self._touch(first)
        return None

    def _ooo_charge(self, t: int) -> None:
        self.ooo_mem += t
        self.memory.charge("tcp_ooo", t)

    def _touch(self, r: _Range) -> None:
        self.stamp += 1
        r.stamp = self.stamp
        recent = self.recent
        if recent and recent[0] is r:
            return
        if r in recent:
            recent.remove(r)
        recent.insert(0, r)
        del recent[4:]

    def _rebase(self) -> None:
        """Count keys from RCV.NXT again (once per GB of data while a hole stays open)."""
        shift = diff(self.rcv_nxt, self.anchor)
        self.anchor = self.rcv_nxt
        for r in self.ooo:
            r.start -= shift
            r.end -= shift
        self.ooo_starts[:] = [r.start for r in self.ooo]
        self.ooo_ends[:] = [r.end for r in self.ooo]

    def pull_ooo(self) -> int:
        """Move ranges that RCV.NXT has reached into the buffer (no copy); returns bytes moved."""
        moved = 0
        ranges = self.ooo
        while ranges:
            r = ranges[0]
            skip = diff(self.rcv_nxt, r.seq)
            if skip < 0:
                break
            del ranges[0], self.ooo_starts[0], self.ooo_ends[0]
            if r in self.recent:
                self.recent.remove(r)
            size = r.end - r.start
            self.ooo_bytes -= size
            self.ooo_mem -= r.mem
            self.memory.uncharge("tcp_ooo", r.mem)
            if skip >= size:
                continue
            chunks = r.chunks
            mem = r.mem - _RANGE_OVERHEAD
            while skip:
                c = chunks[0]
                if len(c) <= skip:
                    chunks.popleft()
                    skip -= len(c)
                    size -= len(c)
                    mem -= truesize(c)
                    continue
                rest = memoryview(c)[skip:] if type(c) is not bytearray else c[skip:]
                mem += truesize(rest) - truesize(c)
                chunks[0] = rest
                size -= skip
                skip = 0
            self.buf.extend(chunks, size, mem)
            self.rcv_nxt = (self.rcv_nxt + size) & MASK
            moved += size
        if not ranges:
            self.collapsed_at = -1  # a fresh start for the next out-of-order episode
        self.delivered += moved
        return moved

    def sack_blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to `limit` SACK blocks, the most recently changed first (RFC 2018 section 4)."""
        ranges = self.ooo
        if not ranges:
            return []
        recent = self.recent
        want = min(limit, len(ranges))
        if len(recent) < want:  # ranges left the list (delivered, merged): refill by age
            others = [r for r in ranges if r not in recent]
            recent.extend(heapq.nlargest(want - len(recent), others, key=_stamp_of))
        return [(r.seq, (r.seq + r.end - r.start) & MASK) for r in recent[:limit]]

    def read(self, n: int) -> bytes:
        return self.buf.read(n)

    def in_order_fin_due(self) -> bool:
        return self.fin_seq is not None and le(self.fin_seq, self.rcv_nxt)
