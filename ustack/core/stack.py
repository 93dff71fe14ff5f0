"""The sans-I/O stack: frames in (`receive`), frames out (`poll`), deadlines (`poll_at`).

No threads, sockets, sleeps or clocks: the caller passes `now` and moves the frames. Ingress is a
chain of functions (ethernet -> arp | ipv4 -> reassembly -> transport); each drops bad input
with a named counter. Egress goes through `send_ip` (route, identify, fragment, resolve, frame)
into one output list that `poll` hands out.

Local destinations (127.0.0.0/8 and our own address) never touch the device: `send_ip` queues
them and they are delivered in order at the end of the current `receive` or in the next `poll`,
so a reply generated while handling a looped packet never recurses.
"""

from __future__ import annotations

import random
import struct
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from ..wire import icmp as icmp_wire
from ..wire.arp import ArpPacket
from ..wire.errors import Malformed
from ..wire.ethernet import BROADCAST_MAC, ETH_ARP, ETH_IPV4, ETH_IPV6, EthernetFrame, mac_bytes
from ..wire.ipv4 import HEADER_LEN, Ipv4Packet, ip_int, quick_header
from ..wire.ipv6 import Ipv6Packet, quick_header6
from ..wire.vnet import GSO_TCP_AT, GSO_TCP_AT6, VNET_HDR_LEN, GsoPacket
from .arp import ArpCache
from .config import StackConfig
from .counters import Counters
from .family import LOOPBACK6
from .frag import Reassembler, fragment
from .icmp import TIME_EXCEEDED_REASSEMBLY, IcmpLayer
from .icmpv6 import Icmpv6Layer
from .igmp import IgmpLayer, multicast_mac
from .ipv4 import IdentAllocator, options_ok
from .ipv6 import Ipv6Layer
from .memory import MemoryBudget
from .ports import PortTable
from .reasons import Reason
from .routing import LIMITED_BROADCAST, LOOPBACK, Routes, is_loopback, is_multicast
from .rx import RX_LINK_BROADCAST, RX_TRUSTED
from .udp import UdpLayer

ALL_HOSTS = 0xE0000001  # 224.0.0.1: the multicast group a host is always in (core/igmp.py: the others)
MAX_DATAGRAM = 0xFFFF
_LOOP_BATCH = 10000  # looped packets delivered per call at most (a runaway loop cannot hang us)
_ROUTE_LOCAL, _ROUTE_UNICAST, _ROUTE_BROADCAST, _ROUTE_NONE = range(4)
_unpack_ip = struct.Struct("!BBHHHBBHII").unpack_from
_tuple_new = tuple.__new__
_GOOD_SRC_MAX = 1024  # sources remembered as valid (the receive fast path's cache)


class Transport(Protocol):
    """A protocol above IP. IPv6 packets (Ipv6Packet, quotes included) reach only transports
    whose class sets `ipv6 = True`; for the others they are an unknown next header."""

    proto: int

    # rx: per-packet context flags (core/rx.py: RX_TRUSTED, RX_LINK_BROADCAST)
    def on_packet(self, ip: Ipv4Packet | Ipv6Packet, now: float, rx: int) -> None: ...

    def on_icmp_error(self, kind: Reason, quoted: Ipv4Packet | Ipv6Packet, quoted_payload: bytes,
                      mtu: int, now: float) -> None: ...

    def poll(self, now: float) -> None: ...

    def poll_at(self) -> float | None: ...


def random_mac(rng: random.Random) -> bytes:
    """A unicast, locally administered MAC (RFC 7042 2.1)."""
    b = bytearray(rng.getrandbits(48).to_bytes(6, "big"))
    b[0] = (b[0] & 0xFC) | 0x02
    return bytes(b)


