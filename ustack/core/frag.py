"""IPv4 fragmentation (RFC 791) and reassembly (RFC 791, RFC 815, RFC 1122 3.3.2, RFC 5722 spirit)."""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable

from ..wire.ipv4 import HEADER_LEN, Ipv4Packet
from .counters import Counters
from .memory import BYTES_OVERHEAD, MemoryBudget


def fragment(src: int, dst: int, proto: int, payload: bytes | memoryview, ident: int, mtu: int,
             ttl: int = 64, tos: int = 0) -> list[bytes]:
    """Split a datagram into packets of at most `mtu` bytes (offsets multiples of 8)."""
    step = (mtu - HEADER_LEN) & ~7
    if step <= 0:
        raise ValueError(f"MTU {mtu} too small to fragment")
    mv = memoryview(payload)
    n = len(mv)
    out = []
    for off in range(0, n, step):
        chunk = mv[off:off + step]
        more = off + step < n
        hdr = Ipv4Packet(src, dst, proto, b"", ttl, ident, False, more, off, tos).header(len(chunk))
        out.append(hdr + bytes(chunk))
    return out


# true size of a held fragment beyond its payload: the bytes copy, its (start, end, data) tuple,
# the two offsets as ints and the list slots (~170 bytes, as tools/bench_hostile.py measures;
# Linux charges each fragment's skb->truesize the same way)
FRAG_OVERHEAD = BYTES_OVERHEAD + 64 + 2 * 28 + 16


class _Datagram:
    __slots__ = ("deadline", "starts", "pieces", "size", "mem", "total", "first", "dead")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.starts: list[int] = []  # sorted start offsets of `pieces` (bisect)
        self.pieces: list[tuple[int, int, bytes]] = []  # (start, end, data), sorted, disjoint
        self.size = 0  # payload bytes held
        self.mem = 0  # their true size (charged to the reassembler and the stack's budget)
        self.total: int | None = None  # payload length, known once the last fragment arrived
        self.first: Ipv4Packet | None = None  # the offset-0 fragment (its header and first bytes)
        self.dead = False  # overlap seen: drop every fragment until the timeout


_COUNTERS = ("reasm_bad_length", "reasm_dead_fragment", "reasm_duplicate", "reasm_evicted",
             "reasm_fragments", "reasm_inconsistent", "reasm_mem_budget", "reasm_mem_limit",
             "reasm_ok", "reasm_overlap", "reasm_timeout", "reasm_too_big",
             "reasm_too_many_fragments")


