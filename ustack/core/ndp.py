"""Neighbor Discovery (RFC 4861) on the ethernet medium: the neighbour cache and its states,
address resolution with bounded queues (as ARP's), unreachability detection, and the NS/NA/RA
messages. Address autoconfiguration (DAD, RS, SLAAC) is `core/addrconf.py`; it uses `send_ns`
and `send_rs` here and gets told of conflicts and router advertisements.

States (7.3.2): INCOMPLETE (multicast NS every retrans_s, nd_max_multicast_solicit of them,
packets queued), REACHABLE (confirmed within reachable time), STALE (unconfirmed: used as is),
DELAY (used while stale: wait nd_delay_s for an upper-layer confirmation that never comes
here), PROBE (unicast NS every retrans_s, nd_max_unicast_solicit, then the entry is removed).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import TYPE_CHECKING

from ..wire import icmpv6 as I
from ..wire.errors import Malformed
from ..wire.ethernet import ETH_IPV6, EthernetFrame
from ..wire.icmpv6 import Icmpv6Message
from ..wire.ipv6 import Ipv6Packet, is_multicast6
from ..wire.ndp import NdOptions, NeighborAdvert, NeighborSolicit, RouterAdvert, RouterSolicit
from .addrconf import ALL_NODES, group_mac, is_link_local, solicited_node
from .reasons import Reason

if TYPE_CHECKING:
    from .ipv6 import Ipv6Layer
    from .stack import Stack

INCOMPLETE, REACHABLE, STALE, DELAY, PROBE = "INCOMPLETE", "REACHABLE", "STALE", "DELAY", "PROBE"
ALL_ROUTERS = 0xFF020000000000000000000000000002
ND_HOP_LIMIT = 255  # RFC 4861: sent with 255, received only with 255 (not from off-link)


class Neighbor:
    __slots__ = ("state", "mac", "router", "queue", "tries", "next_at", "reachable_until")

    def __init__(self, state: str, mac: bytes | None) -> None:
        self.state = state
        self.mac = mac
        self.router = False
        self.queue: deque[bytes] = deque()
        self.tries = 0
        self.next_at: float | None = None  # INCOMPLETE/DELAY/PROBE timer
        self.reachable_until = 0.0


class Ndp:
    """Neighbour cache and NDP messages (`stack.ipv6.ndp`, ethernet only)."""

    def __init__(self, stack: Stack, layer: Ipv6Layer) -> None:
        cfg = stack.config
        self.stack = stack
        self.layer = layer
        self.counters = stack.counters
        self.retrans_s = cfg.nd_retrans_s
        self.base_reachable_s = cfg.nd_reachable_s
        self.reachable_s = self._random_reachable()
        self.delay_s = cfg.nd_delay_s
        self.max_multicast = cfg.nd_max_multicast_solicit
        self.max_unicast = cfg.nd_max_unicast_solicit
        self.queue_limit = cfg.nd_queue_limit
        self.cache_limit = cfg.nd_cache_limit
        self.pending_limit = cfg.nd_pending_limit
        self.neighbors: OrderedDict[int, Neighbor] = OrderedDict()
        self.timers: set[int] = set()  # neighbours with a timer (INCOMPLETE, DELAY, PROBE)

    def _random_reachable(self) -> float:
        # 6.3.2: ReachableTime uniformly in 0.5..1.5 times BaseReachableTime
        return self.base_reachable_s * (0.5 + self.stack.rng.random())

    # ---- output -------------------------------------------------------------------------------
    def send_or_queue(self, next_hop: int, pkt: bytes, now: float) -> None:
        """Frame `pkt` for `next_hop`, resolving it first (queued, bounded) when unknown."""
        if is_multicast6(next_hop):
            self.frame_out(group_mac(next_hop), pkt)
            return
        n = self.neighbors.get(next_hop)
        c = self.counters
        if n is None:
            if sum(1 for x in self.timers if self.neighbors[x].state == INCOMPLETE) >= self.pending_limit:
                c.inc("ndp.pending_overflow")
                return
            n = self._create(next_hop, INCOMPLETE, None)
            n.tries = 1
            n.next_at = now + self.retrans_s
            self.timers.add(next_hop)
            self.send_ns(next_hop, now, src=_src_of(pkt))
        if n.state == INCOMPLETE:
            if len(n.queue) >= self.queue_limit:
                n.queue.popleft()
                c.inc("ndp.queue_overflow")
            n.queue.append(pkt)
            c.inc("ndp.queued")
            return
        if n.state == REACHABLE and now >= n.reachable_until:
            n.state = STALE
        if n.state == STALE:  # 7.3.3: a packet to a stale neighbour starts the delay timer
            n.state = DELAY
            n.next_at = now + self.delay_s
            self.timers.add(next_hop)
        self.frame_out(n.mac, pkt)  # type: ignore[arg-type]

    def frame_out(self, mac: bytes, pkt: bytes) -> None:
        s = self.stack
        s.frame_out_raw(EthernetFrame.header(mac, s.mac, ETH_IPV6) + pkt)

    def send_ns(self, target: int, now: float, src: int | None = None, unicast_to: int | None = None,
                dad: bool = False) -> None:
        """A neighbour solicitation for `target`: to its solicited-node group, or `unicast_to`
        (a probe); `dad`: from :: without a link-layer option (RFC 4862 5.4.2)."""
        addrs = self.layer.addrs
        if dad:
            src = 0
        elif src is None or not addrs.is_own(src):
            src = addrs.select_source(target) or addrs.link_local()
            if src is None:
                self.counters.inc("ndp.ns_no_source")
                return
        opts = NdOptions() if src == 0 else NdOptions(slla=self.stack.mac)
        dst = unicast_to if unicast_to is not None else solicited_node(target)
        msg = NeighborSolicit(target, opts).message()
        self._send(dst, msg, src, now, self.neighbors[target].mac if unicast_to is not None else None)
        self.counters.inc("ndp.dad_ns_out" if dad else "ndp.ns_out")

    def send_rs(self, now: float) -> None:
        src = self.layer.addrs.link_local() or 0  # RFC 4861 6.3.7: :: before one is usable
        opts = NdOptions() if src == 0 else NdOptions(slla=self.stack.mac)
        self._send(ALL_ROUTERS, RouterSolicit(opts).message(), src, now)
        self.counters.inc("ndp.rs_out")

    def _send(self, dst: int, msg: Icmpv6Message, src: int, now: float, mac: bytes | None = None) -> None:
        """An NDP message straight onto the link (hop limit 255; never queued for resolution)."""
        from ..wire.ipv6 import NH_ICMPV6, quick_header6

        body = msg.emit(src, dst)
        pkt = quick_header6(src, dst, NH_ICMPV6, len(body), ND_HOP_LIMIT) + body
        if mac is None:
            if is_multicast6(dst):
                mac = group_mac(dst)
            else:
                n = self.neighbors.get(dst)
                if n is None or n.mac is None:
                    self.counters.inc("ndp.no_mac_for_reply")
                    return
                mac = n.mac
        self.frame_out(mac, pkt)
        self.counters.inc("icmpv6.out")

    # ---- input --------------------------------------------------------------------------------
    def on_message(self, ip: Ipv6Packet, msg: Icmpv6Message, now: float) -> None:
        c = self.counters
        if ip.hop_limit != ND_HOP_LIMIT or msg.code != 0:
            c.inc("ndp.bad_hop_limit" if ip.hop_limit != ND_HOP_LIMIT else "ndp.bad_code")
            return  # 7.1.1: not from this link, or not a valid ND message
        typ = msg.type
        try:
            if typ == I.NEIGHBOR_SOLICIT:
                self._on_ns(ip, NeighborSolicit.parse(msg), now)
            elif typ == I.NEIGHBOR_ADVERT:
                self._on_na(ip, NeighborAdvert.parse(msg), now)
            elif typ == I.ROUTER_ADVERT:
                self._on_ra(ip, RouterAdvert.parse(msg), now)
            elif typ == I.ROUTER_SOLICIT:
                c.inc("ndp.rs_ignored")  # 6.2.6: hosts discard router solicitations
            else:
                c.inc("ndp.redirect_ignored")  # one interface: nothing better to redirect to
        except Malformed as e:
            c.inc(e.reason)

    def _on_ns(self, ip: Ipv6Packet, ns: NeighborSolicit, now: float) -> None:
        c = self.counters
        c.inc("ndp.ns_in")
        addrs = self.layer.addrs
        target = ns.target
        if is_multicast6(target):
            c.inc("ndp.bad_target")
            return
        if ip.src == 0 and (ip.dst != solicited_node(target) or ns.options.slla is not None):
            c.inc("ndp.bad_dad_ns")  # 7.1.1: a DAD solicitation goes to the solicited-node group
            return
        if addrs.is_tentative(target):
            if ip.src == 0:  # RFC 4862 5.4.3: someone else is doing DAD for it too
                addrs.duplicate(target, now)
            else:
                c.inc("ndp.ns_for_tentative")  # silently discarded
            return
        if not addrs.accepts(target):
            c.inc("ndp.ns_not_ours")
            return
        if ip.src == 0:
            # 7.2.4: answer a DAD probe for our address to all-nodes (the prober learns it is taken)
            na = NeighborAdvert(target, False, False, True, NdOptions(tlla=self.stack.mac))
            self._send(ALL_NODES, na.message(), target, now)
            c.inc("ndp.na_out")
            return
        if ns.options.slla is not None:
            self._learn(ip.src, ns.options.slla, now)
        n = self.neighbors.get(ip.src)
        if n is None or n.mac is None:
            c.inc("ndp.ns_without_slla")  # unicast NS without a link-layer option: reply needs one
            return
        na = NeighborAdvert(target, False, True, True, NdOptions(tlla=self.stack.mac))
        self._send(ip.src, na.message(), target, now, n.mac)
        c.inc("ndp.na_out")

    def _on_na(self, ip: Ipv6Packet, na: NeighborAdvert, now: float) -> None:
        c = self.counters
        c.inc("ndp.na_in")
        addrs = self.layer.addrs
        target = na.target
        if is_multicast6(target) or (is_multicast6(ip.dst) and na.solicited):
            c.inc("ndp.bad_na")  # 7.1.2
            return
        if addrs.is_tentative(target):
            addrs.duplicate(target, now)  # RFC 4862 5.4.4: someone already has it
            return
        if target in addrs.addresses:
            c.inc("ndp.na_for_our_address")  # a conflict on an assigned address: logged only
            return
        n = self.neighbors.get(target)
        if n is None:
            c.inc("ndp.na_unsolicited")  # 7.2.5: no entry, nothing created
            return
        mac = na.options.tlla
        if n.state == INCOMPLETE:
            if mac is None:
                c.inc("ndp.na_without_tlla")
                return
            self._set(target, n, mac, REACHABLE if na.solicited else STALE, now)
        else:
            changed = mac is not None and mac != n.mac
            if not na.override and changed:
                if n.state == REACHABLE:
                    n.state = STALE
                c.inc("ndp.na_no_override")
            else:
                if mac is not None:
                    n.mac = mac
                if na.solicited:
                    self._set(target, n, n.mac, REACHABLE, now)  # type: ignore[arg-type]
                elif changed:
                    self._set(target, n, n.mac, STALE, now)  # type: ignore[arg-type]
        if n.router and not na.router:
            self.layer.addrs.routers.pop(target, None)  # 7.2.5: no longer a router
            c.inc("ndp.router_gone")
        n.router = na.router

    def _on_ra(self, ip: Ipv6Packet, ra: RouterAdvert, now: float) -> None:
        c = self.counters
        c.inc("ndp.ra_in")
        if not is_link_local(ip.src) or is_multicast6(ip.src):
            c.inc("ndp.ra_bad_source")  # 6.1.2: a router's link-local address, nothing else
            return
        layer = self.layer
        if ra.hop_limit:
            layer.hop_limit = ra.hop_limit
        if ra.reachable_ms and ra.reachable_ms / 1000 != self.base_reachable_s:
            self.base_reachable_s = ra.reachable_ms / 1000
            self.reachable_s = self._random_reachable()
        if ra.retrans_ms:
            self.retrans_s = ra.retrans_ms / 1000
        if ra.options.slla is not None:
            self._learn(ip.src, ra.options.slla, now)
        n = self.neighbors.get(ip.src)
        if n is not None:
            n.router = True
        mtu = ra.options.mtu
        if mtu is not None:
            if 1280 <= mtu <= self.stack.mtu:
                layer.link_mtu = mtu
                c.inc("ndp.ra_mtu")
            else:
                c.inc("ndp.ra_bad_mtu")
        layer.addrs.on_router_advert(ip.src, ra, now)

    # ---- the cache ------------------------------------------------------------------------------
    def _create(self, ip: int, state: str, mac: bytes | None) -> Neighbor:
        nb = self.neighbors
        if len(nb) >= self.cache_limit:
            for old, e in nb.items():  # the oldest entry nobody waits on
                if e.state != INCOMPLETE:
                    del nb[old]
                    self.timers.discard(old)
                    self.counters.inc("ndp.cache_evicted")
                    break
        n = nb[ip] = Neighbor(state, mac)
        return n

    def _learn(self, ip: int, mac: bytes, now: float) -> None:
        """A link-layer address heard in an NS or RA (7.2.3, 6.3.4): STALE when new or changed."""
        if mac[0] & 1:
            self.counters.inc("ndp.bad_lladdr")
            return
        n = self.neighbors.get(ip)
        if n is None:
            n = self._create(ip, STALE, mac)
            self.counters.inc("ndp.learned")
            return
        if n.state == INCOMPLETE:
            self._set(ip, n, mac, STALE, now)
        elif n.mac != mac:
            self._set(ip, n, mac, STALE, now)

    def _set(self, ip: int, n: Neighbor, mac: bytes, state: str, now: float) -> None:
        n.mac = mac
        n.state = state
        n.tries = 0
        n.next_at = None
        self.timers.discard(ip)
        if state == REACHABLE:
            n.reachable_until = now + self.reachable_s
        if n.queue:
            self.counters.inc("ndp.resolved")
            q, n.queue = n.queue, deque()
            for pkt in q:
                self.frame_out(mac, pkt)

    def lookup(self, ip: int) -> Neighbor | None:
        return self.neighbors.get(ip)

    # ---- timers -------------------------------------------------------------------------------
    def poll(self, now: float) -> None:
        for ip in [ip for ip in self.timers if self.neighbors[ip].next_at is not None
                   and self.neighbors[ip].next_at <= now]:  # type: ignore[operator]
            n = self.neighbors[ip]
            if n.state == INCOMPLETE:
                if n.tries < self.max_multicast:
                    n.tries += 1
                    n.next_at = now + self.retrans_s
                    self.send_ns(ip, now)
                    continue
                self._fail(ip, n, now)
            elif n.state == DELAY:
                n.state = PROBE  # 7.3.3: no confirmation while delayed: probe by unicast
                n.tries = 1
                n.next_at = now + self.retrans_s
                self.send_ns(ip, now, unicast_to=ip)
            elif n.state == PROBE:
                if n.tries < self.max_unicast:
                    n.tries += 1
                    n.next_at = now + self.retrans_s
                    self.send_ns(ip, now, unicast_to=ip)
                    continue
                self._fail(ip, n, now)
            else:
                self.timers.discard(ip)

    def _fail(self, ip: int, n: Neighbor, now: float) -> None:
        """Resolution or probing gave up: the entry goes, waiting packets are reported to their
        transports as an ICMPv6 address unreachable would (7.2.2, 7.3.3)."""
        del self.neighbors[ip]
        self.timers.discard(ip)
        c = self.counters
        c.inc("ndp.resolve_failed" if n.state == INCOMPLETE else "ndp.unreachable")
        self.layer.addrs.routers.pop(ip, None)
        c.inc("ndp.queue_dropped", len(n.queue))
        for pkt in n.queue:
            self.layer.report_unreachable(pkt, Reason.HOST_UNREACH, now)

    def poll_at(self) -> float | None:
        best = None
        for ip in self.timers:
            t = self.neighbors[ip].next_at
            if t is not None and (best is None or t < best):
                best = t
        return best


def _src_of(pkt: bytes) -> int:
    return int.from_bytes(pkt[8:24], "big")
