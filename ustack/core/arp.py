"""ARP (RFC 826) for the ethernet medium: cache, resolution with retries, bounded wait queues.

The cache learns only what RFC 826 allows a host to learn: the sender of a request aimed at us,
replies to our own requests, and updates of entries we already hold. Unsolicited news about
addresses we never asked for is counted and ignored (like Linux with arp_accept=0).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..wire.arp import OP_REPLY, OP_REQUEST, ArpPacket
from ..wire.ethernet import BROADCAST_MAC, ETH_ARP, EthernetFrame

if TYPE_CHECKING:
    from .stack import Stack

ZERO_MAC = b"\0" * 6


class _Pending:
    __slots__ = ("tries", "next_at", "queue")

    def __init__(self, next_at: float) -> None:
        self.tries = 1
        self.next_at = next_at
        self.queue: deque[bytes] = deque()  # IPv4 packets waiting for the address


class ArpCache:
    def __init__(self, stack: Stack) -> None:
        cfg = stack.config
        self.stack = stack
        self.counters = stack.counters
        self.ttl_s = cfg.arp_cache_ttl_s
        self.refresh_s = min(cfg.arp_refresh_s, cfg.arp_cache_ttl_s)
        self.retry_s = cfg.arp_retry_s
        self.tries = cfg.arp_tries
        self.queue_limit = cfg.arp_queue_limit
        self.cache_limit = cfg.arp_cache_limit
        self.pending_limit = cfg.arp_pending_limit
        self.entries: dict[int, tuple[bytes, float]] = {}  # ip -> (mac, expires_at)
        self.pending: dict[int, _Pending] = {}
        self.refreshing: dict[int, float] = {}  # ip -> when the next unicast re-confirmation may go
        # called with every well-formed ARP packet before it is handled (RFC 5227 conflict
        # detection by the DHCP client: a probe's answer is not something the cache learns)
        self.listeners: list[Callable[[ArpPacket, float], None]] = []

    # ---- lookups ------------------------------------------------------------------------------
    def lookup(self, ip: int, now: float) -> bytes | None:
        """The MAC for `ip`, or None when unknown or expired. Using an entry close to its expiry
        sends a unicast request to re-confirm it (see `StackConfig.arp_refresh_s`)."""
        e = self.entries.get(ip)
        if e is None:
            return None
        mac, expires_at = e
        if now >= expires_at:
            del self.entries[ip]
            self.refreshing.pop(ip, None)
            self.counters.inc("arp.expired")
            return None
        if now >= expires_at - self.refresh_s and now >= self.refreshing.get(ip, now):
            self.refreshing[ip] = now + self.retry_s
            self._request(ip, mac)
            self.counters.inc("arp.refresh_out")
        return mac

    def add_static(self, ip: int, mac: bytes) -> None:
        self.entries[ip] = (bytes(mac), float("inf"))

    # ---- output -------------------------------------------------------------------------------
    def send_or_queue(self, next_hop: int, packet: bytes, now: float) -> None:
        """Frame `packet` for `next_hop`, resolving it first when needed.

        If resolution gives up, each waiting packet goes to `stack._unreachable`, which tells its
        transport HOST_UNREACH as if an ICMP host unreachable had arrived.
        """
        mac = self.lookup(next_hop, now)
        if mac is not None:
            self.stack._frame_out(mac, packet)
            return
        p = self.pending.get(next_hop)
        if p is None:
            if len(self.pending) >= self.pending_limit:
                self.counters.inc("arp.pending_overflow")
                return
            p = self.pending[next_hop] = _Pending(now + self.retry_s)
            self._request(next_hop)
        if len(p.queue) >= self.queue_limit:
            p.queue.popleft()
            self.counters.inc("arp.queue_overflow")
        p.queue.append(packet)
        self.counters.inc("arp.queued")

    def _request(self, ip: int, to: bytes = BROADCAST_MAC) -> None:
        s = self.stack
        arp = ArpPacket(OP_REQUEST, s.mac, s.addr, ZERO_MAC, ip).emit()
        s._raw_out(EthernetFrame.header(to, s.mac, ETH_ARP) + arp)
        self.counters.inc("arp.requests_out")

    def probe(self, ip: int) -> None:
        """An ARP probe for `ip` (RFC 5227 2.1.1: sender address 0.0.0.0, so no cache learns
        from it): whoever holds `ip` answers, and `listeners` see the answer."""
        s = self.stack
        arp = ArpPacket(OP_REQUEST, s.mac, 0, ZERO_MAC, ip).emit()
        s._raw_out(EthernetFrame.header(BROADCAST_MAC, s.mac, ETH_ARP) + arp)
        self.counters.inc("arp.probes_out")

    def announce(self) -> None:
        """Gratuitous ARP: a request for our own address (RFC 5227 announcement form)."""
        s = self.stack
        arp = ArpPacket(OP_REQUEST, s.mac, s.addr, ZERO_MAC, s.addr).emit()
        s._raw_out(EthernetFrame.header(BROADCAST_MAC, s.mac, ETH_ARP) + arp)
        self.counters.inc("arp.gratuitous_out")

    # ---- input --------------------------------------------------------------------------------
    def on_arp(self, arp: ArpPacket, now: float) -> None:
        s = self.stack
        c = self.counters
        if arp.op == OP_REQUEST:
            c.inc("arp.requests_in")
        else:
            c.inc("arp.replies_in")
        for listener in self.listeners:
            listener(arp, now)
        spa, sha = arp.spa, arp.sha
        if spa == s.addr and spa != 0 and sha != s.mac:
            c.inc("arp.addr_conflict")  # someone else claims our address: never learn it
            return
        if sha[0] & 1 or sha == ZERO_MAC:
            c.inc("arp.bad_sender")
            return
        for_us = arp.tpa == s.addr
        known = spa in self.entries or spa in self.pending
        # RFC 826 merge: update what we know; create only for a request aimed at us. A reply we
        # never asked for creates nothing (Linux arp_accept=0).
        if spa != 0 and (known or (for_us and arp.op == OP_REQUEST)):
            self._learn(spa, sha, now)
        elif arp.op == OP_REPLY:
            c.inc("arp.unsolicited")
        if arp.op == OP_REQUEST and for_us and spa != s.addr:
            reply = ArpPacket(OP_REPLY, s.mac, s.addr, sha, spa).emit()
            s._raw_out(EthernetFrame.header(sha, s.mac, ETH_ARP) + reply)
            c.inc("arp.replies_out")

    def _learn(self, ip: int, mac: bytes, now: float) -> None:
        entries = self.entries
        if ip not in entries and len(entries) >= self.cache_limit:
            oldest = next(iter(entries))
            del entries[oldest]
            self.refreshing.pop(oldest, None)
            self.counters.inc("arp.cache_evicted")
        self.refreshing.pop(ip, None)
        entries.pop(ip, None)  # re-insert: dict order stays oldest-first
        entries[ip] = (bytes(mac), now + self.ttl_s)
        p = self.pending.pop(ip, None)
        if p is not None:
            self.counters.inc("arp.resolved")
            for packet in p.queue:
                self.stack._frame_out(mac, packet)

    # ---- timers -------------------------------------------------------------------------------
    def poll(self, now: float) -> None:
        if not self.pending:
            return
        for ip in [ip for ip, p in self.pending.items() if now >= p.next_at]:
            p = self.pending[ip]
            if p.tries < self.tries:
                p.tries += 1
                p.next_at += self.retry_s
                if p.next_at <= now:
                    p.next_at = now + self.retry_s
                self._request(ip)
                continue
            del self.pending[ip]
            self.counters.inc("arp.resolve_failed")
            self.counters.inc("arp.queue_dropped", len(p.queue))
            for packet in p.queue:
                self.stack._unreachable(packet, now)

    def poll_at(self) -> float | None:
        if not self.pending:
            return None
        return min(p.next_at for p in self.pending.values())
