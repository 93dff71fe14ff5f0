"""Port tables: Windows bind semantics and ephemeral port selection (RFC 6056).

One `PortTable` per transport protocol. It knows nothing about sockets: an `owner` is any object
(a socket, a listener). Binding rules follow Windows (shared/winsock-behaviour.md items 11-15):

- the same exact addr:port twice -> ADDR_IN_USE (item 12);
- a specific address and 0.0.0.0 on one port coexist; demux prefers the specific one (item 13);
- SO_REUSEADDR only on the newcomer -> ACCESS (item 14, differs from Linux); on both -> both bind;
- a holder with SO_EXCLUSIVEADDRUSE blocks every overlapping bind with ACCESS, even with reuse.

Ports used by connections (`claim`, always on a specific local address) conflict with explicit
binds of that addr:port and of 0.0.0.0:port (Windows refuses a wildcard bind on a port a
connection uses: WSAEADDRINUSE), but not with other connections: their 4-tuples are checked by
the caller's `in_use`. A connection's port counts as held without SO_REUSEADDR, so a newcomer
with SO_REUSEADDR gets ACCESS (item 14: the first socket must have allowed sharing).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Any

from .errors import UsageError
from .reasons import Reason

ANY = 0


class Binding:
    """One bound local name. Returned by `bind`/`claim`, given back to `release`."""

    __slots__ = ("addr", "port", "owner", "reuse", "exclusive", "connection", "released", "table",
                 "twin")

    def __init__(self, addr: int, port: int, owner: Any, reuse: bool, exclusive: bool,
                 connection: bool, table: PortTable | None = None) -> None:
        self.addr = addr
        self.port = port
        self.owner = owner
        self.reuse = reuse
        self.exclusive = exclusive
        self.connection = connection  # taken by connect_port/claim, not by an explicit bind
        self.released = False
        self.table = table  # the PortTable holding it (release() goes there, whichever is asked)
        # a dual-mode socket's wildcard bind holds the port in both families' tables: the
        # IPv4 binding is the twin of the IPv6 one and is released with it
        self.twin: Binding | None = None

    def __repr__(self) -> str:
        kind = "conn" if self.connection else "bind"
        return f"Binding({self.addr:#010x}:{self.port} {kind} reuse={self.reuse} excl={self.exclusive})"


def _overlaps(a: int, b: int) -> bool:
    return a == b or a == ANY or b == ANY


class PortTable:
    """Bindings of one protocol, keyed by port."""

    def __init__(self, rng: random.Random, low: int = 49152, high: int = 65535,
                 addr_bytes: int = 4) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"bad ephemeral range {low}..{high}")
        self.addr_bytes = addr_bytes  # 4 for IPv4, 16 for IPv6 (the RFC 6056 hash input)
        self.low = low
        self.high = high
        self.rng = rng
        self._by_port: dict[int, list[Binding]] = {}
        # RFC 6056 algorithm 3: a secret key for F() and one global counter (next_ephemeral).
        self._secret = rng.getrandbits(128).to_bytes(16, "big")
        self._next_ephemeral = rng.getrandbits(16)

    # ---- explicit binds -------------------------------------------------------------------
    def bind(self, addr: int, port: int, owner: Any, reuse: bool = False,
             exclusive: bool = False) -> Binding:
        """Bind `owner` to addr:port (port 0: a random free ephemeral port)."""
        if reuse and exclusive:
            raise UsageError(Reason.INVALID, "SO_REUSEADDR and SO_EXCLUSIVEADDRUSE together")
        if not 0 <= port <= 65535:
            raise UsageError(Reason.INVALID, f"port {port}")
        if port == 0:
            port = self._free_port(addr)
        else:
            self._check(addr, port, reuse, exclusive, connection=False)
        b = Binding(addr, port, owner, reuse, exclusive, connection=False, table=self)
        self._by_port.setdefault(port, []).append(b)
        return b

    def claim(self, addr: int, port: int, owner: Any) -> Binding:
        """Record a port chosen by `connect_port` (or a connection's bound port) for a connection.

        Never fails against other connections (the 4-tuple is the caller's business) but does
        fail with ADDR_IN_USE against an explicit bind of the same addr:port.
        """
        for b in self._by_port.get(port, ()):
            if not b.connection and (b.addr == addr or b.addr == ANY):
                raise UsageError(Reason.ADDR_IN_USE, f"port {port} is bound")
        b = Binding(addr, port, owner, False, False, connection=True, table=self)
        self._by_port.setdefault(port, []).append(b)
        return b

    def release(self, b: Binding) -> None:
        """Forget a binding (idempotent), in whichever table holds it, and its twin."""
        table = b.table if b.table is not None else self
        table._forget(b)
        if b.twin is not None:
            b.twin.table._forget(b.twin)

    def _forget(self, b: Binding) -> None:
        if b.released:
            return
        b.released = True
        lst = self._by_port.get(b.port)
        if lst is None:
            return
        try:
            lst.remove(b)
        except ValueError:
            return
        if not lst:
            del self._by_port[b.port]

    def _check(self, addr: int, port: int, reuse: bool, exclusive: bool, connection: bool) -> None:
        """Windows' rules (Wine's sock.c test_reuseaddr, run on real Windows)."""
        for b in self._by_port.get(port, ()):
            if not _overlaps(b.addr, addr):
                continue
            if b.connection:
                # a connection's port, named exactly or through 0.0.0.0 (item 13's coexistence is
                # between explicit binds only); it never allowed sharing (item 14)
                if reuse and not exclusive:
                    raise UsageError(Reason.ACCESS, f"port {port} is used by a connection")
                raise UsageError(Reason.ADDR_IN_USE, f"port {port} is used by a connection")
            if b.addr != addr:  # 0.0.0.0 beside a specific address
                if b.exclusive and b.addr == ANY:
                    raise UsageError(Reason.ACCESS, f"port {port} is held exclusively on 0.0.0.0")
                if exclusive and addr == ANY:
                    raise UsageError(Reason.ADDR_IN_USE, f"port {port} is in use on an address")
                continue  # a specific address beside 0.0.0.0 coexists (item 13)
            if b.exclusive:
                if reuse:
                    raise UsageError(Reason.ACCESS, f"port {port} is held exclusively")
                raise UsageError(Reason.ADDR_IN_USE, f"port {port} is held exclusively")
            if exclusive:
                raise UsageError(Reason.ADDR_IN_USE, f"port {port} is in use")
            if reuse and b.reuse:
                continue  # both asked for SO_REUSEADDR
            if reuse:
                raise UsageError(Reason.ACCESS, f"port {port} is held without SO_REUSEADDR")
            raise UsageError(Reason.ADDR_IN_USE, f"port {port} is in use")

    def _free_port(self, addr: int) -> int:
        """A random port in low..high with no binding at all (collision-free).

        Random probes first (RFC 6056 algorithm 1), then a scan from a random start so that a
        nearly full range still finds the last free ports.
        """
        n = self.high - self.low + 1
        by_port = self._by_port
        for _ in range(min(n, 64)):
            port = self.low + self.rng.randrange(n)
            if port not in by_port:
                return port
        start = self.rng.randrange(n)
        for i in range(n):
            port = self.low + (start + i) % n
            if port not in by_port:
                return port
        raise UsageError(Reason.ADDR_IN_USE, "no free ephemeral port")

    # ---- queries ------------------------------------------------------------------------------
    def lookup(self, addr: int, port: int) -> list[Any]:
        """Owners bound to addr:port for demux: exact address first, then 0.0.0.0."""
        lst = self._by_port.get(port)
        if not lst:
            return []
        if len(lst) == 1:  # the common case, without building two lists
            b = lst[0]
            if b.connection or (b.addr != ANY and (b.addr != addr or addr == ANY)):
                return []
            return [b.owner]
        exact = [b.owner for b in lst if b.addr == addr and addr != ANY and not b.connection]
        wild = [b.owner for b in lst if b.addr == ANY and not b.connection]
        return exact + wild

    def bindings(self, port: int) -> list[Binding]:
        return list(self._by_port.get(port, ()))

    def is_bound(self, port: int) -> bool:
        """True when an explicit bind (not a connection) holds `port` on any address."""
        return any(not b.connection for b in self._by_port.get(port, ()))

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_port.values())

    # ---- connections (RFC 6056 algorithm 3) ---------------------------------------------------
    def _offset(self, laddr: int, raddr: int, rport: int) -> int:
        n = self.addr_bytes
        h = hashlib.blake2b(
            laddr.to_bytes(n, "big") + raddr.to_bytes(n, "big") + rport.to_bytes(2, "big"),
            key=self._secret, digest_size=4,
        )
        return int.from_bytes(h.digest(), "big")

    def connect_port(self, laddr: int, raddr: int, rport: int,
                     in_use: Callable[[int], bool] | None = None) -> int:
        """An ephemeral port for a connection from laddr to raddr:rport.

        RFC 6056 algorithm 3: port = low + (F(laddr, raddr, rport, secret) + next_ephemeral) mod N,
        next_ephemeral incremented on every try. Skips ports held by explicit binds (on laddr or
        0.0.0.0, or any address when laddr is 0.0.0.0) and ports where `in_use(port)` says the
        4-tuple is taken. Raises UsageError(ADDR_IN_USE) when every port is unusable.
        """
        n = self.high - self.low + 1
        offset = self._offset(laddr, raddr, rport)
        by_port = self._by_port
        for _ in range(n):
            port = self.low + (offset + self._next_ephemeral) % n
            self._next_ephemeral = (self._next_ephemeral + 1) & 0xFFFFFFFF
            lst = by_port.get(port)
            if lst and any(not b.connection and _overlaps(b.addr, laddr) for b in lst):
                continue
            if in_use is not None and in_use(port):
                continue
            return port
        raise UsageError(Reason.ADDR_IN_USE, "ephemeral ports exhausted")


def bind_dual(table6: PortTable, table4: PortTable, port: int, owner: Any, reuse: bool = False,
              exclusive: bool = False, tries: int = 64) -> Binding:
    """A dual-mode socket's wildcard bind: [::]:port in `table6` and 0.0.0.0:port in `table4`
    (Windows opens an endpoint in both stacks and fails if the port is in use in either). Port 0
    picks a port free in both (random, `tries` attempts). Returns the IPv6 binding, whose twin
    is the IPv4 one; nothing stays held when it raises."""
    for _ in range(tries if port == 0 else 1):
        b6 = table6.bind(ANY, port, owner, reuse, exclusive)
        try:
            b4 = table4.bind(ANY, b6.port, owner, reuse, exclusive)
        except UsageError:
            table6.release(b6)
            if port:
                raise
            continue
        b6.twin = b4
        return b6
    raise UsageError(Reason.ADDR_IN_USE, "no ephemeral port free in both families")
