"""Path MTUs learned from ICMP fragmentation-needed (RFC 1191), per destination, bounded, aging."""

from __future__ import annotations

PMTU_MIN = 552  # Linux's ip_rt_min_pmtu: a smaller next-hop MTU is taken as 552, sent without DF
PMTU_MIN6 = 1280  # IPv6's minimum link MTU (RFC 8200 5): a Packet Too Big below it is taken as 1280
PMTU_EXPIRES_S = 600.0  # RFC 1191 6.3 (and Linux's ip_rt_mtu_expires): learned PMTUs age out
PMTU_CACHE_MAX = 1024  # destinations remembered; the oldest entry goes first


class PathMtuCache:
    """raddr -> (path MTU, expires at). Filled only from ICMP errors that quoted a segment of a
    connection still in flight, and bounded, so forged errors cost at most PMTU_CACHE_MAX entries."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[int, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, raddr: int) -> bool:
        return raddr in self._entries

    def get(self, raddr: int, now: float) -> int | None:
        """The learned path MTU to `raddr`, or None (never learned, or expired)."""
        entry = self._entries.get(raddr)
        if entry is None:
            return None
        if now < entry[1]:
            return entry[0]
        del self._entries[raddr]
        return None

    def learn(self, raddr: int, mtu: int, now: float, floor: int = PMTU_MIN) -> int:
        """Record a next-hop MTU (floored to `floor`: PMTU_MIN, PMTU_MIN6 for IPv6); returns the
        path MTU to use."""
        mtu = max(mtu, floor)
        entries = self._entries
        if raddr in entries:
            del entries[raddr]  # re-inserted below: insertion order is age order
        elif len(entries) >= PMTU_CACHE_MAX:
            del entries[next(iter(entries))]
        entries[raddr] = (mtu, now + PMTU_EXPIRES_S)
        return mtu
