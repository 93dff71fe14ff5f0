"""Named counters: every drop and every notable event has one ("udp.no_port", "ipv4.bad_checksum").

A counter name is "<protocol>.<what>"; `Malformed.reason` from the codecs is used as-is, so a codec
rejection and its counter share a name. Increments are a dict update (the hot path uses `inc`).
"""

from __future__ import annotations

from collections import defaultdict


class Counters:
    __slots__ = ("_c",)

    def __init__(self) -> None:
        self._c: defaultdict[str, int] = defaultdict(int)

    def inc(self, name: str, n: int = 1) -> None:
        self._c[name] += n

    def get(self, name: str) -> int:
        return self._c.get(name, 0)

    def __getitem__(self, name: str) -> int:
        return self._c.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter that has been touched (name -> value)."""
        return dict(self._c)

    def table(self) -> list[tuple[str, str, int]]:
        """(protocol, name within the protocol, value), grouped by protocol like `netstat -s`.

        Protocols in stack order (ethernet, arp, ipv4, icmp, udp, tcp, then the rest), names sorted
        within each. "ipv4.bad_checksum" appears as ("ipv4", "bad_checksum", n).
        """
        order = {p: i for i, p in enumerate(("stack", "ethernet", "arp", "ipv4", "icmp", "udp", "tcp"))}
        rows = []
        for full, value in self._c.items():
            proto, _, name = full.partition(".")
            rows.append((proto, name or proto, value))
        rows.sort(key=lambda r: (order.get(r[0], len(order)), r[0], r[1]))
        return rows

    def __repr__(self) -> str:
        return f"Counters({dict(sorted(self._c.items()))})"
