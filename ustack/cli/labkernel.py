"""The kernel's side of the lab: plain Python sockets served by the Linux kernel in the lab's
private namespace (threads of the lab process; the bulk-transfer sink and source in a child
process, `labpeer`, so they never wait for the GIL), plus the routes that make it misbehave.

    198.18.0.1 (kernel)                    ustack 198.18.0.2
      tcp/7    echo                      ---- TUN/TAP link ----
      udp/7    echo (bound to 0.0.0.0, so it also hears broadcasts)
      tcp/9    sink: counts and hashes what it gets (upload check)
      tcp/19   source: sends the transfer pattern, then closes (download check)
      udp/7777 a second sender for the connected-UDP filtering scenario
      tcp/81, udp/9999  closed
    198.18.0.77  `unreachable` route (forwarding on): ICMP host unreachable
    198.18.0.78  `blackhole` route: silence, so connects time out

On a TAP link ustack must resolve .77/.78 by ARP before it sends anything; a small responder
answers for them with the kernel interface's MAC (what a router doing proxy ARP would do), so
the frames reach the kernel's routing and the same errors come back.
"""

from __future__ import annotations

import hashlib
import json
import queue
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import netns
from .services import http_body_bytes

KERNEL = "198.18.0.1"
USTACK = "198.18.0.2"
PREFIX = 24
KERNEL6 = "2001:2::1"  # RFC 5180 benchmarking range (a tour with ping6 only)
USTACK6 = "2001:2::2"
PREFIX6 = 64
BROADCAST = "198.18.0.255"
UNREACH_HOST = "198.18.0.77"
BLACKHOLE_HOST = "198.18.0.78"
NO_ROUTE_HOST = "198.19.0.1"  # outside ustack's /24 and it has no gateway: no route at all
ECHO_PORT = 7
SINK_PORT = 9
SOURCE_PORT = 19
OTHER_UDP_PORT = 7777
CLOSED_TCP_PORT = 81
CLOSED_UDP_PORT = 9999
IO_TIMEOUT_S = 30.0


def pattern_sha256(n: int) -> str:
    """SHA-256 of the first n bytes of the transfer pattern (byte k is k mod 256)."""
    h = hashlib.sha256()
    off = 0
    while off < n:
        k = min(1 << 20, n - off)
        h.update(http_body_bytes(off, k))
        off += k
    return h.hexdigest()


@dataclass
class SinkResult:
    peer: tuple[str, int]
    nbytes: int
    sha256: str
    error: str | None = None


@dataclass
class PingResult:
    sent: int
    rtts_s: list[float] = field(default_factory=list)  # one per echo reply, in arrival order

    @property
    def received(self) -> int:
        return len(self.rtts_s)

    def rtt_text(self) -> str:
        """min/avg/max in ms, as ping prints them ("" without replies)."""
        if not self.rtts_s:
            return ""
        ms = [r * 1000 for r in self.rtts_s]
        return f"{min(ms):.3f}/{sum(ms) / len(ms):.3f}/{max(ms):.3f} ms"


def ping(dst: str, count: int = 3, interval_s: float = 0.2, wait_s: float = 2.0) -> PingResult:
    """ICMP echo requests from the kernel's side of the link (a raw ICMP socket of this
    namespace; the lab runs as root), so the lab needs no `ping` program. `count` requests
    `interval_s` apart; replies are matched by source, identifier and sequence number and
    awaited until `wait_s` after the last request."""
    return _ping(socket.AF_INET, dst, count, interval_s, wait_s)


def ping6(dst: str, count: int = 3, interval_s: float = 0.2, wait_s: float = 2.0) -> PingResult:
    """`ping` over IPv6: ICMPv6 echo requests from a raw ICMPv6 socket (the kernel fills in the
    checksum and hands back the message without the IPv6 header)."""
    return _ping(socket.AF_INET6, dst, count, interval_s, wait_s)


def _ping(family: int, dst: str, count: int, interval_s: float, wait_s: float) -> PingResult:
    from ustack import wire
    from ustack.wire import icmp, icmpv6

    v6 = family == socket.AF_INET6
    ident = (threading.get_ident() ^ time.monotonic_ns()) & 0xFFFF
    payload = bytes(range(56))  # ping's default size
    sent_at: dict[int, float] = {}
    answered: set[int] = set()
    result = PingResult(0)
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    with socket.socket(family, socket.SOCK_RAW, proto) as s:
        s.setblocking(False)
        next_send = time.monotonic()
        deadline = next_send + (count - 1) * interval_s + wait_s
        while (now := time.monotonic()) < deadline and result.received < count:
            if len(sent_at) < count and now >= next_send:
                seq = len(sent_at) + 1
                if v6:  # the checksum field is the kernel's to fill (IPV6_CHECKSUM)
                    msg = icmpv6.Icmpv6Message.echo(True, ident, seq, payload).emit(0, 0)
                    s.sendto(msg[:2] + b"\0\0" + msg[4:], (dst, 0))
                else:
                    s.sendto(icmp.IcmpMessage.echo(True, ident, seq, payload).emit(), (dst, 0))
                sent_at[seq] = now
                result.sent += 1
                next_send += interval_s
            until = min(deadline, next_send) if len(sent_at) < count else deadline
            ready, _, _ = select.select([s], [], [], max(0.0, until - time.monotonic()))
            if not ready:
                continue
            got_at = time.monotonic()
            try:
                if v6:
                    data, peer = s.recvfrom(65535)
                    src_ok = peer[0] == dst
                    msg = icmpv6.Icmpv6Message.parse(data, 0, 0, verify=False)  # verified by the kernel
                    reply_type = icmpv6.ECHO_REPLY
                else:
                    ip = wire.Ipv4Packet.parse(s.recv(65535))
                    src_ok = ip.src == wire.ip_int(dst)
                    msg = icmp.IcmpMessage.parse(ip.payload)
                    reply_type = icmp.ECHO_REPLY
            except (wire.Malformed, BlockingIOError):
                continue
            if (src_ok and msg.type == reply_type and msg.ident == ident
                    and bytes(msg.payload) == payload and msg.seq in sent_at and msg.seq not in answered):
                answered.add(msg.seq)  # a duplicated reply is not a second one
                result.rtts_s.append(got_at - sent_at[msg.seq])
    return result


