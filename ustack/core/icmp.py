"""ICMP (RFC 792, RFC 1122 3.2.2): echo, the errors we send, and the errors we receive.

Errors we send obey RFC 1122 3.2.2: never about an ICMP error, a datagram sent to a broadcast or
multicast address (IP or link layer), a non-first fragment, or one whose source is not a unicast
host address; and they pass a token bucket. Each suppressed error is counted with its reason.

Errors we receive are mapped to a `Reason` and handed to the transport of the quoted datagram.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from ..wire import icmp as I
from ..wire.errors import Malformed
from ..wire.icmp import IcmpMessage
from ..wire.ipv4 import PROTO_ICMP, Ipv4Packet
from .reasons import Reason
from .rx import RX_LINK_BROADCAST, RX_TRUSTED

if TYPE_CHECKING:
    from .stack import Stack

# Destination unreachable codes -> what the application learns
_UNREACH_REASON = {
    I.NET_UNREACH: Reason.NET_UNREACH, I.HOST_UNREACH: Reason.HOST_UNREACH,
    I.PROTO_UNREACH: Reason.PROTO_UNREACH, I.PORT_UNREACH: Reason.PORT_UNREACH,
    I.FRAG_NEEDED: Reason.FRAG_NEEDED, I.SOURCE_ROUTE_FAILED: Reason.HOST_UNREACH,
    I.NET_UNKNOWN: Reason.NET_UNREACH, I.HOST_UNKNOWN: Reason.HOST_UNREACH,
    I.SOURCE_HOST_ISOLATED: Reason.HOST_UNREACH, I.NET_PROHIBITED: Reason.NET_UNREACH,
    I.HOST_PROHIBITED: Reason.HOST_UNREACH, I.NET_TOS_UNREACH: Reason.NET_UNREACH,
    I.HOST_TOS_UNREACH: Reason.HOST_UNREACH, I.ADMIN_PROHIBITED: Reason.HOST_UNREACH,
    I.HOST_PRECEDENCE_VIOLATION: Reason.HOST_UNREACH, I.PRECEDENCE_CUTOFF: Reason.HOST_UNREACH,
}
TIME_EXCEEDED_REASSEMBLY = 1


class EchoReply(NamedTuple):
    src: int
    ident: int
    seq: int
    payload: bytes
    at: float


class EchoError(NamedTuple):
    """An echo request of ours failed: an ICMP error quoted it, or ARP could not resolve."""

    dst: int
    ident: int
    seq: int
    kind: Reason
    at: float


class IcmpLayer:
    """The ICMP "transport" (protocol 1), registered with the stack like UDP and TCP."""

    proto = PROTO_ICMP

    def __init__(self, stack: Stack) -> None:
        cfg = stack.config
        self.stack = stack
        self.counters = stack.counters
        self.rate = cfg.icmp_rate
        self.burst = float(cfg.icmp_burst)
        self.tokens = float(cfg.icmp_burst)
        self.tokens_at: float | None = None
        self.echo_broadcast = cfg.echo_broadcast
        # Echo replies: a hook, and a small queue (the newest 256) for callers that poll.
        self.on_echo_reply: Callable[[EchoReply], None] | None = None
        self.replies: deque[EchoReply] = deque(maxlen=256)
        # Failed echo requests (unreachable, TTL expired...): a hook and the newest 256
        self.on_echo_error: Callable[[EchoError], None] | None = None
        self.echo_errors: deque[EchoError] = deque(maxlen=256)

    # ---- sending ------------------------------------------------------------------------------
    def ping(self, dst: int, ident: int, seq: int, payload: bytes, now: float,
             ttl: int | None = None) -> Reason | None:
        """Send an echo request; the reply arrives as an `EchoReply` (hook and `replies`)."""
        msg = IcmpMessage.echo(True, ident, seq, bytes(payload)).emit()
        self.counters.inc("icmp.echo_requests_out")
        return self._send(dst, msg, now, ttl=ttl)

    def _send(self, dst: int, msg: bytes, now: float, src: int | None = None,
              ttl: int | None = None) -> Reason | None:
        r = self.stack.send_ip(dst, PROTO_ICMP, msg, now, src=src, ttl=ttl)
        if r is None:
            self.counters.inc("icmp.out")
        return r

    def send_error(self, typ: int, code: int, ip: Ipv4Packet, now: float, mtu: int = 0,
                   rx: int = 0) -> bool:
        """Send an ICMP error about the received datagram `ip` unless RFC 1122 forbids it or the
        rate limit says no. True when sent. `rx`: the receive flags `ip` arrived with (core/rx.py)."""
        s = self.stack
        c = self.counters
        if ip.proto == PROTO_ICMP:
            p = ip.payload
            if len(p) < 1 or p[0] not in (I.ECHO_REQUEST, I.ECHO_REPLY, 13, 14, 15, 16, 17, 18):
                c.inc("icmp.no_error_about_error")  # never an error about an error (or unknown type)
                return False
        if s.is_broadcast(ip.dst) or s.is_multicast(ip.dst) or rx & RX_LINK_BROADCAST:
            c.inc("icmp.no_error_broadcast")
            return False
        if ip.frag_offset:
            c.inc("icmp.no_error_fragment")
            return False
        if not s.routes.is_unicast_host(ip.src):
            c.inc("icmp.no_error_bad_source")
            return False
        if not self._take_token(now):
            c.inc("icmp.rate_limited")
            return False
        quote = ip.header() + bytes(ip.payload[:8])
        msg = IcmpMessage.error(typ, code, quote, mtu).emit()
        # reply from the address the datagram was sent to when it is ours (it always is here)
        src = ip.dst if s.is_local(ip.dst) else None
        c.inc("icmp.errors_out")
        c.inc(f"icmp.out_type{typ}_code{code}")
        self._send(ip.src, msg, now, src=src)
        return True

    def _take_token(self, now: float) -> bool:
        if self.tokens_at is not None and now > self.tokens_at:
            self.tokens = min(self.burst, self.tokens + (now - self.tokens_at) * self.rate)
        self.tokens_at = now if self.tokens_at is None else max(self.tokens_at, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    # ---- receiving ----------------------------------------------------------------------------
    def on_packet(self, ip: Ipv4Packet, now: float, rx: int = 0) -> None:
        c = self.counters
        c.inc("icmp.in")
        try:
            msg = IcmpMessage.parse(ip.payload, self.stack.config.verify_checksums and not rx & RX_TRUSTED)
        except Malformed as e:
            c.inc(e.reason)
            return
        typ = msg.type
        if typ == I.ECHO_REQUEST:
            self._on_echo_request(ip, msg, now, rx)
        elif typ == I.ECHO_REPLY:
            c.inc("icmp.echo_replies_in")
            reply = EchoReply(ip.src, msg.ident, msg.seq, bytes(msg.payload), now)
            self.replies.append(reply)
            if self.on_echo_reply is not None:
                self.on_echo_reply(reply)
        elif typ in (I.DEST_UNREACH, I.TIME_EXCEEDED, I.PARAM_PROBLEM):
            self._on_error(msg, now)
        elif typ == I.SOURCE_QUENCH:
            c.inc("icmp.source_quench_ignored")  # RFC 6633
        elif typ == I.REDIRECT:
            c.inc("icmp.redirect_ignored")  # one interface, one gateway: nothing to redirect
        else:
            c.inc("icmp.unknown_type")

    def _on_echo_request(self, ip: Ipv4Packet, msg: IcmpMessage, now: float, rx: int) -> None:
        s = self.stack
        c = self.counters
        c.inc("icmp.echo_requests_in")
        if (s.is_broadcast(ip.dst) or s.is_multicast(ip.dst) or rx & RX_LINK_BROADCAST) \
                and not self.echo_broadcast:
            c.inc("icmp.echo_broadcast_ignored")
            return
        if not s.routes.is_unicast_host(ip.src):
            c.inc("icmp.echo_bad_source")
            return
        src = ip.dst if s.is_local(ip.dst) else None
        reply = IcmpMessage(I.ECHO_REPLY, 0, msg.rest, msg.payload).emit()
        if self._send(ip.src, reply, now, src=src) is None:
            c.inc("icmp.echo_replies_out")

    def _on_error(self, msg: IcmpMessage, now: float) -> None:
        s = self.stack
        c = self.counters
        c.inc("icmp.errors_in")
        try:
            quoted, transport_bytes = msg.quoted()
        except Malformed as e:
            c.inc(e.reason)
            return
        if not s.is_local(quoted.src):
            c.inc("icmp.error_not_ours")  # the quoted datagram was not sent by us
            return
        if msg.type == I.DEST_UNREACH:
            kind = _UNREACH_REASON.get(msg.code, Reason.HOST_UNREACH)
        elif msg.type == I.TIME_EXCEEDED:
            kind = Reason.TTL_EXPIRED
        else:
            kind = Reason.PARAM_PROBLEM
        mtu = msg.mtu if kind is Reason.FRAG_NEEDED else 0
        c.inc(f"icmp.in_type{msg.type}_code{msg.code}")
        t = s.transports.get(quoted.proto)
        if t is None:
            c.inc("icmp.error_no_transport")
            return
        t.on_icmp_error(kind, quoted, transport_bytes, mtu, now)

    def on_icmp_error(self, kind: Reason, quoted: Ipv4Packet, quoted_payload: bytes, mtu: int,
                      now: float) -> None:
        """An error about an ICMP message we sent: report it when it quotes an echo request."""
        if len(quoted_payload) < 8 or quoted_payload[0] != I.ECHO_REQUEST:
            self.counters.inc("icmp.error_about_icmp")
            return
        self.counters.inc("icmp.echo_errors")
        err = EchoError(quoted.dst, int.from_bytes(quoted_payload[4:6], "big"),
                        int.from_bytes(quoted_payload[6:8], "big"), kind, now)
        self.echo_errors.append(err)
        if self.on_echo_error is not None:
            self.on_echo_error(err)

    def poll(self, now: float) -> None:
        return None

    def poll_at(self) -> float | None:
        return None
