"""A one-connection TCP harness in virtual time (smoltcp style).

`h.peer_sends(at, seg)` feeds a segment from the peer; `h.expect_out(at, [...])` runs timers up to
`at` and asserts exactly which segments the stack emitted since the last check.
The stack under the TCP layer is a small fake offering only what TcpLayer needs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ustack.core.counters import Counters
from ustack.core.ports import PortTable
from ustack.tcp import TcpConfig, TcpLayer
from ustack.wire.ipv4 import Ipv4Packet, ip_int
from ustack.wire.tcp import ACK, FIN, NO_OPTIONS, PSH, RST, SYN, TcpOptions, TcpSegment

LOCAL = ip_int("198.18.0.2")
REMOTE = ip_int("198.18.0.1")
OTHER = ip_int("198.18.0.3")
FAR = ip_int("203.0.113.9")  # no route
PEER_ISS = 100_000
RPORT = 4000
LPORT = 80

FLAGS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, ".": ACK}


def flags_of(text: str) -> int:
    out = 0
    for ch in text:
        out |= FLAGS[ch]
    return out


@dataclass
class FakeConfig:
    mtu: int = 1500
    verify_checksums: bool = True
    tcp: Any = None


class FakeStack:
    """Host services for TcpLayer: send_ip records, one /24 on-link plus no default route."""

    def __init__(self, tcp: TcpConfig, seed: int = 1, mtu: int = 1500) -> None:
        self.config = FakeConfig(mtu=mtu, tcp=tcp)
        self.mtu = mtu
        self.rng = random.Random(seed)
        self.counters = Counters()
        self.tcp_ports = PortTable(self.rng)
        self.sent: list[tuple[int, int, bytes, int | None, bool]] = []
        self.tcp = None
        self.registered: list[Any] = []
        self.fail_send: Any = None  # a Reason send_ip returns instead of sending
        self.internal_errors: list[str] = []  # TcpLayer appends the tracebacks of swallowed bugs

    def register(self, t: Any) -> None:
        self.registered.append(t)

    def send_ip(self, dst: int, proto: int, payload: bytes, now: float, src: int | None = None,
                ttl: int = 64, df: bool = False, tos: int = 0) -> Any:
        if self.fail_send is not None:
            return self.fail_send
        self.sent.append((dst, proto, bytes(payload), src, df))
        return None

    def route(self, dst: int) -> tuple[int, int] | None:
        if dst >> 8 == LOCAL >> 8:
            return (LOCAL, dst)
        return None

    def is_local(self, addr: int) -> bool:
        return addr == LOCAL

    def is_broadcast(self, addr: int) -> bool:
        return addr == 0xFFFFFFFF or addr == (LOCAL | 0xFF)


def seg(flags: str = ".", seq: int = 0, ack: int = 0, window: int = 65535, payload: bytes = b"",
        sport: int = RPORT, dport: int = LPORT, options: TcpOptions = NO_OPTIONS) -> TcpSegment:
    return TcpSegment(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags_of(flags), window,
                      payload, options)


class Harness:
    def __init__(self, seed: int = 1, mtu: int = 1500, **cfg: Any) -> None:
        cfg.setdefault("timestamps", False)
        cfg.setdefault("sack", False)
        cfg.setdefault("window_scaling", False)
        cfg.setdefault("tail_loss_probe", False)  # tested on its own; keeps RTO timing exact
        cfg.setdefault("rcvbuf", 65535)
        cfg.setdefault("sndbuf", 65536)
        self.config = TcpConfig(**cfg)
        self.stack = FakeStack(self.config, seed, mtu)
        self.layer = TcpLayer(self.stack)
        self.now = 0.0
        self.events: list[int] = []

    # ---- time ---------------------------------------------------------------------------------
    def advance(self, at: float) -> None:
        assert at >= self.now - 1e-9, "time goes forward"
        layer = self.layer
        while True:
            t = layer.poll_at()
            if t is None or t > at:
                break
            self.now = max(self.now, t)
            layer.poll(self.now)
        self.now = at
        layer.poll(at)

    # ---- peer side ----------------------------------------------------------------------------
    def peer_sends(self, at: float, s: TcpSegment, src: int = REMOTE, dst: int = LOCAL) -> None:
        self.advance(at)
        raw = s.emit(src, dst)
        self.layer.on_packet(Ipv4Packet(src, dst, 6, memoryview(raw)), at)

    def take(self) -> list[TcpSegment]:
        out = []
        for dst, proto, payload, src, _df in self.stack.sent:
            assert proto == 6
            out.append(TcpSegment.parse(payload, src, dst))
        self.stack.sent.clear()
        return out

    def out(self, at: float | None = None) -> list[TcpSegment]:
        if at is not None:
            self.advance(at)
        return self.take()

    def expect_out(self, at: float, expected: list[dict]) -> list[TcpSegment]:
        got = self.out(at)
        assert len(got) == len(expected), f"expected {len(expected)} segments, got {describe(got)}"
        for g, e in zip(got, expected, strict=True):
            match(g, **e)
        return got

    def expect_nothing(self, at: float) -> None:
        got = self.out(at)
        assert got == [], f"expected silence, got {describe(got)}"

    def assert_no_internal_error(self) -> None:
        """No bug was swallowed: TcpLayer resets a connection whose code raised and counts it."""
        assert self.stack.counters.get("tcp.internal_error") == 0, \
            getattr(self.stack, "internal_errors", "traceback not kept")

    # ---- fixtures -----------------------------------------------------------------------------
    def socket(self) -> Any:
        s = self.layer.open()
        s.watch(lambda sock, bits: self.events.append(bits))
        return s

    def listen(self, port: int = LPORT, backlog: int = 5, addr: int = 0) -> Any:
        s = self.layer.open()
        s.bind(addr, port)
        s.listen(backlog)
        return s

    def connect(self, port: int = RPORT, addr: int = REMOTE) -> tuple[Any, TcpSegment]:
        s = self.socket()
        s.connect(addr, port, self.now)
        syn = self.take()
        assert len(syn) == 1 and syn[0].flags == SYN
        return s, syn[0]

    def established(self, window: int = 65535, options: TcpOptions = NO_OPTIONS,
                    synack_options: TcpOptions | None = None) -> tuple[Any, Any]:
        """An actively opened connection to REMOTE:RPORT; the peer's ISS is PEER_ISS."""
        s, syn = self.connect()
        lport = syn.sport
        self.lport = lport
        self.peer_sends(self.now, seg("S.", PEER_ISS, syn.seq + 1, window, sport=RPORT, dport=lport,
                                      options=synack_options if synack_options is not None else options))
        got = self.take()
        assert len(got) == 1 and got[0].flags == ACK, describe(got)
        return s, s.conn

    def accepted(self, window: int = 65535, options: TcpOptions = NO_OPTIONS,
                 backlog: int = 5) -> tuple[Any, Any, Any]:
        """A passively opened connection from REMOTE:RPORT to LOCAL:LPORT, accepted."""
        lst = self.listen(backlog=backlog)
        self.lport = LPORT
        self.peer_sends(self.now, seg("S", PEER_ISS, 0, window, options=options))
        synack = self.take()
        assert len(synack) == 1 and synack[0].flags == SYN | ACK, describe(synack)
        self.peer_sends(self.now, seg(".", PEER_ISS + 1, synack[0].seq + 1, window))
        assert self.take() == []
        s = lst.accept()
        assert s is not None
        s.watch(lambda sock, bits: self.events.append(bits))
        return lst, s, s.conn

    def pseg(self, flags: str = ".", seq: int = 0, ack: int = 0, **kw: Any) -> TcpSegment:
        """A segment from the peer to the current connection's local port."""
        if "dport" not in kw:
            kw["dport"] = self.lport
        return seg(flags, seq, ack, **kw)


def describe(segs: list[TcpSegment]) -> str:
    from ustack.wire.tcp import flags_str
    return "[" + ", ".join(
        f"{flags_str(s.flags)} seq={s.seq} ack={s.ack} win={s.window} len={len(s.payload)} opts={s.options}"
        for s in segs) + "]"


def match(s: TcpSegment, **e: Any) -> None:
    for k, v in e.items():
        if k == "flags":
            assert s.flags == flags_of(v), f"flags {s.flags:#x} != {v!r} in {describe([s])}"
        elif k == "payload":
            assert bytes(s.payload) == v, f"payload {bytes(s.payload)[:40]!r} != {v[:40]!r}"
        elif k == "len":
            assert len(s.payload) == v, f"len {len(s.payload)} != {v} in {describe([s])}"
        elif k in ("mss", "wscale", "sack_perm", "sack", "ts"):
            assert getattr(s.options, k) == v, f"{k} {getattr(s.options, k)} != {v}"
        else:
            assert getattr(s, k) == v, f"{k} {getattr(s, k)} != {v} in {describe([s])}"