class KernelSide:
    """Kernel-side services and routes of the lab; `close()` stops every thread it started."""

    def __init__(self, ifname: str, medium: str, transfer_bytes: int) -> None:
        self.ifname = ifname
        self.medium = medium
        self.transfer_bytes = transfer_bytes
        self.sink_results: queue.Queue[SinkResult] = queue.Queue()
        self.source_done: queue.Queue[tuple[int, str | None]] = queue.Queue()
        self.udp_seen: queue.Queue[tuple[bytes, tuple[str, int]]] = queue.Queue()
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._peer: subprocess.Popen[str] | None = None

    # -- setup ----------------------------------------------------------------------------------
    def start(self) -> None:
        netns.sysctl("net.ipv4.ip_forward", "1")
        netns.ip("route", "add", "unreachable", f"{UNREACH_HOST}/32")
        netns.ip("route", "add", "blackhole", f"{BLACKHOLE_HOST}/32")
        self._tcp_server(ECHO_PORT, self._echo)
        self._start_peer()
        u = self._sock(socket.SOCK_DGRAM, ("0.0.0.0", ECHO_PORT))
        self._thread("k-udp-echo", self._udp_echo, u)
        self.other_udp = self._sock(socket.SOCK_DGRAM, (KERNEL, OTHER_UDP_PORT))
        if self.medium == "ethernet":
            self._thread("k-proxy-arp", self._proxy_arp, [UNREACH_HOST, BLACKHOLE_HOST])

    def _sock(self, kind: int, addr: tuple[str, int]) -> socket.socket:
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
        s.settimeout(0.25)
        self._socks.append(s)
        return s

    def _thread(self, name: str, fn: Any, *args: Any) -> None:
        t = threading.Thread(target=self._guard, args=(fn, *args), name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except OSError:
            if not self._stop.is_set():
                raise

    def _start_peer(self) -> None:
        """The sink (port 9) and source (port 19) in their own process; its JSON lines become
        `sink_results` / `source_done`."""
        self._peer = subprocess.Popen(
            [sys.executable, "-m", "ustack.cli.labpeer", KERNEL, str(SINK_PORT), str(SOURCE_PORT),
             str(self.transfer_bytes)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._peer.stdout is not None
        ready = self._peer.stdout.readline()
        if ready.strip() != "ready":
            self._peer.kill()
            raise RuntimeError(f"the transfer peer did not start (said {ready.strip()!r})")
        self._thread("k-peer", self._read_peer, self._peer.stdout)

    def _read_peer(self, out: Any) -> None:
        for line in out:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("kind") == "sink":
                self.sink_results.put(SinkResult(tuple(rec["peer"]), rec["nbytes"], rec["sha256"],
                                                 rec["error"]))
            elif rec.get("kind") == "source":
                self.source_done.put((rec["sent"], rec["error"]))

    def close(self) -> None:
        self._stop.set()
        if self._peer is not None:
            try:
                self._peer.stdin.close()  # type: ignore[union-attr] - its cue to exit
                self._peer.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                self._peer.kill()
                self._peer.wait(5)
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(1.0)

    # -- TCP ------------------------------------------------------------------------------------
    def _tcp_server(self, port: int, handler: Any) -> None:
        ls = self._sock(socket.SOCK_STREAM, (KERNEL, port))
        ls.listen(64)
        self._thread(f"k-tcp-{port}", self._accept_loop, ls, handler)

    def _accept_loop(self, ls: socket.socket, handler: Any) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = ls.accept()
            except TimeoutError:
                continue
            conn.settimeout(IO_TIMEOUT_S)
            self._thread("k-conn", self._conn, conn, peer, handler)

    def _conn(self, conn: socket.socket, peer: tuple[str, int], handler: Any) -> None:
        with conn:
            handler(conn, peer)

    @staticmethod
    def _echo(conn: socket.socket, peer: tuple[str, int]) -> None:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass

    # -- UDP ------------------------------------------------------------------------------------
    def _udp_echo(self, s: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data, peer = s.recvfrom(65535)
            except TimeoutError:
                continue
            self.udp_seen.put((data, peer))
            s.sendto(data, peer)

    def send_from_other_port(self, data: bytes, port: int) -> None:
        self.other_udp.sendto(data, (USTACK, port))

    # -- TAP: answer ARP for the unreachable/blackhole addresses --------------------------------
    def _proxy_arp(self, addrs: list[str]) -> None:
        ETH_P_ARP = 0x0806
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        s.bind((self.ifname, ETH_P_ARP))
        s.settimeout(0.25)
        self._socks.append(s)
        mine = {socket.inet_aton(a) for a in addrs}
        mac = s.getsockname()[4]  # the kernel interface's MAC (sysfs would show the parent netns)
        while not self._stop.is_set():
            try:
                frame = s.recv(2048)
            except TimeoutError:
                continue
            if len(frame) < 42 or frame[12:14] != b"\x08\x06":
                continue
            htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
            sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
            if op != 1 or tpa not in mine or (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
                continue
            reply = (sha + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)
                     + mac + tpa + sha + spa)
            s.send(reply)
