#!/usr/bin/env python3
"""Hostile-input benchmark: is the cost of each attacker-controlled item flat in queue size, and
is the memory held bounded? Before and after, in one run.

Everything runs sans-I/O inside this process (frames are built with ustack.wire and handed to
`Stack.receive`; nothing reaches a device or a network). Scenarios:

  sack   ustack sends 4 MB; the peer ACKs with four 1-byte SACK blocks per ACK (holes between
         them): µs per ACK as the blocks sent grow (CVE-2019-11478 class).
  ooo    the peer sends full segments behind one hole: µs per segment at queue lengths.
  frag   8-byte fragments of never-completed datagrams (ids in turn): µs per fragment as the
         fragments sent grow, and the memory held against the 4 MB reassembly limit.
  tiny   1-byte in-order segments that the application never reads (rcvbuf 64 KB), and empty
         UDP datagrams against a 64 KB buffer: µs per item, memory held (tracemalloc).
  inorder  no attack: full segments in order, read as they come (the common path's cost).

The "before" column runs the same scenarios against an older ustack (`--baseline REV`, default
the commit before the memory work), extracted with `git archive` into a temporary directory
and run in a subprocess; "after" is the working tree. `--only after` skips the baseline.

    python tools/bench_hostile.py [--baseline REV] [--only before|after] [--quick | --smoke] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ustack.core.stack import Stack
    from ustack.wire.tcp import TcpOptions

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "acf32f7~1"  # main just before "core: one memory budget for the stack"
ME, PEER = 0xC6120002, 0xC6120001  # 198.18.0.2 (ustack), 198.18.0.1 (the hostile peer)
MSS = 1448
PEER_ISS = 1_000_000
PORT = 5001


# --------------------------------------------------------------------------- the peer's frames
def _tcp_frame(seq: int, ack: int, flags: int, payload: bytes = b"", window: int = 65535,
               options: TcpOptions | None = None, sport: int = PORT, dport: int = 0) -> bytes:
    from ustack.wire import Ipv4Packet
    from ustack.wire.tcp import NO_OPTIONS, TcpSegment

    seg = TcpSegment(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, window, payload,
                     options if options is not None else NO_OPTIONS)
    return Ipv4Packet(PEER, ME, 6, seg.emit(PEER, ME)).emit()


def _parse_out(frames: list[bytes]):
    from ustack.wire import Ipv4Packet
    from ustack.wire.tcp import TcpSegment

    out = []
    for f in frames:
        ip = Ipv4Packet.parse(f)
        if ip.proto == 6:
            out.append(TcpSegment.parse(ip.payload, ip.src, ip.dst))
    return out


def _connected(rcvbuf: int, sndbuf: int = 1 << 20, cwnd: int = 10):
    """A stack with one established connection to the peer (ustack connected actively)."""
    from ustack.core import Stack, StackConfig
    from ustack.tcp import TcpConfig
    from ustack.wire.tcp import ACK, SYN, TcpOptions

    tcp = TcpConfig(rcvbuf=rcvbuf, sndbuf=sndbuf, timestamps=False, sack=True,
                    window_scaling=True, initial_cwnd_segments=cwnd, tail_loss_probe=False)
    stack = Stack.with_defaults(StackConfig(addr="198.18.0.2/24", tcp=tcp, seed=1))
    sock = stack.tcp.open()
    sock.connect(PEER, PORT, 0.0)
    syn = _parse_out(stack.poll(0.0))[0]
    lport = syn.sport
    stack.receive(_tcp_frame(PEER_ISS, syn.seq + 1, SYN | ACK, dport=lport,
                             options=TcpOptions(mss=MSS, wscale=7, sack_perm=True)), 0.0)
    stack.poll(0.0)
    return stack, sock, lport, (syn.seq + 1) & 0xFFFFFFFF


def _timed(items: Sequence[T], feed: Callable[[T], None], checkpoints: Iterable[int],
           window: int) -> dict[int, float]:
    """Feed items one by one; the median µs per item over the `window` items ending at each
    checkpoint (a median, so a garbage-collector pause on a loaded machine does not decide)."""
    out: dict[int, float] = {}
    starts = {c - window for c in checkpoints}
    clock = time.perf_counter
    samples: list[float] | None = None
    for i, item in enumerate(items, 1):
        if i - 1 in starts:
            samples = []
        if samples is None:
            feed(item)
            continue
        t0 = clock()
        feed(item)
        samples.append(clock() - t0)
        if i in checkpoints:
            out[i] = statistics.median(samples) * 1e6
            samples = None
    return out


def _checks(wanted: list[int], n: int, window: int) -> list[int]:
    """The checkpoints that fit a run of n items measured over `window` items each."""
    return sorted({c for c in wanted if window <= c <= n})


# --------------------------------------------------------------------------- scenarios
def bench_sack(scale: float) -> dict:
    from ustack.wire.tcp import ACK, TcpOptions

    stack, sock, lport, base = _connected(1 << 16, sndbuf=8 << 20, cwnd=4000)
    stack.receive(_tcp_frame(PEER_ISS + 1, base, ACK, window=65535, dport=lport), 0.0)
    sock.send(bytes(4_000_000), 0.0)
    stack.poll(0.0)
    acks = max(100, int(2500 * scale))  # four 1-byte blocks each, holes between
    frames = []
    for k in range(acks):
        blocks = tuple(((base + 3000 + 2 * (4 * k + j)) & 0xFFFFFFFF,
                        (base + 3001 + 2 * (4 * k + j)) & 0xFFFFFFFF) for j in range(4))
        frames.append(_tcp_frame(PEER_ISS + 1, base, ACK, window=65535, dport=lport,
                                 options=TcpOptions(sack=blocks)))
    now = [0.001]

    def feed(f: bytes) -> None:
        stack.receive(f, now[0])
        stack.poll(now[0])

    per = _timed(frames, feed, _checks([25, 250, acks // 2, acks], acks, 25), 25)
    conn = next(iter(stack.tcp.conns.values()))
    return {"unit": "µs per ACK (4 blocks)", "x": "SACK blocks sent",
            "points": {4 * k: v for k, v in per.items()},
            "board": len(conn.snd.sacked), "internal_errors": _errors(stack)}


def bench_ooo(scale: float) -> dict:
    from ustack.wire.tcp import ACK

    n = max(200, int(2800 * scale))
    stack, sock, lport, base = _connected(8 << 20)
    payload = bytes(MSS)
    frames = [_tcp_frame(PEER_ISS + 1 + MSS * (k + 1), base, ACK, payload, dport=lport)
              for k in range(n)]

    def feed(f: bytes) -> None:
        stack.receive(f, 0.001)
        stack.poll(0.001)

    per = _timed(frames, feed, _checks([100, 700, n], n, 50), 50)
    return {"unit": "µs per segment", "x": "segments queued behind one hole", "points": per,
            "internal_errors": _errors(stack)}


def _held(run: Callable[[], object]) -> tuple[int, object]:
    """Bytes still allocated after run() (tracemalloc), and run()'s result."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = run()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held, result


