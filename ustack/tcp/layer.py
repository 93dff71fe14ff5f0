"""TcpLayer: the TCP transport registered with a Stack. Demux, resets for closed ports, the
deadline heap, ICMP errors, and the factory for sockets."""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core import events as ev
from ..core.config import StackConfig
from ..core.family import is_ipv6, is_multicast6, is_v4compat, is_v4mapped
from ..core.memory import MemoryBudget
from ..core.reasons import Reason
from ..core.rx import RX_TRUSTED
from ..wire.checksum import wide_sum
from ..wire.errors import Malformed
from ..wire.ipv4 import Ipv4Packet
from ..wire.tcp import ACK, CWR, FIN, HEADER_TS, PSH, RST, SYN, TS_BLOCK_HEAD, TcpSegment
from ..wire.vnet import GsoPacket
from .config import TcpConfig
from .connection import Connection
from .emit import build
from .isn import IsnGenerator
from .pmtu import PathMtuCache
from .seq import gt
from .socket import TcpSocket
from .state import State
from .syncookie import SynCookies

if TYPE_CHECKING:
    from ..wire.ipv6 import Ipv6Packet
    from .listener import Listener

_PORTS_SEQ = struct.Struct("!HHI")
_CHAL_KEY = struct.Struct("!IHIHQ")
_unpack_hdr_ts = HEADER_TS.unpack_from  # header + NOP NOP TS block in one call