class Reassembler:
    """Incomplete datagrams keyed by (src, dst, proto, ident) (IPv6: src, dst, identification),
    each with a fixed deadline.

    Deadlines are "first fragment + timeout", so insertion order is deadline order and the
    oldest entry is always first: poll and eviction look only at the front. Each datagram keeps
    its fragments as sorted, disjoint intervals (one bisect per fragment) and at most
    `max_fragments` of them; memory is the fragments' true size, bounded by `mem_limit` here
    and charged to the stack's `MemoryBudget` as "reasm".
    """

    def __init__(self, counters: Counters, timeout_s: float, mem_limit: int, max_datagrams: int,
                 on_timeout: Callable[[Ipv4Packet, float], None] | None = None, *,
                 max_fragments: int = 64, memory: MemoryBudget | None = None,
                 prefix: str = "ipv4") -> None:
        self.counters = counters
        # one implementation for both families: IPv6 (RFC 8200 4.5) keys datagrams by (src,
        # dst, identification) and counts under "ipv6.reasm_*"
        self.ipv6 = prefix == "ipv6"
        self.names = {n: f"{prefix}.{n}" for n in _COUNTERS}
        self.timeout_s = timeout_s
        self.mem_limit = mem_limit
        self.max_datagrams = max_datagrams
        self.max_fragments = max_fragments
        self.on_timeout = on_timeout  # called with the first fragment when a datagram expires
        self.table: OrderedDict[tuple[int, int, int, int], _Datagram] = OrderedDict()
        self.mem = 0
        self.memory = memory

    def add(self, ip: Ipv4Packet, now: float) -> Ipv4Packet | None:
        """Take one fragment; return the whole datagram when this one completes it."""
        c = self.counters
        c.inc(self.names["reasm_fragments"])
        if self.ipv6:
            key = (ip.src, ip.dst, 0, ip.frag_id)
            header = 0  # the wire codec already refused fragments ending past 65535
        else:
            key = (ip.src, ip.dst, ip.proto, ip.ident)
            header = HEADER_LEN + len(ip.options)
        start = ip.frag_offset
        n = len(ip.payload)
        end = start + n
        cost = n + FRAG_OVERHEAD
        d = self.table.get(key)
        if d is not None and d.dead:
            c.inc(self.names["reasm_dead_fragment"])
            return None
        if ip.mf and n & 7:
            c.inc(self.names["reasm_bad_length"])  # only the last fragment may end off an 8-byte boundary
            return None
        if not n and ip.mf:
            c.inc(self.names["reasm_bad_length"])
            return None
        if header + end > 0xFFFF:
            c.inc(self.names["reasm_too_big"])
            if d is not None:
                self._kill(key, d)
            return None
        budget = self.memory
        if budget is not None and not budget.allows(cost):
            # refused before anything is evicted or created for it (no empty entry left behind)
            c.inc(self.names["reasm_mem_budget"])
            return None
        if d is None:
            if not self._make_room(cost):
                c.inc(self.names["reasm_mem_limit"])
                return None
            d = self.table[key] = _Datagram(now + self.timeout_s)
        # the last fragment fixes the length; everything must agree with it
        if not ip.mf:
            if d.total is not None and d.total != end:
                return self._inconsistent(key, d)
            if d.total is None and d.pieces and d.pieces[-1][1] > end:
                return self._inconsistent(key, d)  # earlier fragments reach past this "last" one
            d.total = end
        if d.total is not None and end > d.total:
            return self._inconsistent(key, d)
        starts, pieces = d.starts, d.pieces
        i = bisect_right(starts, start)
        if i and pieces[i - 1][1] > start or i < len(pieces) and pieces[i][0] < end:
            prev = pieces[i - 1] if i else None
            if prev is not None and prev[0] == start and prev[1] == end and prev[2] == ip.payload:
                c.inc(self.names["reasm_duplicate"])
                return None
            c.inc(self.names["reasm_overlap"])
            self._kill(key, d)
            return None
        if len(pieces) >= self.max_fragments:
            c.inc(self.names["reasm_too_many_fragments"])  # a datagram cut into slivers: give it up
            self._kill(key, d)
            return None
        if self.mem + cost > self.mem_limit and not self._make_room(cost, keep=key):
            c.inc(self.names["reasm_mem_limit"])
            self._drop(key, d)
            return None
        data = bytes(ip.payload)
        starts.insert(i, start)
        pieces.insert(i, (start, end, data))
        d.size += n
        d.mem += cost
        self.mem += cost
        if budget is not None:
            budget.charge("reasm", cost)
        if start == 0:
            d.first = ip._replace(payload=data)
        if d.total is None or d.size != d.total:
            return None
        # size == total, every piece inside 0..total, no overlaps: the pieces tile it exactly
        self._drop(key, d)
        first = d.first
        if first is None:  # cannot happen given the checks above; never deliver a headless datagram
            self.counters.inc(self.names["reasm_inconsistent"])
            return None
        payload = b"".join(p[2] for p in pieces)
        c.inc(self.names["reasm_ok"])
        return first._replace(payload=payload, mf=False, frag_offset=0)

    def _inconsistent(self, key: tuple[int, int, int, int], d: _Datagram) -> None:
        self.counters.inc(self.names["reasm_inconsistent"])
        self._kill(key, d)
        return None

    def _release(self, d: _Datagram) -> None:
        self.mem -= d.mem
        if self.memory is not None and d.mem:
            self.memory.uncharge("reasm", d.mem)
        d.mem = 0

    def _kill(self, key: tuple[int, int, int, int], d: _Datagram) -> None:
        """Drop what we hold; later fragments of the same datagram are dropped until the deadline."""
        self._release(d)
        d.pieces.clear()
        d.starts.clear()
        d.size = 0
        d.first = None
        d.dead = True

    def _drop(self, key: tuple[int, int, int, int], d: _Datagram) -> None:
        self._release(d)
        del self.table[key]

    def _make_room(self, need: int, keep: tuple[int, int, int, int] | None = None) -> bool:
        """Evict the oldest incomplete datagrams (never `keep`) until `need` more bytes fit, and,
        for a new datagram (keep None), one more slot."""
        if need > self.mem_limit:
            return False

        def fits() -> bool:
            slot_ok = keep is not None or len(self.table) < self.max_datagrams
            return self.mem + need <= self.mem_limit and slot_ok

        table = self.table
        while not fits():  # oldest first, looking only at the front (no copy of the table)
            front = iter(table)
            key = next(front, None)
            if key is not None and key == keep:
                key = next(front, None)
            if key is None:
                return False
            d = table[key]
            self._drop(key, d)
            if not d.dead:
                self.counters.inc(self.names["reasm_evicted"])
        return True

    def poll(self, now: float) -> None:
        t = self.table
        while t:
            key, d = next(iter(t.items()))
            if d.deadline > now:
                return
            self._drop(key, d)
            if d.dead:
                continue
            self.counters.inc(self.names["reasm_timeout"])
            if d.first is not None and self.on_timeout is not None:
                self.on_timeout(d.first, now)

    def poll_at(self) -> float | None:
        if not self.table:
            return None
        return next(iter(self.table.values())).deadline