def bench_frag(scale: float) -> dict:
    from ustack.core import Stack, StackConfig
    from ustack.wire import Ipv4Packet

    # 8-byte fragments of a 65,528-byte datagram, the last one never sent
    per_dgram = 8191 if scale >= 0.5 else 1000
    dgrams = max(1, int(4 * scale))
    frames = [Ipv4Packet(PEER, ME, 17, bytes(8), ident=d, mf=True, frag_offset=8 * i).emit()
              for d in range(dgrams) for i in range(per_dgram)]

    def fresh():
        return Stack.with_defaults(StackConfig(addr="198.18.0.2/24", seed=1))

    stack = fresh()
    n = len(frames)
    per = _timed(frames, lambda f: stack.receive(f, 0.0), _checks([1000, 4000, 8000, n], n, 200), 200)

    # memory: many datagrams, 63 fragments each, none completed
    wide = [Ipv4Packet(PEER, ME, 17, bytes(8), ident=d, mf=True, frag_offset=8 * i).emit()
            for d in range(512 if scale >= 0.5 else 300) for i in range(63)]

    def attack():
        st = fresh()
        for f in wide:
            st.receive(f, 0.0)
        return st

    held, st = _held(attack)
    return {"unit": "µs per fragment", "x": "8-byte fragments sent", "points": per,
            "mem_fragments_sent": len(wide), "mem_held_bytes": held,
            "mem_accounted_bytes": st.reassembler.mem, "reassembly_mem_limit":
            st.config.reassembly_mem_limit, "internal_errors": _errors(stack) + _errors(st)}


def bench_tiny(scale: float) -> dict:
    from ustack.core import Stack, StackConfig
    from ustack.wire import Ipv4Packet, UdpDatagram
    from ustack.wire.tcp import ACK

    rcvbuf = 65536 if scale >= 0.5 else 8192
    stack, sock, lport, base = _connected(rcvbuf)
    frames = [_tcp_frame(PEER_ISS + 1 + k, base, ACK, b"x", dport=lport) for k in range(rcvbuf)]
    per = _timed(frames, lambda f: stack.receive(f, 0.001), _checks([1000, 16000, rcvbuf], rcvbuf, 500), 500)

    def tcp_attack():
        st, _, lp, b = _connected(rcvbuf)
        fr = [_tcp_frame(PEER_ISS + 1 + k, b, ACK, b"x", dport=lp) for k in range(rcvbuf)]
        for f in fr:
            st.receive(f, 0.001)
        st.poll(0.002)
        del fr
        return st

    held, st = _held(tcp_attack)
    conn = next(iter(st.tcp.conns.values()))
    memory = getattr(st, "memory", None)

    count = max(3000, int(200_000 * scale))
    udp = Ipv4Packet(PEER, ME, 17, UdpDatagram(1, 9, b"").emit(PEER, ME)).emit()

    def udp_attack():
        us = Stack.with_defaults(StackConfig(addr="198.18.0.2/24", seed=1))
        u = us.udp.open()
        u.bind(0, 9)
        for _ in range(count):
            us.receive(udp, 0.0)
        return us, u

    udp_held, (us, u) = _held(udp_attack)
    return {"unit": "µs per 1-byte segment", "x": "1-byte segments queued", "points": per,
            "tcp_rcvbuf": rcvbuf, "tcp_queued_bytes": len(conn.rcv.buf), "tcp_held_bytes": held,
            "tcp_accounted": memory.used if memory is not None else None,
            "udp_rcvbuf": u.rcvbuf, "udp_sent": count, "udp_queued": len(u.queue),
            "udp_held_bytes": udp_held, "internal_errors": _errors(stack) + _errors(st) + _errors(us)}