class TcpLayer:
    """The TCP transport (contracts.md "Transport"). Needs from the stack only: send_ip, route,
    is_local, is_broadcast, tcp_ports, rng, counters, config (mtu, verify_checksums, tcp)."""

    proto = 6
    ipv6 = True  # on_packet takes Ipv6Packet too (the IPv6 layer delivers only then)

    def __init__(self, stack: Any, config: TcpConfig | None = None) -> None:
        if config is None:
            config = getattr(stack.config, "tcp", None) or TcpConfig()
        self.stack = stack
        self.config = config
        self.rng = stack.rng
        secret = stack.rng.getrandbits(256).to_bytes(32, "big")
        self.isn = IsnGenerator(secret)
        # keys of their own, derived from the same secret (no second draw: seeded runs repeat)
        self.syncookies = SynCookies(hashlib.blake2b(secret, person=b"ustack-syncookie").digest())
        self._chal_secret = hashlib.blake2b(secret, person=b"ustack-challenge", digest_size=32).digest()
        self.counters = stack.counters
        # the stack's memory budget (core/memory.py); a stack without one gets its own
        memory = getattr(stack, "memory", None)
        if memory is None:
            d = StackConfig()
            memory = MemoryBudget(d.mem_low, d.mem_pressure, d.mem_high, stack.counters)
        self.memory: MemoryBudget = memory
        self.count: Callable[..., None] = stack.counters.inc
        self._cnt = stack.counters.raw  # the hot path increments the dict directly
        self.verify = getattr(stack.config, "verify_checksums", True)
        self.conns: dict[tuple[int, int, int, int], Connection] = {}
        self._heap: list[tuple[float, int, Connection]] = []
        self._tick = 0
        self._pending: set[Connection] = set()
        self._acks: list[Connection] = []
        self.now = 0.0
        self.on_trace: Callable[..., None] | None = None  # default trace hook for new connections
        self.pmtu = PathMtuCache()
        stack.tcp = self
        stack.register(self)

    # ---- sockets ------------------------------------------------------------------------------
    def open(self, family: int = 4) -> TcpSocket:
        """A TCP socket of `family` 4 (IPv4 int addresses) or 6 (IPv6 ints, contracts.md "Dual stack")."""
        return TcpSocket(self, family=family)

    def mss_for(self, raddr: int, now: float | None = None, clamp: int | None = None,
                path_mtu: int | None = None) -> int:
        """The MSS to `raddr`, the one rule for every SYN, SYN-ACK (cookies too) and PMTU change:
        the configured one or the interface MTU's (MTU - 40 over IPv4, MTU - 60 over IPv6: the
        fixed headers, RFC 9293 3.7.1 / RFC 8200 8.3), lowered to the path MTU (`path_mtu`
        when given, else one learned from ICMP while that has not expired) and to the socket's
        TCP_MAXSEG `clamp` (TcpSockOpts.mss) when set."""
        stack = self.stack
        if is_ipv6(raddr):
            overhead = 60
            path6 = getattr(stack, "path_mtu6", None)  # the network layer's (RFC 8201)
            mtu = path6(raddr) if path6 is not None else getattr(stack, "mtu", None) or 1280
        else:
            overhead = 40
            mtu = getattr(stack, "mtu", None) or getattr(stack.config, "mtu", 1500)
        mss = self.config.mss or mtu - overhead
        if path_mtu is None:
            path_mtu = self.pmtu.get(raddr, self.now if now is None else now)
        if path_mtu is not None:
            mss = min(mss, path_mtu - overhead)
        return mss if not clamp else min(mss, clamp)

    def in_use(self, laddr: int, lport: int, raddr: int, rport: int) -> bool:
        return (laddr, lport, raddr, rport) in self.conns

    def add_conn(self, conn: Connection) -> None:
        self.conns[conn.key] = conn

    def conn_closed(self, conn: Connection) -> None:
        conn.rcv.release_memory()
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]
        if conn.listener is not None:
            conn.listener.forget(conn)
        b = getattr(conn, "binding", None)
        if b is not None and conn.sock is None:
            self.stack.tcp_ports.release(b)
            conn.binding = None
        self._pending.discard(conn)

    # ---- input --------------------------------------------------------------------------------
    def on_packet(self, ip: Ipv4Packet | Ipv6Packet, now: float, rx: int = 0) -> None:
        buf = ip.payload
        src, dst = ip.src, ip.dst
        if ip.__class__ is not Ipv4Packet:  # IPv6: the same path once the addresses are sane
            if is_v4mapped(src) or is_v4compat(src) or is_v4compat(dst):
                self._cnt["tcp.v6_bad_address"] += 1  # would pose as (or collide with) IPv4
                return
            if is_multicast6(dst) or is_multicast6(src):
                self._cnt["tcp.not_unicast"] += 1
                return
        self.on_ipv4(buf, 0, len(buf), src, dst, now, rx)

    def on_ipv4(self, buf: bytes | memoryview, start: int, end: int, src: int, dst: int,
                now: float, rx: int = 0, gso_size: int = 0) -> None:
        """`on_packet` for the segment buf[start:end] from `src` to `dst`, without an Ipv4Packet
        (the optional Transport entry Stack.receive_batch uses for plain unfragmented packets).
        Family-blind: an IPv6 segment takes the same path (its pseudo-header sums to the same
        value mod 0xffff from 128-bit addresses, and connection keys of the two families never
        collide: core/family.py); only the listener lookup and what is sent choose the family.
        `rx`: the receive flags (core/rx.py); RX_TRUSTED skips the checksum check.

        `gso_size` > 0: a GSO super-segment (receive offload, checksum trusted): the kernel's
        segments of that size, coalesced. The fast path takes it as one segment (as Linux's GRO
        does: one ACK decision, segs_in counts its segments); anything else (out of order,
        flags, options) is cut back into gso_size segments first, so the full processing
        (SACK, out-of-order queue, PAWS, FIN) sees exactly what the wire carried."""
        self.now = now
        verify = self.verify and not rx & RX_TRUSTED  # the device vouched for it (offload)
        n = end - start
        tried = None  # the connection whose on_data_fast declined this segment
        if n > 32:
            # Header prediction on the raw header: the usual data segment (NOP NOP TS, of
            # ACK/SYN/FIN/RST/URG only ACK) for a known connection goes to on_data_fast without
            # building a TcpSegment; anything it declines takes the full way below.
            sport, dport, seq, ack, off, flags, window, _, _, head, tsval, _ = _unpack_hdr_ts(buf, start)
            if off == 0x80 and head == TS_BLOCK_HEAD and flags & 0x37 == ACK:
                conn = self.conns.get((dst, dport, src, sport))
                if conn is not None and (
                        not verify or not (wide_sum(buf[start:end]) + src + dst + 6 + n) % 0xFFFF):
                    try:
                        taken = conn.on_data_fast(seq, ack, window, tsval, buf[start + 32:end], now)
                    except Exception:  # a bug: reset this connection, count it, keep going
                        self._cnt["tcp.in"] += 1
                        self._internal_error()
                        self._kill(conn, now)
                        return
                    if taken:
                        self._cnt["tcp.in"] += 1
                        if gso_size:
                            segs = -(-(n - 32) // gso_size)
                            conn.segs_in += segs - 1
                            self._cnt["tcp.gro_in"] += 1
                            self._cnt["tcp.gro_segs"] += segs
                        return
                    tried = conn
        try:
            seg = TcpSegment.parse(buf if start == 0 and end == len(buf) else buf[start:end], src, dst,
                                   verify)
        except Malformed as e:
            self.count(e.reason)
            return
        self._cnt["tcp.in"] += 1
        conn = self.conns.get((dst, seg.dport, src, seg.sport))
        if gso_size and conn is not None and len(seg.payload) > gso_size:
            self._on_gso_split(conn, seg, gso_size, now)
            return
        if conn is not None:
            if (conn.state is State.TIME_WAIT and seg.flags & (SYN | ACK | RST) == SYN
                    and gt(seg.seq, conn.rcv.rcv_nxt)):
                # RFC 9293 3.10.7.4 / RFC 6191: a new SYN may reopen a TIME-WAIT pair
                listener = self._listener(dst, seg.dport)
                if listener is not None:
                    self.count("tcp.time_wait_reuse")
                    # RFC 1122 4.2.2.13: the new ISN must lie above the old incarnation's
                    # sequence space (Linux: tw_snd_nxt + 65537), whatever the ISN clock says
                    iss = (conn.snd.snd_max + 65537) & 0xFFFFFFFF
                    conn.drop(None, now)
                    listener.on_segment(seg, dst, src, now, iss)
                    return
            try:
                conn.on_segment(seg, now, conn is not tried)
            except Exception:  # a bug: reset this connection, count it, keep the stack going
                self._internal_error()
                self._kill(conn, now)
            return
        stack = self.stack
        if stack.is_broadcast(dst) or dst >> 28 == 0xE or src >> 28 == 0xE:
            self.count("tcp.not_unicast")
            return
        listener = self._listener(dst, seg.dport)
        if listener is not None:
            listener.on_segment(seg, dst, src, now)
            return
        self.count("tcp.no_port")
        self.send_rst_for(dst, src, seg, now)

    def _on_gso_split(self, conn: Connection, seg: TcpSegment, gso_size: int, now: float) -> None:
        """A super-segment the fast path declined, fed to the connection as the segments the
        sender's TSO would have put on the wire: FIN and PSH on the last only, CWR on the first
        (SYN/RST: on the first; the kernel never sends them with GSO: hostile input, harmless).
        The count of pieces is bounded by the 64 KB IPv4 packet over the minimum gso_size."""
        payload = seg.payload
        n = len(payload)
        flags = seg.flags
        last_only = flags & (FIN | PSH)
        first_only = flags & (SYN | RST | CWR)  # TSO puts CWR on the first segment only
        self._cnt["tcp.gro_split"] += 1
        self._cnt["tcp.gro_segs"] += -(-n // gso_size)
        seq = seg.seq
        for off in range(0, n, gso_size):
            end = min(off + gso_size, n)
            piece_flags = flags & ~(FIN | PSH | SYN | RST | CWR)
            if off == 0:
                piece_flags |= first_only
            if end == n:
                piece_flags |= last_only
            piece = seg._replace(seq=(seq + off) & 0xFFFFFFFF, flags=piece_flags,
                                 payload=payload[off:end])
            if off:
                self._cnt["tcp.in"] += 1
            try:
                conn.on_segment(piece, now)
            except Exception:  # a bug: reset this connection, count it, keep the stack going
                self._internal_error()
                self._kill(conn, now)
                return
            if conn.state is State.CLOSED or self.conns.get(conn.key) is not conn:
                return  # reset or gone: the rest of the pieces have no one to go to

    def _listener(self, addr: int, port: int) -> Listener | None:
        stack = self.stack
        for owner in (stack.tcp6_ports if is_ipv6(addr) else stack.tcp_ports).lookup(addr, port):
            listener = getattr(owner, "listener", None)
            if listener is not None:
                return listener
        return None

    def send_rst_for(self, laddr: int, raddr: int, seg: TcpSegment, now: float) -> None:
        """Reset generation, RFC 9293 3.5.2 / 3.10.7.1: never in answer to a RST."""
        flags = seg.flags
        if flags & RST:
            return
        if flags & ACK:
            b = build(laddr, raddr, seg.dport, seg.sport, seg.ack, 0, RST, 0)
        else:
            seg_len = len(seg.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            b = build(laddr, raddr, seg.dport, seg.sport, 0, (seg.seq + seg_len) & 0xFFFFFFFF,
                      RST | ACK, 0)
        self.count("tcp.rst_out")
        self.send(laddr, raddr, b, now, df=False)

    def on_icmp_error(self, kind: Reason, quoted: Ipv4Packet, quoted_payload: bytes, mtu: int,
                      now: float) -> None:
        self.now = now
        if len(quoted_payload) < 8:
            self.count("tcp.icmp_short_quote")
            return
        sport, dport, seq = _PORTS_SEQ.unpack_from(quoted_payload)
        conn = self.conns.get((quoted.src, sport, quoted.dst, dport))
        if conn is None:
            self.count("tcp.icmp_no_conn")
            return
        if kind not in (Reason.NET_UNREACH, Reason.HOST_UNREACH, Reason.PORT_UNREACH,
                        Reason.PROTO_UNREACH, Reason.FRAG_NEEDED):
            return  # time exceeded, parameter problem: ignored (soft, RFC 1122 4.2.3.9)
        conn.on_icmp(kind, seq, mtu, now)

    # ---- output -------------------------------------------------------------------------------
    def output(self, conn: Connection, seg: bytearray, now: float) -> Reason | None:
        if conn.v6:
            return self.stack.send_ip6(conn.raddr, 6, seg, now, src=conn.laddr,
                                       hop_limit=conn.opts.hop_limit, dontfrag=True)
        return self.stack.send_ip(conn.raddr, 6, seg, now, src=conn.laddr, df=conn.df)

    def send(self, laddr: int, raddr: int, seg: bytes | bytearray, now: float,
             df: bool = True) -> Reason | None:
        """A segment not of a connection (RST for a closed port, a SYN cookie's SYN-ACK), over
        the family of `raddr`."""
        if is_ipv6(raddr):
            return self.stack.send_ip6(raddr, 6, seg, now, src=laddr, dontfrag=df)
        return self.stack.send_ip(raddr, 6, seg, now, src=laddr, df=df)

    def gso_max_for(self, raddr: int) -> int:
        """The most payload of a super-segment to `raddr` (transmit offload), 0 = per segment:
        the stack's `gso_max_for` (`gso_max_for6`) where it has transmit offload on."""
        stack = self.stack
        if not getattr(stack, "gso_max", 0):
            return 0
        return stack.gso_max_for6(raddr) if is_ipv6(raddr) else stack.gso_max_for(raddr)

    def output_gso(self, conn: Connection, pkt: GsoPacket, now: float) -> None:
        """A super-segment (`gso_max_for` > 0) to the stack, which fills in the IP header."""
        if conn.v6:
            self.stack.send_gso6(conn.raddr, conn.laddr, pkt, now, hop_limit=conn.opts.hop_limit)
        else:
            self.stack.send_gso(conn.raddr, conn.laddr, pkt, now, df=conn.df)

    def _internal_error(self) -> None:
        import traceback

        self.count("tcp.internal_error")
        log = getattr(self.stack, "internal_errors", None)
        if log is not None:
            log.append(traceback.format_exc())

    def _kill(self, conn: Connection, now: float) -> None:
        """A connection whose code failed: reset it and forget it (its state is suspect)."""
        conn.timers.clear()
        try:
            conn.fail(Reason.ABORTED, now, ev.CLOSE | ev.ERROR)
        except Exception:
            conn.state = State.CLOSED
            self.conn_closed(conn)

    def challenge_budget(self, key: tuple[int, int, int, int], window: int) -> int:
        """How many RFC 5961 challenge ACKs connection `key` may send in its `window`-th second:
        random in [limit/2, limit*3/2) like Linux's, from a keyed hash, so it is unpredictable and
        independent of every other connection (nothing to learn by counting: CVE-2016-5696)."""
        limit = self.config.challenge_ack_limit
        half = (limit + 1) >> 1
        h = hashlib.blake2s(_CHAL_KEY.pack(*key, window), key=self._chal_secret, digest_size=4)
        return half + int.from_bytes(h.digest(), "big") % max(limit, 1)

    def ack_soon(self, conn: Connection) -> None:
        """An ACK is due: send it at the next poll (the end of the current receive batch)."""
        self._acks.append(conn)

    def want_output(self, conn: Connection) -> None:
        """The application read data: a window update may be due at the next poll."""
        self._pending.add(conn)

    # ---- timers -------------------------------------------------------------------------------
    def touch(self, conn: Connection) -> None:
        """Make sure the heap holds an entry no later than the connection's earliest deadline.
        Entries whose time no longer matches `conn.heap_at` are stale and skipped."""
        t = conn.timers.earliest()
        if t is None:
            return
        at = conn.heap_at
        if at is None or t < at:
            conn.heap_at = t
            self._tick += 1
            heapq.heappush(self._heap, (t, self._tick, conn))

    def poll(self, now: float) -> None:
        self.now = now
        if self._acks:
            acks, self._acks = self._acks, []
            for conn in acks:
                conn.ack_queued = False
                if conn.rcv.unacked and conn.state is not State.CLOSED:
                    conn.send_ack(now)
        if self._pending:
            pending, self._pending = self._pending, set()
            for conn in pending:
                if conn.state is not State.CLOSED and conn.rcv.window_update_due():
                    self.count("tcp.window_update")
                    conn.send_ack(now)
        heap = self._heap
        fired = []
        while heap and heap[0][0] <= now:
            at, _, conn = heapq.heappop(heap)
            if conn.heap_at != at:
                continue
            conn.heap_at = None
            if conn.state is State.CLOSED:
                continue
            try:
                conn.on_timers(now)
            except Exception:  # a bug must not stop every other connection's timers
                self._internal_error()
                self._kill(conn, now)
                continue
            if conn.state is not State.CLOSED:
                fired.append(conn)
        for conn in fired:  # re-filed after the loop: each connection fires at most once a poll
            self.touch(conn)

    def poll_at(self) -> float | None:
        if self._pending or self._acks:
            return self.now
        heap = self._heap
        while heap:
            at, _, conn = heap[0]
            if conn.heap_at != at:
                heapq.heappop(heap)  # stale: a newer entry exists or the connection is gone
                continue
            t = conn.timers.earliest()
            if t is not None and t <= at:
                return at
            heapq.heappop(heap)  # the deadline moved later or went away: re-file it lazily
            conn.heap_at = None
            if t is not None and conn.state is not State.CLOSED:
                self.touch(conn)
        return None
