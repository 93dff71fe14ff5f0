"""ICMPv6 (RFC 4443): echo, the errors we send and receive, Packet Too Big and path MTU
(RFC 8201); Neighbor Discovery messages go to `core/ndp.py`, MLD (130-132, 143) to whatever
registered for them (`Icmpv6Layer.handle`).

Errors we send obey RFC 4443 2.4(e): never about an ICMPv6 error or a redirect, never about a
packet sent to a multicast address or as a link-layer multicast/broadcast (except Packet Too
Big and a Parameter Problem code 2 whose option asked for it), never to a source that is not
one unicast node; and they pass a token bucket (2.4(f)). Each suppression is counted.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..wire import icmpv6 as I
from ..wire.errors import Malformed
from ..wire.icmpv6 import Icmpv6Message
from ..wire.ipv6 import HEADER_LEN, MIN_MTU, NH_ICMPV6, Ipv6Packet, is_multicast6, upper_layer
from .icmp import EchoError, EchoReply
from .reasons import Reason
from .rx import RX_LINK_BROADCAST, RX_TRUSTED

if TYPE_CHECKING:
    from .stack import Stack

# Destination unreachable codes -> what the application learns (as Linux's icmpv6_err_convert
# sorts them: no route is the network, port unreachable refuses, the rest is the host)
UNREACH_REASON = {
    I.DU_NO_ROUTE: Reason.NET_UNREACH, I.DU_ADMIN: Reason.HOST_UNREACH,
    I.DU_BEYOND_SCOPE: Reason.HOST_UNREACH, I.DU_ADDR_UNREACH: Reason.HOST_UNREACH,
    I.DU_PORT_UNREACH: Reason.PORT_UNREACH, I.DU_SOURCE_POLICY: Reason.HOST_UNREACH,
    I.DU_REJECT_ROUTE: Reason.HOST_UNREACH,
}
ND_TYPES = frozenset({I.ROUTER_SOLICIT, I.ROUTER_ADVERT, I.NEIGHBOR_SOLICIT, I.NEIGHBOR_ADVERT,
                      I.REDIRECT})
MLD_TYPES = frozenset({I.MLD_QUERY, I.MLD_REPORT, I.MLD_DONE, I.MLD2_REPORT})
Handler = Callable[[Ipv6Packet, memoryview, float, int], None]
PMTU_TABLE_LIMIT = 4096  # destinations with a learned path MTU (oldest forgotten beyond)


class Icmpv6Layer:
    """The ICMPv6 "transport" (next header 58), registered with the stack (`stack.icmp6`)."""

    proto = NH_ICMPV6
    ipv6 = True

    def __init__(self, stack: Stack) -> None:
        cfg = stack.config
        self.stack = stack
        self.counters = stack.counters
        self.rate = cfg.icmp_rate
        self.burst = float(cfg.icmp_burst)
        self.tokens = float(cfg.icmp_burst)
        self.tokens_at: float | None = None
        self.pmtu_expiry_s = cfg.pmtu6_expiry_s
        # destination -> (path MTU, when it expires): RFC 8201 5.3, raised back after expiry
        self.pmtu: OrderedDict[int, tuple[int, float]] = OrderedDict()
        self.on_echo_reply: Callable[[EchoReply], None] | None = None
        self.replies: deque[EchoReply] = deque(maxlen=256)
        self.on_echo_error: Callable[[EchoError], None] | None = None
        self.echo_errors: deque[EchoError] = deque(maxlen=256)
        # type -> handler(ip6, message, now, rx): MLD for the multicast layer (`register`)
        self.handlers: dict[int, Handler] = {}

    def register(self, types: Iterable[int], handler: Handler | None) -> None:
        """Hand the ICMPv6 `types` the stack does not handle itself (MLD 130-132, 143, for the
        multicast layer) to `handler(ip6, message, now, rx)`, `message` the checksum-verified
        ICMPv6 bytes (a memoryview); None removes them."""
        for typ in types:
            if typ < 128 or typ in ND_TYPES or typ in (I.ECHO_REQUEST, I.ECHO_REPLY):
                raise ValueError(f"ICMPv6 type {typ} is handled by the stack itself")
            if handler is None:
                self.handlers.pop(typ, None)
            else:
                self.handlers[typ] = handler

    # ---- sending ------------------------------------------------------------------------------
    def ping(self, dst: int, ident: int, seq: int, payload: bytes, now: float,
             hop_limit: int | None = None, src: int | None = None) -> Reason | None:
        """An echo request; the reply arrives as an `EchoReply` (hook and `replies`)."""
        msg = Icmpv6Message.echo(True, ident, seq, bytes(payload))
        self.counters.inc("icmpv6.echo_requests_out")
        return self.send(dst, msg, now, src=src, hop_limit=hop_limit)

    def send(self, dst: int, msg: Icmpv6Message, now: float, src: int | None = None,
             hop_limit: int | None = None) -> Reason | None:
        """Send `msg` (its checksum needs the source: chosen here when not given)."""
        ip6 = self.stack.ipv6
        if src is None:
            src = dst if ip6.addrs.is_own(dst) else ip6.addrs.select_source(dst)
            if src is None:
                self.counters.inc("icmpv6.no_source")
                return Reason.ADDR_NOT_AVAIL
        r = ip6.send(dst, NH_ICMPV6, msg.emit(src, dst), now, src=src, hop_limit=hop_limit)
        if r is None:
            self.counters.inc("icmpv6.out")
        return r

    def send_error(self, typ: int, code: int, offending: bytes | memoryview | Ipv6Packet,
                   now: float, rest: int = 0, rx: int = 0, to_multicast: bool = False) -> bool:
        """An error about the received packet `offending` (its bytes, or the Ipv6Packet) unless
        RFC 4443 2.4(e) forbids it or the rate limit says no; `rest` is the MTU (Packet Too Big)
        or pointer (Parameter Problem); `rx` the packet's receive flags (RX_LINK_BROADCAST:
        it came as a link-layer multicast). True when sent."""
        c = self.counters
        raw = offending.emit() if isinstance(offending, Ipv6Packet) else offending
        if len(raw) < HEADER_LEN:
            return False
        src, dst = int.from_bytes(raw[8:24], "big"), int.from_bytes(raw[24:40], "big")
        upper = upper_layer(raw)  # the chain may be what is wrong: walk it by lengths only
        is_error = upper is not None and upper[0] == NH_ICMPV6 and (
            upper[1] >= len(raw) or raw[upper[1]] < 128 or raw[upper[1]] == I.REDIRECT)
        if is_error:
            c.inc("icmpv6.no_error_about_error")
            return False
        exempt = typ == I.PACKET_TOO_BIG or (typ == I.PARAM_PROBLEM and code == I.PP_OPTION
                                              and to_multicast)
        if (is_multicast6(dst) or rx & RX_LINK_BROADCAST) and not exempt:
            c.inc("icmpv6.no_error_multicast")
            return False
        if src == 0 or is_multicast6(src):
            c.inc("icmpv6.no_error_bad_source")
            return False
        if not self._take_token(now):
            c.inc("icmpv6.rate_limited")
            return False
        addrs = self.stack.ipv6.addrs
        me = dst if addrs.is_own(dst) else addrs.select_source(src)
        if me is None:
            c.inc("icmpv6.no_source")
            return False
        c.inc("icmpv6.errors_out")
        c.inc(f"icmpv6.out_type{typ}_code{code}")
        self.send(src, Icmpv6Message.error(typ, code, raw, rest), now, src=me)
        return True

    def _take_token(self, now: float) -> bool:
        if self.tokens_at is not None and now > self.tokens_at:
            self.tokens = min(self.burst, self.tokens + (now - self.tokens_at) * self.rate)
        self.tokens_at = now if self.tokens_at is None else max(self.tokens_at, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    # ---- path MTU (RFC 8201) ------------------------------------------------------------------
    def path_mtu(self, dst: int, link_mtu: int, now: float) -> int:
        e = self.pmtu.get(dst)
        if e is None:
            return link_mtu
        if e[1] <= now:
            del self.pmtu[dst]  # 5.3: try the link MTU again after the timeout
            self.counters.inc("icmpv6.pmtu_expired")
            return link_mtu
        return min(e[0], link_mtu)

    def learn_pmtu(self, dst: int, mtu: int, now: float) -> int:
        """A Packet Too Big said `mtu`: lower our estimate (never below 1280, RFC 8201 4;
        never raised by a PTB). Returns the estimate now in force."""
        mtu = max(mtu, MIN_MTU)
        link = self.stack.ipv6.link_mtu
        old = self.path_mtu(dst, link, now)
        if mtu >= old:
            self.counters.inc("icmpv6.pmtu_not_lower")
            return old
        table = self.pmtu
        table.pop(dst, None)
        if len(table) >= PMTU_TABLE_LIMIT:
            table.popitem(last=False)
        table[dst] = (mtu, now + self.pmtu_expiry_s)
        self.counters.inc("icmpv6.pmtu_lowered")
        return mtu

    # ---- receiving ----------------------------------------------------------------------------
    def on_packet(self, ip: Ipv6Packet, now: float, rx: int = 0) -> None:
        c = self.counters
        c.inc("icmpv6.in")
        stack = self.stack
        try:
            msg = Icmpv6Message.parse(ip.payload, ip.src, ip.dst,
                                      stack.config.verify_checksums and not rx & RX_TRUSTED)
        except Malformed as e:
            c.inc(e.reason)
            return
        typ = msg.type
        if typ == I.ECHO_REQUEST:
            self._on_echo_request(ip, msg, now)
        elif typ == I.ECHO_REPLY:
            c.inc("icmpv6.echo_replies_in")
            reply = EchoReply(ip.src, msg.ident, msg.seq, bytes(msg.payload), now)
            self.replies.append(reply)
            if self.on_echo_reply is not None:
                self.on_echo_reply(reply)
        elif typ in I.ERROR_TYPES:
            self._on_error(msg, now)
        elif typ in ND_TYPES:
            ndp = stack.ipv6.ndp
            if ndp is None:
                c.inc("icmpv6.nd_on_tun")  # a point-to-point TUN has no neighbour discovery
            else:
                ndp.on_message(ip, msg, now)
        else:
            handler = self.handlers.get(typ)
            if handler is not None:
                handler(ip, memoryview(ip.payload), now, rx)
            elif typ in MLD_TYPES:
                c.inc("icmpv6.mld_ignored")
            elif typ < 128:
                c.inc("icmpv6.unknown_error")  # RFC 4443 2.4(b): passed up; nothing to pass to
            else:
                c.inc("icmpv6.unknown_type")  # 2.4(a): informational we do not know: discard

    def _on_echo_request(self, ip: Ipv6Packet, msg: Icmpv6Message, now: float) -> None:
        c = self.counters
        c.inc("icmpv6.echo_requests_in")
        if ip.src == 0:
            c.inc("icmpv6.echo_bad_source")
            return
        # RFC 4443 4.1: answered for multicast too, then from a unicast address of ours
        src = ip.dst if not is_multicast6(ip.dst) else None
        reply = Icmpv6Message(I.ECHO_REPLY, 0, msg.rest, msg.payload)
        if self.send(ip.src, reply, now, src=src) is None:
            c.inc("icmpv6.echo_replies_out")

    def _on_error(self, msg: Icmpv6Message, now: float) -> None:
        s = self.stack
        c = self.counters
        c.inc("icmpv6.errors_in")
        try:
            quoted, data = msg.quoted()
        except Malformed as e:
            c.inc(e.reason)
            return
        if not s.ipv6.addrs.is_own(quoted.src):
            c.inc("icmpv6.error_not_ours")
            return
        c.inc(f"icmpv6.in_type{msg.type}_code{msg.code}")
        mtu = 0
        if msg.type == I.DEST_UNREACH:
            kind = UNREACH_REASON.get(msg.code, Reason.HOST_UNREACH)
        elif msg.type == I.PACKET_TOO_BIG:
            kind = Reason.FRAG_NEEDED
            mtu = self.learn_pmtu(quoted.dst, msg.rest, now)
        elif msg.type == I.TIME_EXCEEDED:
            kind = Reason.TTL_EXPIRED
        elif msg.code == I.PP_NEXT_HEADER and msg.rest == quoted.nh_at:
            kind = Reason.PROTO_UNREACH  # the peer does not speak the upper-layer protocol
        else:
            kind = Reason.PARAM_PROBLEM
        if quoted.frag_offset:
            c.inc("icmpv6.error_non_first_fragment")  # no upper-layer header quoted
            return
        t = s.transports.get(quoted.proto)
        if t is None or not getattr(t, "ipv6", False):
            c.inc("icmpv6.error_no_transport")
            return
        t.on_icmp_error(kind, quoted, data, mtu, now)

    def on_icmp_error(self, kind: Reason, quoted: Ipv6Packet, quoted_payload: bytes, mtu: int,
                      now: float) -> None:
        """An error about an ICMPv6 message we sent: reported when it quotes an echo request."""
        if len(quoted_payload) < 8 or quoted_payload[0] != I.ECHO_REQUEST:
            self.counters.inc("icmpv6.error_about_icmp")
            return
        self.counters.inc("icmpv6.echo_errors")
        err = EchoError(quoted.dst, int.from_bytes(quoted_payload[4:6], "big"),
                        int.from_bytes(quoted_payload[6:8], "big"), kind, now)
        self.echo_errors.append(err)
        if self.on_echo_error is not None:
            self.on_echo_error(err)

    def poll(self, now: float) -> None:
        return None

    def poll_at(self) -> float | None:
        return None