class Stack:
    def __init__(self, config: StackConfig | None = None) -> None:
        cfg = config if config is not None else StackConfig()
        if cfg.medium not in ("ip", "ethernet"):
            raise ValueError(f"medium must be 'ip' or 'ethernet', not {cfg.medium!r}")
        if not 68 <= cfg.mtu <= 65535:
            raise ValueError(f"MTU {cfg.mtu} outside 68..65535 (RFC 791 minimum 68)")
        self.config = cfg
        self.rng = random.Random(cfg.seed)
        self.routes = Routes(cfg.addr, ip_int(cfg.gateway) if cfg.gateway else None)
        self.addr = self.routes.addr
        # DNS servers for the resolver (ustack.services.resolver): from config, or DHCP option 6
        self.dns_servers: list[int] = [ip_int(a) for a in cfg.dns_servers]
        self.mtu = cfg.mtu
        self.medium = cfg.medium
        self.ethernet = cfg.medium == "ethernet"
        if isinstance(cfg.mac, str):
            self.mac = mac_bytes(cfg.mac)
        else:
            self.mac = bytes(cfg.mac) if cfg.mac is not None else random_mac(self.rng)
        if len(self.mac) != 6:
            raise ValueError("mac must be 6 bytes")
        self.verify = cfg.verify_checksums
        self.counters = Counters()
        self._cnt = self.counters.raw  # the hot path increments the dict directly
        self._route_cache: dict[int, tuple[int, int, int]] = {}
        self._good_src: set[int] = set()  # unicast sources that passed _on_ipv4's checks
        self._use_routes(self.routes)
        self.internal_errors: deque[str] = deque(maxlen=8)  # tracebacks of swallowed bugs
        self.transports: dict[int, Transport] = {}
        # Optional Transport.on_ipv4(buf, start, end, src, dst, now, rx, gso_size=0): on_packet
        # for a plain packet (no options, not a fragment) without an Ipv4Packet (receive_batch)
        self._ipv4_entries: dict[int, Callable[..., None]] = {}
        self._polled: list[Transport] = []
        self.udp_ports = PortTable(self.rng, cfg.ephemeral_low, cfg.ephemeral_high)
        self.tcp_ports = PortTable(self.rng, cfg.ephemeral_low, cfg.ephemeral_high)
        self.ports = {6: self.tcp_ports, 17: self.udp_ports}
        # IPv6's own tables (an IPv4 and an IPv6 wildcard bind on one port are distinct), with
        # their own RFC 6056 secrets from a generator of their own: drawing them from self.rng
        # would change every seeded run's later draws (ISNs, ports)
        rng6 = random.Random(f"ustack-ports6-{cfg.seed}")
        self.udp6_ports = PortTable(rng6, cfg.ephemeral_low, cfg.ephemeral_high, addr_bytes=16)
        self.tcp6_ports = PortTable(rng6, cfg.ephemeral_low, cfg.ephemeral_high, addr_bytes=16)
        self.ports6 = {6: self.tcp6_ports, 17: self.udp6_ports}
        self.ident = IdentAllocator(self.rng)
        self._ttl = cfg.ttl
        self._services: list[Transport] = []  # attach(): polled like transports, no protocol
        self._out: list[bytes] = []
        # Transmit segmentation offload: the most TCP payload one super-segment (wire/vnet.py)
        # may carry, 0 = off. The runtime sets it for a bare TUN device with TSO (Host.open).
        self.gso_max = 0
        self._loop: deque[Ipv4Packet | Ipv6Packet] = deque()
        self._last_now = 0.0
        self.arp = ArpCache(self) if self.ethernet else None
        # Ethernet multicast addresses we accept, with how many groups map to each (several
        # IPv4 groups share one: RFC 1112 6.4); every other multicast frame is filtered out
        self.multicast_macs: dict[bytes, int] = {multicast_mac(ALL_HOSTS): 1}
        # every receive queue charges its true size here (core/memory.py)
        self.memory = MemoryBudget(cfg.mem_low, cfg.mem_pressure, cfg.mem_high, self.counters)
        self.reassembler = Reassembler(
            self.counters, cfg.reassembly_timeout_s, cfg.reassembly_mem_limit,
            cfg.reassembly_max_datagrams, self._reassembly_timeout,
            max_fragments=cfg.reassembly_max_fragments, memory=self.memory,
        )
        self.icmp = IcmpLayer(self)
        self.register(self.icmp)
        self.udp = UdpLayer(self)
        self.register(self.udp)
        self.igmp = IgmpLayer(self)
        self.register(self.igmp)
        self.tcp = None
        # IPv6 beside IPv4 (core/ipv6.py): its own addresses, NDP on ethernet, ICMPv6
        self.ipv6 = Ipv6Layer(self)
        self.icmp6 = Icmpv6Layer(self)
        self.ipv6.icmp = self.icmp6
        self.register(self.icmp6)

    @classmethod
    def with_defaults(cls, config: StackConfig | None = None) -> Stack:
        """A stack with every transport available, TCP included when ustack.tcp provides one."""
        stack = cls(config)
        try:
            from .. import tcp as tcp_pkg
        except ImportError:  # pragma: no cover - tcp is part of the package
            return stack
        layer = getattr(tcp_pkg, "TcpLayer", None)
        if layer is not None and stack.tcp is None:
            t = layer(stack)
            if stack.tcp is None:
                stack.register(t)
        return stack

    # ---- transports ---------------------------------------------------------------------------
    def register(self, transport: Transport) -> None:
        """Attach a transport for `transport.proto` (replacing any previous one)."""
        old = self.transports.get(transport.proto)
        if old is not None:
            self._polled.remove(old)
        self.transports[transport.proto] = transport
        entry = getattr(transport, "on_ipv4", None)
        if callable(entry):
            self._ipv4_entries[transport.proto] = entry
        else:
            self._ipv4_entries.pop(transport.proto, None)
        self._polled.append(transport)
        if transport.proto == 6:
            self.tcp = transport

    def attach(self, service: Transport) -> None:
        """Poll `service` (anything with poll(now) and poll_at()) with the transports: how a
        protocol above UDP (the DHCP client) keeps its timers inside the stack."""
        if service not in self._services:
            self._services.append(service)
            self._polled.append(service)

    def detach(self, service: Transport) -> None:
        if service in self._services:
            self._services.remove(service)
            self._polled.remove(service)

    # ---- addresses ----------------------------------------------------------------------------
    def set_address(self, cidr: str, gateway: str | None = None) -> None:
        """Change our address, on-link prefix and default router ("0.0.0.0/32": none, only the
        limited broadcast is reachable, as a DHCP client in INIT). Sockets bound to the old
        address stay bound to it; new routing decisions use the new one. On ethernet a new
        address is announced (gratuitous ARP, RFC 5227 2.3)."""
        routes = Routes(cidr, ip_int(gateway) if gateway else None)  # ValueError before any change
        self.routes = routes
        self._use_routes(routes)
        self.config.addr = cidr
        self.config.gateway = gateway
        self.counters.inc("ipv4.address_changed")
        if self.arp is not None and routes.addr != 0:
            self.arp.announce()

    def _use_routes(self, routes: Routes) -> None:
        self.addr = routes.addr
        self._dbcast = -1 if routes.directed_broadcast is None else routes.directed_broadcast
        self._network = routes.network
        self._network_is_bcast = routes.directed_broadcast is not None
        self._route_cache.clear()
        self._good_src.clear()

    def route(self, dst: int) -> tuple[int, int] | None:
        return self.routes.route(dst)

    def is_local(self, addr: int) -> bool:
        return self.routes.is_local(addr)

    def is_broadcast(self, addr: int) -> bool:
        return self.routes.is_broadcast(addr)

    def is_multicast(self, addr: int) -> bool:
        return is_multicast(addr)

    @property
    def last_now(self) -> float:
        """The `now` of the latest call into the stack (for calls that take no time of their own)."""
        return self._last_now

    def add_multicast_mac(self, mac: bytes) -> None:
        """Accept frames to this link-layer multicast address (one more group maps to it)."""
        self.multicast_macs[mac] = self.multicast_macs.get(mac, 0) + 1

    def remove_multicast_mac(self, mac: bytes) -> None:
        n = self.multicast_macs.get(mac, 0) - 1
        if n > 0:
            self.multicast_macs[mac] = n
        else:
            self.multicast_macs.pop(mac, None)

    # ---- the sans-I/O surface -----------------------------------------------------------------
    def start(self, now: float) -> None:
        """Announce ourselves: a gratuitous ARP on ethernet (nothing to do on a TUN)."""
        self._last_now = now
        if self.arp is not None and self.addr != 0:  # no address yet (DHCP): nothing to announce
            self.arp.announce()
        self.ipv6.start(now)  # DAD and router solicitation on ethernet (nothing on a TUN)

    def receive(self, frame: bytes | bytearray | memoryview, now: float, trusted: bool = False) -> None:
        """Handle one frame from the device. Never raises: bad input is a counted drop, and a
        bug is counted as stack.internal_error (its traceback kept in `internal_errors`).

        `trusted`: the device vouched for the frame's transport checksum (receive checksum
        offload, like a NIC's CHECKSUM_UNNECESSARY): TCP, UDP and ICMP skip their checksum
        check; the IPv4 header checksum is still verified, and fragments are always verified."""
        self._last_now = now
        try:
            if trusted:
                self._cnt["ipv4.csum_offloaded"] += 1
            rx = RX_TRUSTED if trusted else 0
            if self.ethernet:
                self._on_ethernet(frame, now, rx)
            else:
                self._on_ip_frame(frame, now, rx)
            if self._loop:
                self._drain_loop(now)
        except Exception:
            self._internal_error()

    def receive_batch(self, frames: Iterable[tuple[bytes | bytearray | memoryview, bool | int]],
                      now: float) -> None:
        """`receive(frame, now, trusted)` for each (frame, trusted) pair of one device read
        (`TunDevice.recv_batch_trusted`), with the per-frame overhead paid once per batch.
        `trusted` may also be an int: 0/1 as False/True, and > 1 a TCP GSO super-segment (receive
        offload, `drivers.tun.vnet_rx`) of segments that size, checksum trusted, which the TCP
        layer takes as one segment (`on_ipv4(..., gso_size)`) as Linux's GRO does.

        On a TUN, the usual packet (IPv4 without options, not a fragment, to our address, from a
        source already seen to be valid, for a registered transport) takes a fast path that
        does exactly what `_on_ipv4` does for it; everything else goes the full way."""
        self._last_now = now
        cnt = self._cnt
        offloaded = fast = 0
        if self.ethernet or self.addr >> 24 == 127:
            handle = self._on_ethernet if self.ethernet else self._on_ip_frame
            unpack = None
        else:
            handle = self._on_ip_frame
            unpack = _unpack_ip
        addr, verify, good_src, transports = self.addr, self.verify, self._good_src, self.transports
        entries = self._ipv4_entries
        try:
            for frame, trusted in frames:
                if trusted:
                    offloaded += 1
                try:
                    if unpack is not None and len(frame) >= 20 and frame[0] == 0x45:
                        _, tos, total, ident, frag, ttl, proto, csum, src, dst = unpack(frame)
                        if (dst == addr and not frag & 0xBFFF and 20 <= total <= len(frame)
                                and src in good_src
                                and (not verify or not (((0x45 + ttl) << 8) + tos + total + ident + frag
                                                        + proto + csum + src + dst) % 0xFFFF)):
                            entry = entries.get(proto)
                            t = transports.get(proto) if entry is None else entry
                            if t is not None:
                                fast += 1
                                mv = frame if type(frame) is memoryview else memoryview(frame)
                                # trusted (0/1, False/True) is the rx value: RX_TRUSTED == 1
                                if trusted > 1:  # a GSO super-segment: TCP takes it whole (GRO)
                                    if proto == 6 and entry is not None:
                                        entry(mv, 20, total, src, dst, now, RX_TRUSTED, trusted)
                                    else:
                                        cnt["ipv4.gso_not_tcp"] += 1
                                elif entry is not None:  # the transport takes the bytes as they are
                                    entry(mv, 20, total, src, dst, now, trusted)
                                else:
                                    ip = _tuple_new(Ipv4Packet, (src, dst, proto, mv[20:total], ttl, ident,
                                                                 frag != 0, False, 0, tos, b""))
                                    t.on_packet(ip, now, trusted)
                                if self._loop:
                                    self._drain_loop(now)
                                continue
                    if trusted > 1:
                        # not the plain shape GRO needs: as one large segment (checksum trusted,
                        # as the kernel filled it in for the whole) through the full path
                        cnt["ipv4.gso_full_path"] += 1
                    handle(frame, now, RX_TRUSTED if trusted else 0)
                    if self._loop:
                        self._drain_loop(now)
                except Exception:
                    self._internal_error()
        finally:
            if fast:
                cnt["ipv4.in"] += fast
                cnt["ipv4.delivered"] += fast
            if offloaded:
                cnt["ipv4.csum_offloaded"] += offloaded

    def poll(self, now: float) -> list[bytes]:
        """Fire due timers, deliver looped-back packets, and return the frames to send."""
        self._last_now = now
        try:
            if self._loop:
                self._drain_loop(now)
            if self.arp is not None and self.arp.pending:
                self.arp.poll(now)
            if self.reassembler.table:
                self.reassembler.poll(now)
            self.ipv6.poll(now)
            for t in self._polled:
                t.poll(now)
            if self._loop:
                self._drain_loop(now)
        except Exception:
            self._internal_error()
        out = self._out
        self._out = []
        if out and self.ethernet:
            self._cnt["ethernet.out"] += len(out)  # once per poll, not per frame
        return out

    def poll_at(self) -> float | None:
        """The earliest time `poll` has something to do (None: nothing until new input)."""
        if self._out or self._loop:
            return self._last_now
        best = None
        if self.arp is not None:
            best = self.arp.poll_at()
        t = self.reassembler.poll_at()
        if t is not None and (best is None or t < best):
            best = t
        t = self.ipv6.poll_at()
        if t is not None and (best is None or t < best):
            best = t
        for tr in self._polled:
            t = tr.poll_at()
            if t is not None and (best is None or t < best):
                best = t
        return best

    def _internal_error(self) -> None:
        self.counters.inc("stack.internal_error")
        self.internal_errors.append(traceback.format_exc())

    # ---- ingress ------------------------------------------------------------------------------
    def _on_ip_frame(self, frame: bytes | memoryview, now: float, rx: int) -> None:
        if frame and frame[0] >> 4 == 6:
            self.ipv6.receive(frame, now, rx)
            return
        self._on_ipv4(frame, now, rx)

    def _on_ethernet(self, frame: bytes | memoryview, now: float, rx: int) -> None:
        c = self.counters
        c.inc("ethernet.in")
        try:
            eth = EthernetFrame.parse(frame)
        except Malformed as e:
            c.inc(e.reason)
            return
        dst = eth.dst
        if dst != self.mac:
            if not dst[0] & 1:
                c.inc("ethernet.not_for_us")
                return
            if dst[:3] == b"\x01\x00\x5e" and dst not in self.multicast_macs:
                c.inc("ethernet.multicast_filtered")  # an IPv4 group nobody here joined
                return
            rx |= RX_LINK_BROADCAST  # broadcast or multicast frame
        if eth.src == self.mac:
            c.inc("ethernet.own_frame")  # our own frame reflected back (a hub, a loop)
            return
        et = eth.ethertype
        if et == ETH_IPV4:
            self._on_ipv4(eth.payload, now, rx)
        elif et == ETH_ARP:
            try:
                arp = ArpPacket.parse(eth.payload)
            except Malformed as e:
                c.inc(e.reason)
                return
            self.arp.on_arp(arp, now)
        elif et == ETH_IPV6:
            self.ipv6.receive(eth.payload, now, rx)
        else:
            c.inc("ethernet.unknown_type")

    def _on_ipv4(self, buf: bytes | memoryview, now: float, rx: int) -> None:
        cnt = self._cnt
        cnt["ipv4.in"] += 1
        try:
            ip = Ipv4Packet.parse(buf, self.verify)
        except Malformed as e:
            cnt[e.reason] += 1
            return
        src, dst = ip[0], ip[1]
        if ip.options and not options_ok(ip.options):
            cnt["ipv4.bad_options"] += 1
            return
        # RFC 1122 3.2.1.3 / RFC 1812 5.3.7: impossible sources are discarded silently
        if src >= 0xE0000000 or src == self._dbcast or (src == self._network and self._network_is_bcast):
            cnt["ipv4.bad_source"] += 1
            return
        if src >> 24 == 127 or dst >> 24 == 127:
            cnt["ipv4.martian_loopback"] += 1  # 127/8 never appears on a real link
            return
        if src == self.addr:
            cnt["ipv4.martian_own_source"] += 1
            return
        good = self._good_src
        if src not in good:
            if len(good) >= _GOOD_SRC_MAX:
                good.clear()
            good.add(src)
        if dst != self.addr:
            if is_multicast(dst):
                if not self.igmp.is_member(dst):
                    cnt["ipv4.multicast_not_joined"] += 1
                    return
            elif not self.routes.is_broadcast(dst):
                cnt["ipv4.not_for_us"] += 1
                return
        elif rx & RX_LINK_BROADCAST:
            # RFC 1122 3.3.6: a unicast IP destination inside a link-layer broadcast is discarded
            cnt["ipv4.link_broadcast_unicast"] += 1
            return
        if ip.mf or ip.frag_offset:
            rx &= ~RX_TRUSTED  # offload never covers fragments: verify the reassembled whole
            ip = self.reassembler.add(ip, now)
            if ip is None:
                return
        self._deliver(ip, now, rx)

    def _deliver(self, ip: Ipv4Packet, now: float, rx: int) -> None:
        t = self.transports.get(ip.proto)
        if t is None:
            self.counters.inc("ipv4.unknown_proto")
            self.icmp.send_error(icmp_wire.DEST_UNREACH, icmp_wire.PROTO_UNREACH, ip, now, rx=rx)
            return
        self._cnt["ipv4.delivered"] += 1
        t.on_packet(ip, now, rx)

    def _drain_loop(self, now: float) -> None:
        loop = self._loop
        c = self.counters
        for _ in range(_LOOP_BATCH):
            if not loop:
                return
            ip = loop.popleft()
            if type(ip) is Ipv6Packet:
                c.inc("ipv6.loopback_in")
                self.ipv6.deliver(ip, now, 0)
                continue
            c.inc("ipv4.loopback_in")
            self._deliver(ip, now, 0)

    def _reassembly_timeout(self, first: Ipv4Packet, now: float) -> None:
        # RFC 792/1122 3.3.2: time exceeded (code 1) only if fragment zero arrived
        self.icmp.send_error(icmp_wire.TIME_EXCEEDED, TIME_EXCEEDED_REASSEMBLY, first, now)

    # ---- egress -------------------------------------------------------------------------------
    def send_ip(self, dst: int, proto: int, payload: bytes | bytearray | memoryview, now: float,
                src: int | None = None, ttl: int | None = None, df: bool = False,
                tos: int = 0, options: bytes = b"", loop: bool = False) -> Reason | None:
        """Send one datagram. Returns None when it left (or was queued for ARP or loopback), or a
        Reason when nothing was sent: NET_UNREACH (no route), FRAG_NEEDED (DF set and larger than
        the MTU), MSG_SIZE (over 65535 bytes).

        `options`: IPv4 options for an unfragmented datagram (IGMP's Router Alert). `loop`: a
        multicast datagram is also delivered to our own sockets when this host is in the group
        (IP_MULTICAST_LOOP)."""
        self._last_now = now
        cnt = self._cnt
        if ttl is None:
            ttl = self._ttl
        n = len(payload)
        if n > MAX_DATAGRAM - HEADER_LEN:
            cnt["ipv4.out_too_big"] += 1
            return Reason.MSG_SIZE
        rc = self._route_cache.get(dst)
        if rc is None:
            rc = self._classify(dst)
        kind, rsrc, next_hop = rc
        if kind == _ROUTE_LOCAL:
            cnt["ipv4.loopback_out"] += 1
            if src is None:
                src = rsrc
            self._loop.append(Ipv4Packet(src, dst, proto, bytes(payload), ttl, 0, df))
            return None
        if kind == _ROUTE_NONE:
            cnt["ipv4.no_route"] += 1
            return Reason.NET_UNREACH
        if src is None:
            src = rsrc
        if options:
            pkt = Ipv4Packet(src, dst, proto, payload, ttl, self.ident.next(dst), df, tos=tos,
                             options=options).emit()
            self._send_packet(next_hop, pkt, now)
        elif HEADER_LEN + n <= self.mtu:
            pkt = quick_header(src, dst, proto, n, self.ident.next(dst), ttl, df, tos) + payload
            if self.ethernet:
                self._send_packet(next_hop, pkt, now)
            else:
                self._out.append(pkt)
        elif df:
            cnt["ipv4.frag_needed_local"] += 1
            return Reason.FRAG_NEEDED
        else:
            frags = fragment(src, dst, proto, payload, self.ident.next(dst), self.mtu, ttl, tos)
            cnt["ipv4.fragmented"] += 1
            cnt["ipv4.fragments_out"] += len(frags)
            for f in frags:
                self._send_packet(next_hop, f, now)
        cnt["ipv4.out"] += 1
        if kind == _ROUTE_BROADCAST and self.config.broadcast_loopback:
            self._loop.append(Ipv4Packet(src, dst, proto, bytes(payload), ttl, 0, df))
        elif loop and is_multicast(dst) and self.igmp.is_member(dst):
            self._cnt["ipv4.multicast_looped"] += 1
            self._loop.append(Ipv4Packet(src, dst, proto, bytes(payload), ttl, 0, df))
        return None

    def gso_max_for(self, dst: int) -> int:
        """The most TCP payload a super-segment to `dst` may carry: `gso_max` for a unicast
        destination on a TUN link, 0 (per segment) for local, broadcast, unroutable and ethernet
        destinations, or when transmit offload is off."""
        if not self.gso_max or self.ethernet:
            return 0
        rc = self._route_cache.get(dst)
        if rc is None:
            rc = self._classify(dst)
        return self.gso_max if rc[0] == _ROUTE_UNICAST else 0

    def send_gso(self, dst: int, src: int, packet: GsoPacket, now: float, df: bool = True) -> None:
        """Queue a TCP super-segment (built by the transport, `gso_max_for(dst)` > 0): the IPv4
        header goes into its header buffer; the device (TSO) cuts it into segments, the IP ID
        advancing per segment as Linux's GSO does."""
        self._last_now = now
        header = packet.header
        n = len(header) - GSO_TCP_AT + len(packet.payload)
        k = packet.segments
        header[VNET_HDR_LEN:GSO_TCP_AT] = quick_header(src, dst, 6, n, self.ident.next(dst, k), self._ttl, df)
        self._out.append(packet)
        cnt = self._cnt
        cnt["ipv4.out"] += 1
        cnt["ipv4.gso_out"] += 1
        cnt["ipv4.gso_segs_out"] += k

    def send_ip6(self, dst: int, proto: int, payload: bytes | bytearray | memoryview, now: float,
                 src: int | None = None, hop_limit: int | None = None, tclass: int = 0,
                 flow: int = 0, dontfrag: bool = False, hop_by_hop: bytes = b"",
                 loop: bool = False) -> Reason | None:
        """Send one datagram over IPv6 (`dst` a 128-bit int): None when it left (or waits for
        NDP or the loopback queue), else the Reason nothing was sent (see Ipv6Layer.send).
        ::1 and our own addresses are looped back as for IPv4; larger than the path MTU is
        fragmented at the source unless `dontfrag` (then FRAG_NEEDED). `hop_by_hop`: the
        options of a hop-by-hop header (MLD's Router Alert), padded to a multiple of 8. `loop`:
        a multicast datagram also reaches our own sockets when we are in the group."""
        self._last_now = now
        return self.ipv6.send(dst, proto, payload, now, src, hop_limit, tclass, flow, dontfrag,
                              hop_by_hop, loop)

    def is_local6(self, addr: int) -> bool:
        """An IPv6 address of this host: ::1 or one of ours (tentative ones are not yet)."""
        return self.ipv6.addrs.is_own(addr)

    def route6(self, dst: int) -> tuple[int, int] | None:
        """(source address, next hop) for `dst` over IPv6, or None when there is no route."""
        return self.ipv6.route(dst)

    @property
    def link_local6(self) -> int | None:
        """Our link-local address once DAD let us use it (None before: send from ::)."""
        return self.ipv6.addrs.link_local()

    def source6(self, dst: int) -> int | None:
        """Our IPv6 source address for `dst` (RFC 6724's rules for one interface), None when
        there is none (the destination is then unreachable from us)."""
        if dst == 1 or self.ipv6.addrs.is_own(dst):
            return dst
        return self.ipv6.addrs.select_source(dst)

    @property
    def mtu6(self) -> int:
        """The IPv6 link MTU (the device's, or a router advertisement's smaller one)."""
        return self.ipv6.link_mtu

    def path_mtu6(self, dst: int) -> int:
        """The IPv6 path MTU towards `dst`: the link MTU until a Packet Too Big lowered it
        (RFC 8201; a lowered estimate expires after config.pmtu6_expiry_s)."""
        return self.ipv6.path_mtu(dst, self._last_now)

    def loop_packet(self, ip: Ipv4Packet | Ipv6Packet) -> None:
        """Queue a packet for local delivery (at the end of this receive or the next poll)."""
        self._loop.append(ip)

    def ip_out(self, pkt: bytes) -> None:
        """A finished IP packet for a TUN device (no framing)."""
        self._out.append(pkt)

    def frame_out_raw(self, frame: bytes) -> None:
        """A finished Ethernet frame for a TAP device."""
        self._out.append(frame)

    def gso_max_for6(self, dst: int) -> int:
        """`gso_max_for` over IPv6: `gso_max` for a unicast destination with a route on a TUN
        link, 0 for our own addresses, ::1, multicast, unroutable, or with offload off."""
        if not self.gso_max or self.ethernet:
            return 0
        ipv6 = self.ipv6
        if (not ipv6.enabled or dst == LOOPBACK6 or dst >> 120 == 0xFF or ipv6.addrs.is_own(dst)
                or ipv6.next_hop(dst) is None):
            return 0
        return self.gso_max

    def send_gso6(self, dst: int, src: int, packet: GsoPacket, now: float,
                  hop_limit: int | None = None) -> None:
        """`send_gso` over IPv6 (`gso_max_for6(dst)` > 0): the IPv6 header goes into the
        packet's header buffer (no fragment header: every segment fits the path MTU)."""
        self._last_now = now
        header = packet.header
        n = len(header) - GSO_TCP_AT6 + len(packet.payload)
        if hop_limit is None:
            hop_limit = self.ipv6.hop_limit
        header[VNET_HDR_LEN:GSO_TCP_AT6] = quick_header6(src, dst, 6, n, hop_limit)
        self._out.append(packet)
        cnt = self._cnt
        cnt["ipv6.out"] += 1
        cnt["ipv6.gso_out"] += 1
        cnt["ipv6.gso_segs_out"] += packet.segments

    def _classify(self, dst: int) -> tuple[int, int, int]:
        """(kind, source address, next hop) for `dst`, cached (routes never change)."""
        r = self.routes
        if r.is_local(dst):
            rc = (_ROUTE_LOCAL, LOOPBACK if is_loopback(dst) else self.addr, dst)
        else:
            rt = r.route(dst)
            if rt is None:
                rc = (_ROUTE_NONE, 0, 0)
            else:
                rc = (_ROUTE_BROADCAST if r.is_broadcast(dst) else _ROUTE_UNICAST, rt[0], rt[1])
        cache = self._route_cache
        if len(cache) >= 4096:
            cache.clear()
        cache[dst] = rc
        return rc

    def _send_packet(self, next_hop: int, pkt: bytes, now: float) -> None:
        if not self.ethernet:
            self._out.append(pkt)
            return
        if next_hop == LIMITED_BROADCAST or self.routes.is_broadcast(next_hop):
            self._frame_out(BROADCAST_MAC, pkt)
        elif is_multicast(next_hop):
            self._frame_out(multicast_mac(next_hop), pkt)
        else:
            self.arp.send_or_queue(next_hop, pkt, now)

    def _frame_out(self, mac: bytes, pkt: bytes) -> None:
        self._out.append(EthernetFrame.header(mac, self.mac, ETH_IPV4) + pkt)

    def _raw_out(self, frame: bytes) -> None:
        self._out.append(frame)

    def _unreachable(self, packet: bytes, now: float) -> None:
        """ARP gave up on a packet: tell its transport HOST_UNREACH exactly as an ICMP host
        unreachable quoting it would (on_icmp_error with the packet's header and payload)."""
        try:
            ip = Ipv4Packet.parse(packet, verify=False)
        except Malformed:
            return
        if ip.frag_offset:
            return  # only the first fragment carries the transport header
        t = self.transports.get(ip.proto)
        if t is None:
            return
        self.counters.inc("arp.unreachable_reported")
        data = bytes(ip.payload)
        t.on_icmp_error(Reason.HOST_UNREACH, ip._replace(payload=data), data, 0, now)

    def __repr__(self) -> str:
        from ..wire.ipv4 import ip_str

        return f"Stack({ip_str(self.addr)}/{self.routes.prefix} {self.medium} mtu={self.mtu})"
