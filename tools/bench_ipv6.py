"""IPv6 beside IPv4, sans-I/O: µs per packet for the same work over each family, measured in one
run, and the ratio IPv6 / IPv4. Also what an idle IPv6 layer adds to every `Stack.poll`.

    .venv/bin/python tools/bench_ipv6.py [--quick]

Cases: parse the network header (IPv6 with none and with two extension headers), an echo
request answered (receive + the reply out of `poll`), a UDP datagram delivered to a bound socket
and read back, and `poll` + `poll_at` of an idle stack with IPv6 on vs off.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable

from ustack.core import Stack, StackConfig
from ustack.wire import IcmpMessage, Ipv4Packet, UdpDatagram, ip_int
from ustack.wire.icmpv6 import Icmpv6Message
from ustack.wire.ipv6 import Ipv6Packet, ip6_int

SRC4, DST4 = ip_int("198.18.0.1"), ip_int("198.18.0.2")
SRC6, DST6 = ip6_int("2001:2::1"), ip6_int("2001:2::2")
PAYLOAD = bytes(range(56))


def per_call_us(fn: Callable[[], object], budget_s: float) -> float:
    """Best of 5 repeats, each sized to take about budget_s/5."""
    timer = timeit.Timer(fn)
    n = 1
    while (t := timer.timeit(number=n)) < budget_s / 50:
        n *= 4
    number = max(1, int(n * (budget_s / 5) / max(t, 1e-9)))
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


def stack(**kw: object) -> Stack:
    return Stack(StackConfig(addr="198.18.0.2/24", addr6="2001:2::2/64", seed=1, icmp_rate=1e9,
                             icmp_burst=10**9, **kw))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run (smoke test)")
    args = ap.parse_args(argv)
    budget = 0.02 if args.quick else 1.0

    echo4 = Ipv4Packet(SRC4, DST4, 1, IcmpMessage.echo(True, 1, 1, PAYLOAD).emit()).emit()
    echo6 = Ipv6Packet(SRC6, DST6, 58, Icmpv6Message.echo(True, 1, 1, PAYLOAD).emit(SRC6, DST6)).emit()
    udp4 = Ipv4Packet(SRC4, DST4, 17, UdpDatagram(40000, 9, PAYLOAD).emit(SRC4, DST4)).emit()
    udp6 = Ipv6Packet(SRC6, DST6, 17, UdpDatagram(40000, 9, PAYLOAD).emit(SRC6, DST6)).emit()
    # hop-by-hop (PadN) + destination options (PadN) before the ICMPv6 message
    body = Icmpv6Message.echo(True, 1, 1, PAYLOAD).emit(SRC6, DST6)
    chain = bytes([60, 0, 1, 4, 0, 0, 0, 0]) + bytes([58, 0, 1, 4, 0, 0, 0, 0]) + body
    ext6 = Ipv6Packet(SRC6, DST6, 0, chain).emit()

    s4, s6 = stack(), stack()
    u4, u6 = s4.udp.open(), s6.udp.open(family=6)
    u4.bind(DST4, 9)
    u6.bind(DST6, 9)

    def answer(s: Stack, frame: bytes) -> Callable[[], object]:
        def run() -> object:
            s.receive(frame, 1.0)
            return s.poll(1.0)
        return run

    def deliver(s: Stack, sock: object, frame: bytes) -> Callable[[], object]:
        def run() -> object:
            s.receive(frame, 1.0)
            return sock.recvfrom()  # type: ignore[attr-defined]
        return run

    pairs = [
        ("parse network header", lambda: Ipv4Packet.parse(echo4), lambda: Ipv6Packet.parse(echo6)),
        ("parse, IPv6 with hop-by-hop + dest. options", lambda: Ipv4Packet.parse(echo4),
         lambda: Ipv6Packet.parse(ext6)),
        ("echo request answered", answer(s4, echo4), answer(s6, echo6)),
        ("UDP datagram delivered and read", deliver(s4, u4, udp4), deliver(s6, u6, udp6)),
    ]
    rows = []
    for name, f4, f6 in pairs:
        a, b = per_call_us(f4, budget), per_call_us(f6, budget)
        rows.append((name, a, b, b / a))
    off, on = stack(ipv6=False), stack()
    idle_off = per_call_us(lambda: (off.poll(1.0), off.poll_at()), budget)
    idle_on = per_call_us(lambda: (on.poll(1.0), on.poll_at()), budget)
    for s in (s4, s6, off, on):
        assert s.counters.get("stack.internal_error") == 0, list(s.internal_errors)
    assert s6.counters.get("icmpv6.echo_replies_out") > 0 and s6.counters.get("udp.in") > 0
    _print(rows, idle_off, idle_on)
    return 0


def _print(rows: list[tuple[str, float, float, float]], idle_off: float, idle_on: float) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="IPv6 vs IPv4, sans-I/O, µs per packet (one run)")
    for col, just in (("case", "left"), ("IPv4 µs", "right"), ("IPv6 µs", "right"), ("IPv6/IPv4", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for name, a, b, r in rows:
        t.add_row(name, f"{a:.2f}", f"{b:.2f}", f"{r:.2f}")
    t.add_row("idle poll + poll_at (IPv6 off / on)", f"{idle_off:.2f}", f"{idle_on:.2f}",
              f"{idle_on / idle_off:.2f}")
    Console(width=120).print(t)


if __name__ == "__main__":
    sys.exit(main())
