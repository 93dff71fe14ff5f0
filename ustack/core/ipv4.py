"""IPv4 input checks beyond the codec, and datagram identification (RFC 6864)."""

from __future__ import annotations

import random

OPT_EOL = 0
OPT_NOP = 1


def options_ok(opts: bytes) -> bool:
    """True when the option list is well formed (RFC 791 3.1): EOL, NOP, or type-length-value
    with 2 <= length and inside the header. We act on no option; we only refuse broken ones."""
    i, n = 0, len(opts)
    while i < n:
        t = opts[i]
        if t == OPT_EOL:
            return True
        if t == OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            return False
        length = opts[i + 1]
        if length < 2 or i + length > n:
            return False
        i += length
    return True


class IdentAllocator:
    """IP identification values (RFC 6864).

    Atomic datagrams (DF set, unfragmented) may carry any ID; non-atomic ones need IDs unique per
    (src, dst, protocol) within the MSL. One counter per destination, each starting at a random
    value, gives both: consecutive datagrams to a host never repeat an ID until 65536 later, and
    an observer cannot predict another destination's IDs. The table is bounded: when full it
    restarts with fresh random counters (the same destination then continues from a new random
    point, which keeps uniqueness with high probability).
    """

    __slots__ = ("rng", "ids", "limit")

    def __init__(self, rng: random.Random, limit: int = 4096) -> None:
        self.rng = rng
        self.ids: dict[int, int] = {}
        self.limit = limit

    def next(self, dst: int, count: int = 1) -> int:
        """The next ID for `dst`; `count` reserves that many in a row (a super-segment whose
        segments the device numbers consecutively)."""
        ids = self.ids
        v = ids.get(dst)
        if v is None:
            if len(ids) >= self.limit:
                ids.clear()
            v = self.rng.getrandbits(16)
        ids[dst] = (v + count) & 0xFFFF
        return v
