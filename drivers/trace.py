"""Tracer middleware: one tcpdump-like line per frame in or out.

    12.345678 > IP 198.18.0.2.49152 > 198.18.0.1.7: Flags [S], seq 123, win 65535,
                options [mss 1460], length 0        (all on one line)

The first arrow is the direction ('>' sent by the stack, '<' received). Decoding uses
`ustack.wire`; whatever cannot be decoded prints `[malformed: reason]` and never raises, since
a trace must survive exactly the frames that are worth looking at.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from .base import Device, Middleware

_wire_error = ""
try:  # drivers know no stack; the wire codecs are an optional dependency of the tracer only
    from ustack import wire as _wire
    from ustack.wire import icmp as _icmp
    from ustack.wire import tcp as _tcp
    from ustack.wire.ethernet import mac_str as _mac_str
except Exception as _e:  # noqa: BLE001 - any import failure just disables decoding
    _wire = None
    _wire_error = f"{type(_e).__name__}: {_e}"

PROTO_ICMP, PROTO_TCP, PROTO_UDP = 1, 6, 17
ETH_IPV4, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD


def _ip(addr: int) -> str:
    return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"


def format_frame(frame: bytes | memoryview, medium: str) -> str:
    """One line describing `frame` ("ip": an IPv4 packet; "ethernet": an Ethernet II frame).

    Never raises: undecodable input yields a `[malformed: reason]` text.
    """
    if _wire is None:
        return f"[undecoded: ustack.wire unavailable ({_wire_error})] length {len(frame)}"
    try:
        if medium == "ethernet":
            return _format_ethernet(frame)
        return _format_ip(frame)
    except _wire.Malformed as e:
        return f"[malformed: {e.reason}] length {len(frame)}"
    except Exception as e:  # noqa: BLE001 - a decoder bug must not kill the trace
        return f"[malformed: decoder error {type(e).__name__}: {e}] length {len(frame)}"


def _format_ethernet(frame: bytes | memoryview) -> str:
    eth = _wire.EthernetFrame.parse(frame)
    head = f"{_mac_str(eth.src)} > {_mac_str(eth.dst)}, "
    if eth.ethertype == ETH_IPV4:
        return head + _format_ip(eth.payload)
    if eth.ethertype == ETH_ARP:
        try:
            arp = _wire.ArpPacket.parse(eth.payload)
        except _wire.Malformed as e:
            return head + f"ARP [malformed: {e.reason}]"
        n = len(eth.payload)
        if arp.op == 1:
            return head + f"ARP, Request who-has {_ip(arp.tpa)} tell {_ip(arp.spa)}, length {n}"
        return head + f"ARP, Reply {_ip(arp.spa)} is-at {_mac_str(arp.sha)}, length {n}"
    if eth.ethertype == ETH_IPV6:
        return head + f"IP6, length {len(eth.payload)}"
    return head + f"ethertype {eth.ethertype:#06x}, length {len(eth.payload)}"


def _format_ip(buf: bytes | memoryview) -> str:
    if len(buf) and buf[0] >> 4 == 6:
        return f"IP6, length {len(buf)}"
    bad = ""
    try:
        ip = _wire.Ipv4Packet.parse(buf)
    except _wire.Malformed as e:
        if e.reason != "ipv4.bad_checksum":
            return f"IP [malformed: {e.reason}] length {len(buf)}"
        ip = _wire.Ipv4Packet.parse(buf, verify=False)  # show what the corrupt header says
        bad = " [malformed: ipv4.bad_checksum]"
    src, dst = _ip(ip.src), _ip(ip.dst)
    frag = ""
    if ip.mf or ip.frag_offset:
        frag = f" (frag {ip.ident}:{len(ip.payload)}@{ip.frag_offset}{'+' if ip.mf else ''})"
        if ip.frag_offset:  # no transport header in a later fragment
            return f"IP {src} > {dst}: ip-proto-{ip.proto}{frag}{bad}"
    # A first fragment carries a partial transport payload: its checksum cannot be checked.
    verify = not (ip.mf or bad)
    try:
        if ip.proto == PROTO_TCP:
            return _format_tcp(ip, src, dst, verify) + frag + bad
        if ip.proto == PROTO_UDP:
            return _format_udp(ip, src, dst, verify) + frag + bad
        if ip.proto == PROTO_ICMP:
            return f"IP {src} > {dst}: " + _format_icmp(ip, verify) + frag + bad
    except _wire.Malformed as e:
        return f"IP {src} > {dst}: ip-proto-{ip.proto} [malformed: {e.reason}] length {len(ip.payload)}{frag}"
    return f"IP {src} > {dst}: ip-proto-{ip.proto} {len(ip.payload)}{frag}{bad}"


def _parse_l4(parse: Callable[..., Any], ip: Any, verify: bool) -> tuple[Any, str]:
    """Parse a transport header; on a bad checksum, parse unverified and flag it."""
    try:
        return parse(ip.payload, ip.src, ip.dst, verify=verify), ""
    except _wire.Malformed as e:
        if not e.reason.endswith("bad_checksum"):
            raise
        return parse(ip.payload, ip.src, ip.dst, verify=False), f" [malformed: {e.reason}]"


def _format_tcp(ip: Any, src: str, dst: str, verify: bool) -> str:
    seg, bad = _parse_l4(_wire.TcpSegment.parse, ip, verify)
    n = len(seg.payload)
    parts = [f"Flags [{_tcp.flags_str(seg.flags)}]", f"seq {seg.seq}:{(seg.seq + n) & 0xFFFFFFFF}"
             if n else f"seq {seg.seq}"]
    if seg.flags & _tcp.ACK:
        parts.append(f"ack {seg.ack}")
    parts.append(f"win {seg.window}")
    if seg.flags & _tcp.URG:
        parts.append(f"urg {seg.urg}")
    opts = _format_tcp_options(seg.options)
    if opts:
        parts.append(f"options [{opts}]")
    parts.append(f"length {n}")
    return f"IP {src}.{seg.sport} > {dst}.{seg.dport}: " + ", ".join(parts) + bad


def _format_tcp_options(o: Any) -> str:
    out = []
    if o.mss is not None:
        out.append(f"mss {o.mss}")
    if o.sack_perm:
        out.append("sackOK")
    if o.ts is not None:
        out.append(f"TS val {o.ts[0]} ecr {o.ts[1]}")
    if o.wscale is not None:
        out.append(f"wscale {o.wscale}")
    if o.sack:
        out.append(f"sack {len(o.sack)} " + " ".join(f"{{{left}:{right}}}" for left, right in o.sack))
    return ",".join(out)


def _format_udp(ip: Any, src: str, dst: str, verify: bool) -> str:
    dgram, bad = _parse_l4(_wire.UdpDatagram.parse, ip, verify)
    return f"IP {src}.{dgram.sport} > {dst}.{dgram.dport}: UDP, length {len(dgram.payload)}{bad}"


def _format_icmp(ip: Any, verify: bool) -> str:
    bad = ""
    try:
        m = _wire.IcmpMessage.parse(ip.payload, verify=verify)
    except _wire.Malformed as e:
        if e.reason != "icmp.bad_checksum":
            raise
        m = _wire.IcmpMessage.parse(ip.payload, verify=False)
        bad = " [malformed: icmp.bad_checksum]"
    n = len(ip.payload)
    if m.type in (_icmp.ECHO_REQUEST, _icmp.ECHO_REPLY):
        kind = "request" if m.type == _icmp.ECHO_REQUEST else "reply"
        return f"ICMP echo {kind}, id {m.ident}, seq {m.seq}, length {n}{bad}"
    if m.type == _icmp.DEST_UNREACH:
        what = _icmp.UNREACH_NAMES.get(m.code, f"code {m.code}")
        try:
            q, qpayload = m.quoted()
        except _wire.Malformed:
            return f"ICMP unreachable - {what} [malformed: icmp.bad_quote], length {n}{bad}"
        qdst = _ip(q.dst)
        if m.code == _icmp.PORT_UNREACH and q.proto in (PROTO_TCP, PROTO_UDP) and len(qpayload) >= 4:
            dport = int.from_bytes(qpayload[2:4], "big")
            name = "tcp" if q.proto == PROTO_TCP else "udp"
            return f"ICMP {qdst} {name} port {dport} unreachable, length {n}{bad}"
        if m.code == _icmp.FRAG_NEEDED:
            return f"ICMP {qdst} unreachable - need to frag (mtu {m.mtu}), length {n}{bad}"
        return f"ICMP {qdst} unreachable - {what}, length {n}{bad}"
    if m.type == _icmp.TIME_EXCEEDED:
        return f"ICMP time exceeded in-transit, length {n}{bad}"
    return f"ICMP type {m.type} code {m.code}, length {n}{bad}"


class Tracer(Middleware):
    """Prints one line per frame passing through (`direction`: "both", "rx" or "tx").

    `out` is a text stream or any callable taking one line (e.g. `logger.debug`). Times are
    `now - clock_origin` with microsecond precision.
    """

    def __init__(self, inner: Device, out: TextIO | Callable[[str], Any] | None = None,
                 clock_origin: float = 0.0, *, direction: str = "both") -> None:
        super().__init__(inner)
        if direction not in ("both", "rx", "tx"):
            raise ValueError(f"direction must be both, rx or tx, not {direction!r}")
        if out is None:
            out = sys.stderr
        write = getattr(out, "write", None)
        if write is not None:
            self._emit: Callable[[str], Any] = lambda line: write(line + "\n")
        elif callable(out):
            self._emit = out
        else:
            raise TypeError("out must be a text stream or a callable")
        self.clock_origin = clock_origin
        self._rx = direction in ("both", "rx")
        self._tx = direction in ("both", "tx")
        self.lines_lost = 0  # lines a closed or broken sink did not take (traffic goes on)

    def _line(self, arrow: str, frame: bytes, now: float) -> None:
        try:
            self._emit(f"{now - self.clock_origin:.6f} {arrow} {format_frame(frame, self.inner.medium)}")
        except Exception:  # noqa: BLE001 - a closed or broken trace sink never stops traffic
            self.lines_lost += 1

    def note_fault(self, event: Any) -> None:
        """A fault event (drivers.FaultEvent) as a `!` line: `1.250000 ! fault drop tx (...): IP ...`."""
        try:
            self._emit(f"{event.t - self.clock_origin:.6f} ! {event.text()}")
        except Exception:  # noqa: BLE001 - a closed or broken trace sink never stops traffic
            self.lines_lost += 1

    def send(self, frame: bytes, now: float) -> None:
        if self._tx:
            self._line(">", frame, now)
        self.inner.send(frame, now)

    def recv(self, now: float) -> bytes | None:
        frame = self.inner.recv(now)
        if frame is not None and self._rx:
            self._line("<", frame, now)
        return frame

    def recv_batch(self, now: float, limit: int = 64) -> list[bytes]:
        frames = self.inner.recv_batch(now, limit)
        if self._rx:
            for frame in frames:
                self._line("<", frame, now)
        return frames
