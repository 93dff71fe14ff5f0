"""IPv6 (RFC 8200) beside IPv4: receive checks, delivery to transports, and `send`.

The stack hands every IPv6 packet (TUN version nibble 6, TAP ethertype 0x86DD) to
`Ipv6Layer.receive` with the per-packet flags as a value in `rx` (core/rx.py). Addresses
(link-local, static, SLAAC) live in `core/addrconf.py`; neighbour discovery on TAP in
`core/ndp.py`; ICMPv6 in `core/icmpv6.py`; reassembly is `core/frag.py`'s.

Routing of a single-interface host: on TUN (a point-to-point link, no NDP) every destination
goes to the device; on TAP link-local and multicast destinations and on-link prefixes go
straight to their neighbour, the rest to a default router (from router advertisements).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..wire import icmpv6 as I6
from ..wire.errors import Malformed
from ..wire.ipv6 import (
    FRAG_HEADER_LEN,
    HEADER_LEN,
    MAX_PAYLOAD,
    MIN_MTU,
    NH_HOP_BY_HOP,
    NH_ICMPV6,
    NH_NONE,
    Ipv6Packet,
    Ipv6ParamProblem,
    is_multicast6,
    quick_header6,
    upper_layer,
)
from .addrconf import LOOPBACK6, AddrConf, is_link_local
from .frag import Reassembler
from .ndp import Ndp
from .reasons import Reason
from .rx import RX_LINK_BROADCAST, RX_TRUSTED

if TYPE_CHECKING:
    from .icmpv6 import Icmpv6Layer
    from .stack import Stack

ALL_NODES = 0xFF020000000000000000000000000001  # ff02::1
ALL_ROUTERS = 0xFF020000000000000000000000000002  # ff02::2


class Ipv6Layer:
    """The IPv6 network layer of one stack (`stack.ipv6`)."""

    def __init__(self, stack: Stack) -> None:
        cfg = stack.config
        self.stack = stack
        self.counters = stack.counters
        self._cnt = stack.counters.raw
        self.hop_limit = cfg.hop_limit
        # RFC 8200 5: IPv6 needs a link MTU of 1280; a smaller device carries no IPv6 at all
        self.link_mtu = stack.mtu
        wanted = cfg.ipv6 if cfg.ipv6 is not None else (
            not stack.ethernet or cfg.addr6 is not None or cfg.slaac)
        self.enabled = wanted and stack.mtu >= MIN_MTU
        self.addrs = AddrConf(stack, self)
        self.ident = stack.rng.getrandbits(32)  # fragment identification (RFC 7739: per-packet
        # random would do too; a counter from a random start is what Linux uses per destination)
        self.reassembler = Reassembler(
            stack.counters, cfg.reassembly_timeout_s, cfg.reassembly_mem_limit,
            cfg.reassembly_max_datagrams, self._reassembly_timeout,
            max_fragments=cfg.reassembly_max_fragments, memory=stack.memory, prefix="ipv6",
        )
        self.icmp: Icmpv6Layer | None = None  # set by the stack once registered
        # a send through the device: (next hop, packet bytes, now) -> None: NDP on TAP
        self.ndp: Ndp | None = None
        self._link_out: Callable[[int, bytes, float], None] = self._tun_out
        if stack.ethernet:
            self.ndp = Ndp(stack, self)
            self._link_out = self.ndp.send_or_queue
        # On TUN there is no DAD (a point-to-point link: RFC 4862 5.4 needs a multicast link);
        # on TAP addresses stay tentative until DAD ran (from `start`).
        self.addrs.configure(0.0, dad=self.ndp is not None and cfg.dad_transmits > 0)

    def start(self, now: float) -> None:
        """DAD for the tentative addresses and, with `slaac`, router solicitation (TAP)."""
        if self.enabled:
            self.addrs.start(now)

    # ---- receive ------------------------------------------------------------------------------
    def receive(self, buf: bytes | memoryview, now: float, rx: int) -> None:
        """One IPv6 packet from the device. Never raises on bad input: counted drops.
        `rx`: RX_TRUSTED (checksum offload), RX_LINK_BROADCAST (link-layer multicast frame)."""
        cnt = self._cnt
        cnt["ipv6.in"] += 1
        if not self.enabled:
            cnt["ipv6.disabled"] += 1
            return
        try:
            ip = Ipv6Packet.parse(buf)
        except Ipv6ParamProblem as e:
            cnt[e.reason] += 1
            self._param_problem(buf, e.code, e.pointer, e.to_multicast, rx, now)
            return
        except Malformed as e:
            cnt[e.reason] += 1
            return
        src, dst = ip.src, ip.dst
        if is_multicast6(src):
            cnt["ipv6.bad_source"] += 1  # RFC 4291 2.7: never a source
            return
        if src == LOOPBACK6 or dst == LOOPBACK6:
            cnt["ipv6.martian_loopback"] += 1  # RFC 4291 2.5.3: ::1 never leaves a node
            return
        addrs = self.addrs
        if is_multicast6(dst):
            if not addrs.in_group(dst):
                cnt["ipv6.not_member"] += 1
                return
        elif not addrs.accepts(dst):
            p = ip.payload
            if addrs.is_tentative(dst) and ip.proto == NH_ICMPV6 and p and p[0] in (
                    I6.NEIGHBOR_SOLICIT, I6.NEIGHBOR_ADVERT):
                pass  # RFC 4862 5.4: only NS/NA reach a tentative address (for DAD)
            else:
                cnt["ipv6.not_for_us"] += 1
                return
        if src and addrs.is_own(src) and not rx & RX_LINK_BROADCAST:
            cnt["ipv6.martian_own_source"] += 1
            return
        if ip.frag_id is not None:
            if ip.mf and not ip.frag_offset and upper_layer(ip.payload, ip.proto, 0) is None:
                # RFC 8200 4.5 / RFC 7112: a first fragment must hold every header through the
                # upper-layer one; otherwise it is dropped with a Parameter Problem code 3
                cnt["ipv6.incomplete_chain"] += 1
                self._param_problem(buf, I6.PP_INCOMPLETE_CHAIN, 0, False, rx, now)
                return
            if ip.is_fragment:
                rx &= ~RX_TRUSTED  # offload never covers fragments: verify the whole
                whole = self.reassembler.add(ip, now)
                if whole is None:
                    return
            else:
                cnt["ipv6.atomic_fragment"] += 1  # RFC 6946: processed in isolation
                whole = ip
            try:
                ip = whole.reassembled(whole.payload)
            except Ipv6ParamProblem as e:
                cnt[e.reason] += 1
                self._param_problem(whole.emit(), e.code, e.pointer, e.to_multicast, rx, now)
                return
            except Malformed as e:
                cnt[e.reason] += 1
                return
        self.deliver(ip, now, rx, buf)

    def deliver(self, ip: Ipv6Packet, now: float, rx: int = 0,
                raw: bytes | memoryview | None = None) -> None:
        """Hand a whole packet to its transport: `on_packet(ip6, now, rx)` for a transport whose
        class sets `ipv6 = True` (the others never see an Ipv6Packet: the packet is answered
        as an unknown next header)."""
        cnt = self._cnt
        proto = ip.proto
        if proto == NH_NONE:
            cnt["ipv6.no_next_header"] += 1
            return
        t = self.stack.transports.get(proto)
        if t is None or not (proto == NH_ICMPV6 or getattr(t, "ipv6", False)):
            cnt["ipv6.unknown_next_header"] += 1
            quote = raw if raw is not None and ip.frag_id is None else ip.emit()
            self._param_problem(quote, I6.PP_NEXT_HEADER, ip.nh_at, False, rx, now)
            return
        cnt["ipv6.delivered"] += 1
        t.on_packet(ip, now, rx)

    def _param_problem(self, raw: bytes | memoryview, code: int, pointer: int, to_multicast: bool,
                       rx: int, now: float) -> None:
        if self.icmp is not None:
            self.icmp.send_error(I6.PARAM_PROBLEM, code, raw, now, pointer, rx=rx,
                                 to_multicast=to_multicast)

    def _reassembly_timeout(self, first: Ipv6Packet, now: float) -> None:
        # RFC 8200 4.5: time exceeded (code 1) only when the first fragment arrived
        if self.icmp is not None:
            self.icmp.send_error(I6.TIME_EXCEEDED, I6.TE_REASSEMBLY, first.emit(), now)

    # ---- send ---------------------------------------------------------------------------------
    def send(self, dst: int, proto: int, payload: bytes | bytearray | memoryview, now: float,
             src: int | None = None, hop_limit: int | None = None, tclass: int = 0, flow: int = 0,
             dontfrag: bool = False, hop_by_hop: bytes = b"", loop: bool = False) -> Reason | None:
        """Send one upper-layer datagram to `dst`. None when it left (or waits for NDP or the
        loopback queue); otherwise the Reason nothing was sent: MSG_SIZE (over 65535 bytes),
        NET_UNREACH (no route or IPv6 off), ADDR_NOT_AVAIL (`src` not ours, or no source
        address for `dst`), FRAG_NEEDED (`dontfrag` and larger than the path MTU). `loop`: a
        multicast datagram is also delivered to us when we are in the group (as send_ip's)."""
        cnt = self._cnt
        n = len(payload)
        if not self.enabled:
            cnt["ipv6.disabled_out"] += 1
            return Reason.NET_UNREACH
        if n > MAX_PAYLOAD:
            cnt["ipv6.out_too_big"] += 1
            return Reason.MSG_SIZE
        if hop_limit is None:
            hop_limit = self.hop_limit
        addrs = self.addrs
        if hop_by_hop:
            # options after the header's 2 bytes, padded (PadN) to a multiple of 8 (RFC 8200 4.3)
            opts = bytes(hop_by_hop)
            pad = -(len(opts) + 2) % 8
            if pad == 1:
                opts += b"\0"
            elif pad:
                opts += bytes((1, pad - 2)) + bytes(pad - 2)
            payload = bytes((proto, (len(opts) + 2) // 8 - 1)) + opts + bytes(payload)
            proto = NH_HOP_BY_HOP
            n = len(payload)
        if dst == LOOPBACK6 or addrs.is_own(dst):
            if src is None:
                src = dst
            cnt["ipv6.loopback_out"] += 1
            self.stack.loop_packet(Ipv6Packet(src, dst, proto, bytes(payload), hop_limit, tclass, flow))
            return None
        if src is None:
            src = addrs.select_source(dst)
            if src is None:
                cnt["ipv6.no_source"] += 1
                return Reason.ADDR_NOT_AVAIL if is_link_local(dst) else Reason.NET_UNREACH
        elif src != 0 and not addrs.is_own(src):  # :: is allowed (DAD, RS)
            cnt["ipv6.bad_source_out"] += 1
            return Reason.ADDR_NOT_AVAIL
        next_hop = self.next_hop(dst)
        if next_hop is None:
            cnt["ipv6.no_route"] += 1
            return Reason.NET_UNREACH
        mtu = self.path_mtu(dst, now)
        if HEADER_LEN + n <= mtu:
            self._link_out(next_hop, quick_header6(src, dst, proto, n, hop_limit, tclass, flow)
                           + bytes(payload), now)
        elif dontfrag:
            cnt["ipv6.too_big_local"] += 1
            return Reason.FRAG_NEEDED
        else:
            frags = self.fragment(src, dst, proto, payload, mtu, hop_limit, tclass, flow)
            cnt["ipv6.fragmented"] += 1
            cnt["ipv6.fragments_out"] += len(frags)
            for f in frags:
                self._link_out(next_hop, f, now)
        cnt["ipv6.out"] += 1
        if loop and is_multicast6(dst) and addrs.in_group(dst):
            cnt["ipv6.multicast_looped"] += 1  # IPV6_MULTICAST_LOOP: our own members hear it
            self.stack.loop_packet(Ipv6Packet(src, dst, proto, bytes(payload), hop_limit, tclass, flow))
        return None

    def fragment(self, src: int, dst: int, proto: int, payload: bytes | bytearray | memoryview,
                 mtu: int, hop_limit: int, tclass: int = 0, flow: int = 0) -> list[bytes]:
        """Source fragmentation (RFC 8200 4.5): fragments of at most `mtu` bytes, every one but
        the last a multiple of 8 bytes of data, one identification per datagram."""
        step = (max(mtu, MIN_MTU) - HEADER_LEN - FRAG_HEADER_LEN) & ~7
        self.ident = (self.ident + 1) & 0xFFFFFFFF
        ident = self.ident
        mv = memoryview(payload)
        n = len(mv)
        out = []
        for off in range(0, n, step):
            chunk = mv[off:off + step]
            hdr = Ipv6Packet(src, dst, proto, b"", hop_limit, tclass, flow, off, off + step < n,
                             ident).header(len(chunk))
            out.append(hdr + bytes(chunk))
        return out

    def route(self, dst: int) -> tuple[int, int] | None:
        """(source, next hop) for `dst`, None when there is no route or no source for it."""
        addrs = self.addrs
        if dst == LOOPBACK6 or addrs.is_own(dst):
            return dst, dst
        src = addrs.select_source(dst)
        hop = self.next_hop(dst)
        if src is None or hop is None or not self.enabled:
            return None
        return src, hop

    def next_hop(self, dst: int) -> int | None:
        """The neighbour a packet for `dst` goes to, or None (no route). On TUN: `dst`."""
        if self.ndp is None or is_multicast6(dst) or is_link_local(dst) or self.addrs.on_link(dst):
            return dst
        return self.addrs.default_router()

    def path_mtu(self, dst: int, now: float) -> int:
        """The path MTU towards `dst` (RFC 8201: the link MTU until a Packet Too Big)."""
        if self.icmp is None:
            return self.link_mtu
        return self.icmp.path_mtu(dst, self.link_mtu, now)

    def _tun_out(self, next_hop: int, pkt: bytes, now: float) -> None:
        self.stack.ip_out(pkt)

    def report_unreachable(self, pkt: bytes, kind: Reason, now: float) -> None:
        """A packet of ours that could not be delivered (NDP gave up on its next hop): its
        transport hears `kind` exactly as if an ICMPv6 error quoting it had arrived."""
        try:
            ip = Ipv6Packet.parse(pkt)
        except Malformed:
            return
        if ip.frag_offset:
            return  # only the first fragment carries the upper-layer header
        t = self.stack.transports.get(ip.proto)
        if t is None or not getattr(t, "ipv6", False):
            return
        self.counters.inc("ndp.unreachable_reported")
        data = bytes(ip.payload)
        t.on_icmp_error(kind, ip._replace(payload=data), data, 0, now)

    # ---- timers -------------------------------------------------------------------------------
    def poll(self, now: float) -> None:
        if self.reassembler.table:
            self.reassembler.poll(now)
        self.addrs.poll(now)
        if self.ndp is not None and self.ndp.timers:
            self.ndp.poll(now)

    def poll_at(self) -> float | None:
        best = self.reassembler.poll_at()
        for t in (self.addrs.poll_at(), self.ndp.poll_at() if self.ndp is not None else None):
            if t is not None and (best is None or t < best):
                best = t
        return best