def bench_inorder(scale: float) -> dict:
    """Not an attack: full segments in order, read as they come (the common path must not pay
    for the bounds)."""
    from ustack.wire.tcp import ACK

    n = max(2000, int(40_000 * scale))
    stack, sock, lport, base = _connected(1 << 20)
    payload = bytes(MSS)
    frames = [_tcp_frame(PEER_ISS + 1 + MSS * k, base, ACK, payload, dport=lport) for k in range(n)]
    got = [0]

    def feed(f: bytes) -> None:
        stack.receive(f, 0.001)
        if len(got) % 16 == 0:
            got[0] += len(sock.recv(1 << 20))
        got.append(0)

    per = _timed(frames, feed, _checks([1000, n // 2, n], n, 500), 500)
    return {"unit": "µs per segment", "x": "segments received", "points": per,
            "internal_errors": _errors(stack)}


def _errors(stack: Stack) -> int:
    c = stack.counters
    return c.get("stack.internal_error") + c.get("tcp.internal_error")


SCENARIOS = {"sack": bench_sack, "ooo": bench_ooo, "frag": bench_frag, "tiny": bench_tiny,
             "inorder": bench_inorder}


# --------------------------------------------------------------------------- driver
def worker(scale: float, only: list[str]) -> dict:
    import ustack

    res = {"ustack": str(Path(ustack.__file__).parent)}
    for name in only:
        res[name] = SCENARIOS[name](scale)
    return res


def run_baseline(rev: str, scale: float, only: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="ustack-baseline-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "ustack"],
                                 check=True, capture_output=True).stdout
        tar_path = Path(tmp) / "src.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        env = dict(os.environ, PYTHONPATH=tmp)
        cmd = [sys.executable, __file__, "--worker", "--scenarios", ",".join(only), "--scale", str(scale)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=tmp)
        return json.loads(out.stdout)


def report(before: dict | None, after: dict | None, only: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for name in only:
        b = (before or {}).get(name)
        a = (after or {}).get(name)
        ref = a or b
        t = Table(title=f"{name}: {ref['unit']} by {ref['x']}")
        t.add_column(ref["x"], justify="right")
        t.add_column("before", justify="right")
        t.add_column("after", justify="right")
        t.add_column("before/after", justify="right")
        keys = sorted({int(k) for r in (a, b) for k in (r or {}).get("points", {})})
        for k in keys:
            bv = (b or {}).get("points", {}).get(str(k), (b or {}).get("points", {}).get(k))
            av = (a or {}).get("points", {}).get(str(k), (a or {}).get("points", {}).get(k))
            ratio = f"{bv / av:.1f}x" if bv and av else ""
            t.add_row(f"{k:,}", f"{bv:,.1f}" if bv else "-", f"{av:,.1f}" if av else "-", ratio)
        console.print(t)
        for label, r in (("before", b), ("after", a)):
            if r is None:
                continue
            extra = {k: v for k, v in r.items() if k not in ("unit", "x", "points")}
            console.print(f"  {label}: " + ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}"
                                                     for k, v in extra.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default=BASELINE, help="git revision for the 'before' column")
    ap.add_argument("--only", choices=("before", "after"))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    ap.add_argument("--quick", action="store_true", help="half the sizes")
    ap.add_argument("--scale", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite's run)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    only = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario {unknown[0]!r} (choose from {', '.join(SCENARIOS)})")
    scale = args.scale if args.scale is not None else 0.05 if args.smoke else 0.5 if args.quick else 1.0
    if args.worker:
        print(json.dumps(worker(scale, only)))
        return 0
    before = run_baseline(args.baseline, scale, only) if args.only != "after" else None
    after = worker(scale, only) if args.only != "before" else None
    if args.json:
        print(json.dumps({"before": before, "after": after}, indent=2))
    else:
        report(before, after, only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
