"""UDP (RFC 768) with Windows socket semantics (shared/winsock-behaviour.md items 50-59).

Demux: a unicast datagram goes to the socket bound to the exact destination address, else to one
bound to 0.0.0.0 (the specific address wins, item 13); among sockets sharing a port (SO_REUSEADDR)
the first whose connected peer (if any) matches takes it. Broadcasts (255.255.255.255, the directed
broadcast, and 224.0.0.1) go to every socket bound to 0.0.0.0 on the port: a socket bound to a
specific unicast address does not receive them (unless `config.udp_broadcast_to_specific`).
A datagram to a joined multicast group goes to every socket on the port, bound to 0.0.0.0 or to
our address, that joined that group itself (`join_group`: IP_ADD_MEMBERSHIP).
Nobody listening: ICMP port unreachable (never for broadcasts or multicast: RFC 1122 3.2.2).

IPv6 (core/family.py): family-6 sockets (`open(family=6)`) bind in `stack.udp6_ports`, take
IPv6 datagrams (checksum mandatory: a zero checksum is dropped, RFC 8200 8.1) and, when dual-mode
(`v6only` False), IPv4 ones too, whose addresses they report v4-mapped (::ffff:a.b.c.d).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..wire import icmp as icmp_wire
from ..wire.errors import Malformed
from ..wire.ipv4 import PROTO_UDP, Ipv4Packet
from ..wire.udp import UdpDatagram
from .errors import UsageError
from .events import ERROR, READ, WRITE
from .family import V4MAPPED, is_multicast6, is_v4compat, is_v4mapped, unmap
from .memory import BYTES_OVERHEAD
from .ports import bind_dual
from .reasons import Reason
from .routing import LOOPBACK, is_loopback, is_multicast
from .rx import RX_TRUSTED

if TYPE_CHECKING:
    from ..wire.ipv6 import Ipv6Packet
    from .ports import Binding
    from .stack import Stack

ALL_SYSTEMS = 0xE0000001  # 224.0.0.1: delivered like a broadcast (every host is in it)
MAX_PAYLOAD = 65507  # 65535 - 20 (IPv4 header) - 8 (UDP header)
MAX_PAYLOAD6 = 65527  # 65535 (IPv6 payload length, no jumbograms) - 8 (UDP header)
_PORTS = struct.Struct("!HH")
ICMP6_DEST_UNREACH, ICMP6_PORT_UNREACH = 1, 4  # RFC 4443 3.1
# ICMP errors a UDP socket records (Windows: the next recv fails with the matching WSA code)
SOCKET_ERRORS = frozenset({
    Reason.PORT_UNREACH, Reason.HOST_UNREACH, Reason.NET_UNREACH, Reason.PROTO_UNREACH,
    Reason.FRAG_NEEDED,
})

Watcher = Callable[["UdpSocket", int], None]
# true size of a queued datagram beyond its payload: the bytes object, the (data, addr, port)
# tuple and its deque slot
DATAGRAM_OVERHEAD = BYTES_OVERHEAD + 64 + 8


class UdpLayer:
    """The UDP transport (protocol 17): socket factory, demux, ICMP error matching."""

    proto = PROTO_UDP
    ipv6 = True  # on_packet takes Ipv6Packet too (the network layer delivers IPv6 only then)

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.counters = stack.counters
        self._cnt = stack.counters.raw
        self.ports = stack.udp_ports
        self.ports6 = stack.udp6_ports
        self.sockets: set[UdpSocket] = set()
        self.broadcast_to_specific = stack.config.udp_broadcast_to_specific

    def open(self, family: int = 4) -> UdpSocket:
        """A UDP socket of `family` 4 (IPv4 int addresses) or 6 (IPv6 ints, contracts.md "Dual stack")."""
        if family not in (4, 6):
            raise UsageError(Reason.INVALID, f"address family {family}")
        s = UdpSocket(self, family)
        self.sockets.add(s)
        return s

    # ---- input --------------------------------------------------------------------------------
    def on_packet(self, ip: Ipv4Packet, now: float, rx: int = 0) -> None:
        if ip.__class__ is not Ipv4Packet:
            self._on_ipv6(ip, now, rx)
            return
        c = self.counters
        cnt = self._cnt
        cnt["udp.in"] += 1
        stack = self.stack
        try:
            d = UdpDatagram.parse(ip.payload, ip.src, ip.dst, stack.verify and not rx & RX_TRUSTED)
        except Malformed as e:
            cnt[e.reason] += 1
            return
        dst = ip.dst
        if dst != stack.addr and is_multicast(dst) and dst != ALL_SYSTEMS:
            delivered = False
            for sock in self.ports.lookup(stack.addr, d.dport):
                if dst in sock.groups:
                    src = ip.src if sock.family == 4 else V4MAPPED | ip.src
                    if sock.accepts(src, d.sport):
                        sock._deliver(d.payload, src, d.sport, now)
                        delivered = True
                    else:
                        c.inc("udp.connected_filtered")
            if not delivered:
                c.inc("udp.no_port_multicast")
            return
        if dst != stack.addr and (stack.is_broadcast(dst) or dst == ALL_SYSTEMS):
            owners = self.ports.lookup(stack.addr if self.broadcast_to_specific else 0, d.dport)
            if not owners:
                c.inc("udp.no_port_broadcast")
                return
            for sock in owners:
                src = ip.src if sock.family == 4 else V4MAPPED | ip.src  # dual-mode: v4-mapped
                if sock.accepts(src, d.sport):
                    sock._deliver(d.payload, src, d.sport, now)
                else:
                    c.inc("udp.connected_filtered")
            return
        owners = self.ports.lookup(dst, d.dport)
        if not owners:
            c.inc("udp.no_port")
            stack.icmp.send_error(icmp_wire.DEST_UNREACH, icmp_wire.PORT_UNREACH, ip, now, rx=rx)
            return
        for sock in owners:
            src = ip.src if sock.family == 4 else V4MAPPED | ip.src
            if sock.accepts(src, d.sport):
                sock._deliver(d.payload, src, d.sport, now)
                return
        c.inc("udp.connected_filtered")  # connected elsewhere: discarded (item 54)

    def _on_ipv6(self, ip: Ipv6Packet, now: float, rx: int) -> None:
        """The IPv6 half of on_packet: the same demux over `ports6`; multicast goes to every
        socket on the port that joined the group, as for IPv4."""
        cnt = self._cnt
        cnt["udp.in"] += 1
        buf = ip.payload
        if len(buf) >= 8 and not buf[6] and not buf[7]:
            cnt["udp.v6_zero_checksum"] += 1  # RFC 8200 8.1: mandatory over IPv6
            return
        src, dst = ip.src, ip.dst
        if is_v4mapped(src) or is_v4compat(src):
            # an IPv4 address dressed as IPv6 would reach dual-mode sockets as an IPv4 peer
            cnt["udp.v6_bad_source"] += 1
            return
        try:
            d = UdpDatagram.parse(buf, src, dst, self.stack.verify and not rx & RX_TRUSTED)
        except Malformed as e:
            cnt[e.reason] += 1
            return
        if is_multicast6(dst):
            delivered = False
            for sock in self.ports6.lookup(0, d.dport):
                if dst in sock.groups:
                    if sock.accepts(src, d.sport):
                        sock._deliver(d.payload, src, d.sport, now)
                        delivered = True
                    else:
                        cnt["udp.connected_filtered"] += 1
            if not delivered:
                cnt["udp.no_port_multicast"] += 1
            return
        owners = self.ports6.lookup(dst, d.dport)
        if not owners:
            cnt["udp.no_port"] += 1
            self.stack.icmp6.send_error(ICMP6_DEST_UNREACH, ICMP6_PORT_UNREACH, ip, now, rx=rx)
            return
        for sock in owners:
            if sock.accepts(src, d.sport):
                sock._deliver(d.payload, src, d.sport, now)
                return
        cnt["udp.connected_filtered"] += 1

    def on_icmp_error(self, kind: Reason, quoted: Ipv4Packet, quoted_payload: bytes, mtu: int,
                      now: float) -> None:
        c = self.counters
        if kind not in SOCKET_ERRORS:
            c.inc("udp.icmp_ignored")
            return
        # ICMP quotes carry >= 8 transport bytes (IcmpMessage.quoted checks it) and an ARP failure
        # quotes a whole datagram we built, so the ports are always there.
        sport, dport = _PORTS.unpack_from(quoted_payload)
        v4 = quoted.__class__ is Ipv4Packet
        for sock in (self.ports if v4 else self.ports6).lookup(quoted.src, sport):
            peer = quoted.dst if not v4 or sock.family == 4 else V4MAPPED | quoted.dst
            if sock.remote is not None and sock.remote != (peer, dport):
                continue
            c.inc("udp.icmp_error")
            sock._set_error(kind, mtu)
            return
        c.inc("udp.icmp_error_no_socket")

    def poll(self, now: float) -> None:
        return None

    def poll_at(self) -> float | None:
        return None


class UdpSocket:
    """A UDP endpoint. Misuse raises UsageError; network trouble sets `.error` and fires events."""

    proto = PROTO_UDP

    def __init__(self, layer: UdpLayer, family: int = 4) -> None:
        self.layer = layer
        self.stack = layer.stack
        self.family = family  # 4, or 6: every address in and out is an IPv6 int
        self._v6only = True  # IPV6_V6ONLY (family 6), Windows' default
        self.hop_limit: int | None = None  # IPv6 unicast hop limit; None: the stack's default
        self.binding = None
        self.remote: tuple[int, int] | None = None
        self.disconnected = False  # connected once, then dis-connected by an all-zero connect
        self._last_connect: tuple[int, int] | None = None  # name given to the previous connect
        self.error: Reason | None = None
        self.error_mtu = 0  # next-hop MTU of the last FRAG_NEEDED error
        self.broadcast = False  # SO_BROADCAST
        self.port_zero_ok = False  # Windows sends to (and connects to) port 0; POSIX refuses it
        self.rcvbuf = self.stack.config.udp_rcvbuf
        self.ttl = self.stack.config.ttl
        self.tos = 0
        # multicast (IP_MULTICAST_TTL / _LOOP / _IF, IP_ADD_MEMBERSHIP): Windows' defaults
        self.mcast_ttl = 1
        self.mcast_loop = True
        self.mcast_if = 0  # source address for multicast sends (0: the route's)
        self.groups: set[int] = set()
        self.queue: deque[tuple[bytes, int, int]] = deque()
        self.pending_bytes = 0  # payload queued (limited by rcvbuf, as Windows counts it)
        self.pending_mem = 0  # its true size (limited by 2 * rcvbuf, charged to stack.memory)
        self.shut_rd = False
        self.shut_wr = False
        self.closed = False
        self._watch: Watcher | None = None

    # ---- state --------------------------------------------------------------------------------
    @property
    def local(self) -> tuple[int, int] | None:
        b = self.binding
        if b is None:
            return None
        if self.family == 6 and b.table is self.layer.ports:  # bound to an IPv4 address
            return (V4MAPPED | b.addr, b.port)
        return (b.addr, b.port)

    @property
    def v6only(self) -> bool:
        """IPV6_V6ONLY of a family-6 socket; False (dual-mode) also takes IPv4, v4-mapped."""
        return self._v6only

    @v6only.setter
    def v6only(self, on: bool) -> None:
        self._check_open()
        if self.family != 6:
            raise UsageError(Reason.INVALID, "IPV6_V6ONLY on an IPv4 socket")
        if self.binding is not None:
            raise UsageError(Reason.INVALID, "IPV6_V6ONLY after bind")
        self._v6only = bool(on)

    def _wire(self, addr: int) -> tuple[bool, int]:
        """(is IPv6, the address on the wire) for an address given to this socket."""
        if self.family == 4:
            return False, addr
        if is_v4mapped(addr):
            if self._v6only:
                raise UsageError(Reason.ADDR_NOT_AVAIL, "a v4-mapped address on an IPV6_V6ONLY socket")
            return False, unmap(addr)
        if is_v4compat(addr):
            raise UsageError(Reason.ADDR_NOT_AVAIL, "IPv4-compatible IPv6 address (deprecated)")
        return True, addr

    @property
    def next_size(self) -> int:
        return len(self.queue[0][0]) if self.queue else 0

    @property
    def readable(self) -> bool:
        """A datagram is queued (a pending `.error` is separate: check both for select)."""
        return bool(self.queue)

    @property
    def events(self) -> int:
        """Current readiness bits (READ when readable, WRITE always once bound, ERROR if pending)."""
        ev = WRITE if self.binding is not None and not self.shut_wr else 0
        if self.queue or self.error is not None:
            ev |= READ
        if self.error is not None:
            ev |= ERROR
        return ev

    def clear_error(self) -> Reason | None:
        e, self.error = self.error, None
        return e

    def watch(self, callback: Watcher | None) -> None:
        self._watch = callback

    def _fire(self, events: int) -> None:
        cb = self._watch
        if cb is not None:
            cb(self, events)

    def _check_open(self) -> None:
        if self.closed:
            raise UsageError(Reason.INVALID, "socket is closed")

    # ---- binding and peers --------------------------------------------------------------------
    def bind(self, addr: int, port: int, *, reuse: bool = False, exclusive: bool = False) -> None:
        self._check_open()
        if self.binding is not None:
            raise UsageError(Reason.INVALID, "already bound")  # item 11
        self.binding = self._bind(addr, port, reuse, exclusive)
        self._fire(WRITE)

    def _bind(self, addr: int, port: int, reuse: bool = False, exclusive: bool = False) -> Binding:
        layer = self.layer
        if self.family == 6 and addr == 0:
            if self._v6only:
                return layer.ports6.bind(0, port, self, reuse, exclusive)
            return bind_dual(layer.ports6, layer.ports, port, self, reuse, exclusive)
        v6, addr = self._wire(addr)
        if v6:
            if not self.stack.is_local6(addr):
                raise UsageError(Reason.ADDR_NOT_AVAIL, "not an address of this host")
            return layer.ports6.bind(addr, port, self, reuse, exclusive)
        if addr != 0 and not self.stack.is_local(addr):
            raise UsageError(Reason.ADDR_NOT_AVAIL, "not an address of this host")
        return layer.ports.bind(addr, port, self, reuse, exclusive)

    def _autobind(self, fire: bool = True) -> None:
        if self.binding is None:
            self.binding = self._bind(0, 0)
            if fire:
                self._fire(WRITE)

    def connect(self, addr: int, port: int, now: float | None = None) -> None:
        """Set (or with 0.0.0.0:0 clear) the default peer; binds implicitly (item 52).

        The founding document: "datagrams queued for receipt are discarded if name is different
        from the previous connect". Read literally: the first connect keeps the queue; any later
        connect, dis-connect included, whose name differs from the previous one empties it.
        """
        self._check_open()
        if addr == 0 and port == 0:
            if self.remote is not None:
                self.disconnected = True
            self.remote = None
            self._renamed((0, 0))
            return
        if addr == 0 or (port == 0 and not self.port_zero_ok):
            raise UsageError(Reason.ADDR_NOT_AVAIL, "peer address or port is zero")
        stack = self.stack
        v6, waddr = self._wire(addr)
        if v6:
            if not stack.is_local6(waddr) and stack.route6(waddr) is None:
                raise UsageError(Reason.NET_UNREACH, "no route to the peer")
        else:
            if stack.is_broadcast(waddr) and not self.broadcast:
                raise UsageError(Reason.ACCESS, "broadcast peer without SO_BROADCAST")
            if not stack.is_local(waddr) and stack.route(waddr) is None:
                raise UsageError(Reason.NET_UNREACH, "no route to the peer")
        self._autobind(fire=False)
        self._renamed((addr, port))
        self.remote = (addr, port)
        self.disconnected = False
        self._fire(WRITE)

    def _renamed(self, name: tuple[int, int]) -> None:
        last = self._last_connect
        self._last_connect = name
        if last is not None and last != name and self.queue:
            self.layer.counters.inc("udp.reconnect_discarded", len(self.queue))
            self._discard_queue()

    def accepts(self, src: int, sport: int) -> bool:
        r = self.remote
        return r is None or (r[0] == src and r[1] == sport)

    # ---- sending ------------------------------------------------------------------------------
    def sendto(self, data: bytes | bytearray | memoryview, addr: int, port: int, now: float) -> int:
        self._check_open()
        if self.shut_wr:
            raise UsageError(Reason.SHUTDOWN, "send side shut down")
        n = len(data)
        limit = MAX_PAYLOAD if self.family == 4 or is_v4mapped(addr) else MAX_PAYLOAD6
        if n > limit:
            raise UsageError(Reason.MSG_SIZE, f"{n} bytes > {limit}")
        if addr == 0 or (port == 0 and not self.port_zero_ok):
            raise UsageError(Reason.ADDR_NOT_AVAIL, "destination address or port is zero")
        if self.family == 6:
            v6, addr = self._wire(addr)
            if v6:
                return self._sendto6(data, addr, port, now)
        stack = self.stack
        if not self.broadcast and stack.is_broadcast(addr):
            raise UsageError(Reason.ACCESS, "broadcast without SO_BROADCAST")
        if self.binding is None:
            self._autobind()  # item 57
        b = self.binding
        if self.family == 6:  # to an IPv4 peer: the socket must hold an IPv4 binding
            b = b if b.table is self.layer.ports else b.twin
            if b is None:
                raise UsageError(Reason.NET_UNREACH, "socket bound to an IPv6 address")
        ttl, loop = self.ttl, False
        if stack.is_local(addr):
            src = b.addr or (LOOPBACK if is_loopback(addr) else stack.addr)
        else:
            rt = stack.route(addr)
            if rt is None or is_loopback(b.addr):
                raise UsageError(Reason.NET_UNREACH, "no route to the destination")
            src = b.addr or rt[0]
            if is_multicast(addr):
                ttl, loop = self.mcast_ttl, self.mcast_loop
                src = b.addr or self.mcast_if or src
        pkt = UdpDatagram(b.port, port, data).emit(src, addr)
        r = stack.send_ip(addr, PROTO_UDP, pkt, now, src=src, ttl=ttl, tos=self.tos, loop=loop)
        if r is not None:
            raise UsageError(r)
        self.layer.counters.inc("udp.out")
        return n

    def _sendto6(self, data: bytes | bytearray | memoryview, addr: int, port: int, now: float) -> int:
        stack = self.stack
        if self.binding is None:
            self._autobind()  # item 57
        b = self.binding
        if b.table is not self.layer.ports6:
            raise UsageError(Reason.NET_UNREACH, "socket bound to an IPv4 address")
        src = b.addr or stack.source6(addr)
        if src is None:
            raise UsageError(Reason.NET_UNREACH, "no route to the destination")
        pkt = UdpDatagram(b.port, port, data).emit(src, addr)
        r = stack.send_ip6(addr, PROTO_UDP, pkt, now, src=src, hop_limit=self.hop_limit)
        if r is not None:
            raise UsageError(r)
        self.layer.counters.inc("udp.out")
        return len(data)

    def send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        if self.remote is None:
            self._check_open()
            raise UsageError(Reason.NOT_CONNECTED, "send on an unconnected UDP socket")  # item 50
        return self.sendto(data, self.remote[0], self.remote[1], now)

    # ---- receiving ----------------------------------------------------------------------------
    def _deliver(self, payload: memoryview | bytes, src: int, sport: int, now: float) -> None:
        cnt = self.layer._cnt
        if self.shut_rd:
            cnt["udp.shutdown_dropped"] += 1
            return
        n = len(payload)
        mem = n + DATAGRAM_OVERHEAD
        if self.pending_bytes + n > self.rcvbuf or self.pending_mem + mem > 2 * self.rcvbuf:
            cnt["udp.rcvbuf_overflow"] += 1
            return
        budget = self.stack.memory
        if budget.pressure and self.pending_mem + mem > self.stack.config.udp_rmem_min:
            cnt["udp.mem_drop"] += 1  # memory pressure: each socket keeps udp_rmem_min
            return
        if not budget.allows(mem):
            cnt["udp.mem_drop"] += 1
            return
        self.queue.append((bytes(payload), src, sport))
        self.pending_bytes += n
        self.pending_mem += mem
        budget.charge("udp_rcv", mem)
        cnt["udp.delivered"] += 1
        cb = self._watch
        if cb is not None:
            cb(self, READ)

    def recvfrom(self) -> tuple[bytes, int, int] | None:
        """The next datagram as (data, addr, port), or None when none is queued."""
        self._check_open()
        if self.binding is None:
            raise UsageError(Reason.INVALID, "recv on an unbound UDP socket")  # item 51
        if self.shut_rd:
            raise UsageError(Reason.SHUTDOWN, "receive side shut down")  # item 59
        if not self.queue:
            return None
        item = self.queue.popleft()
        n = len(item[0])
        self.pending_bytes -= n
        self.pending_mem -= n + DATAGRAM_OVERHEAD
        self.stack.memory.uncharge("udp_rcv", n + DATAGRAM_OVERHEAD)
        return item

    def peekfrom(self) -> tuple[bytes, int, int] | None:
        """Like recvfrom, without taking the datagram off the queue (MSG_PEEK)."""
        self._check_open()
        if self.binding is None:
            raise UsageError(Reason.INVALID, "recv on an unbound UDP socket")
        if self.shut_rd:
            raise UsageError(Reason.SHUTDOWN, "receive side shut down")
        return self.queue[0] if self.queue else None

    # ---- multicast membership -----------------------------------------------------------------
    def join_group(self, group: int, now: float, interface: int = 0) -> None:
        """IP_ADD_MEMBERSHIP: receive datagrams to `group` (the host joins it if it was not in it).
        Raises INVALID for a non-multicast address, ADDR_NOT_AVAIL when already joined (Windows'
        error for a second IP_ADD_MEMBERSHIP of one group) or for an `interface` address that is
        neither 0 (any) nor ours."""
        self._check_open()
        self._check_interface(interface)
        if not is_multicast(group):
            raise UsageError(Reason.INVALID, "not a multicast group")
        if group in self.groups:
            raise UsageError(Reason.ADDR_NOT_AVAIL, "group already joined on this socket")
        self.groups.add(group)
        self.stack.igmp.join(group, now)

    def leave_group(self, group: int, now: float, interface: int = 0) -> None:
        """IP_DROP_MEMBERSHIP; INVALID when this socket is not in `group` (Windows' error)."""
        self._check_open()
        self._check_interface(interface)
        if group not in self.groups:
            raise UsageError(Reason.INVALID, "group not joined on this socket")
        self.groups.discard(group)
        self.stack.igmp.leave(group, now)

    def set_multicast_interface(self, addr: int) -> None:
        """IP_MULTICAST_IF: the source address of multicast sends (0: the route's)."""
        self._check_open()
        self._check_interface(addr)
        self.mcast_if = addr

    def _check_interface(self, addr: int) -> None:
        if addr != 0 and addr != self.stack.addr:
            raise UsageError(Reason.ADDR_NOT_AVAIL, "not the address of this host's interface")

    def _set_error(self, kind: Reason, mtu: int = 0) -> None:
        self.error = kind
        if kind is Reason.FRAG_NEEDED:
            self.error_mtu = mtu
        self._fire(ERROR | READ)

    # ---- ending -------------------------------------------------------------------------------
    def shutdown(self, how: int, now: float | None = None) -> None:
        """0: no more receives, 1: no more sends, 2: both (item 59; fine when unconnected)."""
        self._check_open()
        if how not in (0, 1, 2):
            raise UsageError(Reason.INVALID, f"shutdown how={how}")
        if how in (0, 2):
            self.shut_rd = True
            self._discard_queue()
        if how in (1, 2):
            self.shut_wr = True

    def _discard_queue(self) -> None:
        self.queue.clear()
        self.pending_bytes = 0
        self.stack.memory.uncharge("udp_rcv", self.pending_mem)
        self.pending_mem = 0

    def close(self, now: float | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        when = self.stack.last_now if now is None else now
        for group in self.groups:
            self.stack.igmp.leave(group, when)
        self.groups.clear()
        if self.binding is not None:
            self.layer.ports.release(self.binding)
        self._discard_queue()
        self._watch = None
        self.layer.sockets.discard(self)

    def __repr__(self) -> str:
        return f"UdpSocket(local={self.local} remote={self.remote} queued={len(self.queue)})"
