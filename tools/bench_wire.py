"""Wire-codec hot path: µs per parse of an IPv4+TCP packet (timestamps option) for ustack, dpkt and
scapy, emit cost, and the folding checksum against the word-by-word reference. One run, ratios.

    .venv/bin/python tools/bench_wire.py [--quick]

Notes on fairness: ustack verifies the IPv4 and TCP checksums and decodes the TCP options; dpkt
verifies nothing and leaves options as bytes (so a "dpkt + options" row adds parse_opts);
scapy dissects everything into Python objects.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable

from ustack.wire import Ipv4Packet, TcpOptions, TcpSegment, ip_int
from ustack.wire.checksum import internet_checksum, reference_checksum
from ustack.wire.ipv4 import quick_header
from ustack.wire.tcp import ACK, PSH

SRC, DST = ip_int("198.18.0.1"), ip_int("198.18.0.2")


def per_call_us(fn: Callable[[], object], budget_s: float) -> float:
    """Best of 5 repeats, each sized to take about budget_s/5."""
    timer = timeit.Timer(fn)
    n = 1
    while (t := timer.timeit(number=n)) < budget_s / 50:  # calibrate: ~2% of the budget
        n *= 4
    number = max(1, int(n * (budget_s / 5) / max(t, 1e-9)))
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run (smoke test)")
    ap.add_argument("--payload", type=int, default=100, help="TCP payload bytes (default 100)")
    args = ap.parse_args(argv)
    budget = 0.02 if args.quick else 1.0

    def packet(payload: int) -> tuple[TcpSegment, memoryview]:
        seg = TcpSegment(40000, 80, 123456789, 987654321, ACK | PSH, 64240, b"x" * payload,
                         TcpOptions(ts=(1000, 2000)))
        return seg, memoryview(Ipv4Packet(SRC, DST, 6, seg.emit(SRC, DST), ident=1, df=True).emit())

    def parser(pkt_mv: memoryview, verify: bool) -> Callable[[], object]:
        def parse() -> object:
            ip = Ipv4Packet.parse(pkt_mv, verify)
            return TcpSegment.parse(ip.payload, ip.src, ip.dst, verify)
        return parse

    def emitter(seg: TcpSegment) -> Callable[[], bytes]:
        def emit() -> bytes:
            body = seg.emit(SRC, DST)
            return quick_header(SRC, DST, 6, len(body), 1, 64, True) + body
        return emit

    seg, pkt_mv = packet(args.payload)
    pkt = bytes(pkt_mv)
    big_seg, big_mv = packet(1460)
    rows: list[tuple[str, float]] = []
    rows.append(("ustack parse IPv4+TCP (checksums verified)", per_call_us(parser(pkt_mv, True), budget)))
    rows.append(("ustack parse IPv4+TCP (verify=False)", per_call_us(parser(pkt_mv, False), budget)))
    rows.append(("ustack emit TCP + quick_header", per_call_us(emitter(seg), budget)))
    try:
        import dpkt

        rows.append(("dpkt parse IPv4+TCP", per_call_us(lambda: dpkt.ip.IP(pkt), budget)))
        rows.append(("dpkt parse IPv4+TCP + parse_opts",
                     per_call_us(lambda: dpkt.tcp.parse_opts(dpkt.ip.IP(pkt).data.opts), budget)))
    except ImportError:
        print("dpkt not installed: skipped", file=sys.stderr)
    try:
        from scapy.layers.inet import IP

        rows.append(("scapy parse IPv4+TCP", per_call_us(lambda: IP(pkt), budget / 2)))
    except ImportError:
        print("scapy not installed: skipped", file=sys.stderr)
    if args.payload != 1460:
        rows.append(("ustack parse, 1460-byte payload (verified)", per_call_us(parser(big_mv, True), budget)))
        rows.append(("ustack parse, 1460-byte payload (verify=False)",
                     per_call_us(parser(big_mv, False), budget)))
        rows.append(("ustack emit, 1460-byte payload", per_call_us(emitter(big_seg), budget)))

    hdr20 = pkt[:20]
    mss = bytes(range(256)) * 5 + bytes(180)  # 1460 bytes
    odd = mss[:1461 - 2]
    cks: list[tuple[str, float, float]] = []
    for label, data in (("20-byte header", hdr20), ("1460-byte payload", mss), ("1459 bytes (odd)", odd)):
        assert internet_checksum(data) == reference_checksum(data)
        cks.append((label, per_call_us(lambda d=data: internet_checksum(d), budget),
                    per_call_us(lambda d=data: reference_checksum(d), budget)))

    base = rows[0][1]
    parse_rows = [(name, us, us / base) for name, us in rows]
    _print(parse_rows, cks, args.payload)
    return 0


def _print(parse_rows: list[tuple[str, float, float]], cks: list[tuple[str, float, float]],
           payload: int) -> None:
    title = f"IPv4+TCP ({payload}-byte payload, NOP NOP TS options): µs per call"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        for name, us, ratio in parse_rows:
            print(f"  {name:<46} {us:9.2f} µs  {ratio:7.2f}x ustack")
        print("Internet checksum: fold vs word-by-word reference")
        for label, fast, ref in cks:
            print(f"  {label:<20} fold {fast:8.3f} µs  reference {ref:9.2f} µs  speedup {ref / fast:7.1f}x")
        return
    t = Table(title=title)
    t.add_column("case")
    t.add_column("µs", justify="right")
    t.add_column("× ustack parse", justify="right")
    for name, us, ratio in parse_rows:
        t.add_row(name, f"{us:.2f}", f"{ratio:.2f}")
    c = Table(title="Internet checksum: fold vs word-by-word reference")
    c.add_column("data")
    c.add_column("fold µs", justify="right")
    c.add_column("reference µs", justify="right")
    c.add_column("speedup", justify="right")
    for label, fast, ref in cks:
        c.add_row(label, f"{fast:.3f}", f"{ref:.2f}", f"{ref / fast:.1f}x")
    console = Console()
    console.print(t)
    console.print(c)


if __name__ == "__main__":
    sys.exit(main())
