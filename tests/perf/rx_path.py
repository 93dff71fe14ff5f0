"""Micro-benchmark of ustack's TCP receive path without a device (no TUN, no threads).

A Stack with TCP accepts a connection from hand-built frames, then takes N full-sized data
segments (1448 bytes + timestamps, as Linux sends them) in batches of 64: `Stack.receive` per
frame (or `receive_batch`), one `poll` per batch (the ACK), the socket drained after each
batch. It prints microseconds per segment: the Python cost of the path that
`tools/bench_rx.py` measures end to end, minus the TUN reads and writes.

    .venv/bin/python tests/perf/rx_path.py [--n 50000] [--trusted] [--profile]

Not a test (no timing assertions): a tool for comparing changes on one machine.
"""

from __future__ import annotations

import argparse
import time

from ustack.core.config import StackConfig
from ustack.core.stack import Stack
from ustack.wire.ipv4 import Ipv4Packet, ip_int
from ustack.wire.tcp import ACK, SYN, TcpOptions, TcpSegment

LOCAL = ip_int("198.18.0.2")
REMOTE = ip_int("198.18.0.1")
LPORT, RPORT = 5002, 40000
MSS = 1448


def _frame(seg: TcpSegment, ident: int) -> bytes:
    return Ipv4Packet(REMOTE, LOCAL, 6, seg.emit(REMOTE, LOCAL), ident=ident, df=True).emit()


def setup() -> tuple[Stack, object, int, int]:
    stack = Stack.with_defaults(StackConfig(addr="198.18.0.2/24", mtu=1500, medium="ip", seed=1))
    lsock = stack.tcp.open()
    lsock.bind(LOCAL, LPORT)
    lsock.listen(8)
    now = 1.0
    iss = 1000
    syn = TcpSegment(RPORT, LPORT, iss, 0, SYN, 64240,
                     options=TcpOptions(mss=1460, wscale=7, sack_perm=True, ts=(1, 0)))
    stack.receive(_frame(syn, 1), now)
    out = stack.poll(now)
    synack = TcpSegment.parse(Ipv4Packet.parse(out[-1]).payload, LOCAL, REMOTE)
    assert synack.flags == SYN | ACK, synack
    ours = (synack.seq + 1) & 0xFFFFFFFF
    ack = TcpSegment(RPORT, LPORT, iss + 1, ours, ACK, 502, options=TcpOptions(ts=(2, synack.options.ts[0])))
    stack.receive(_frame(ack, 2), now)
    stack.poll(now)
    conn = lsock.accept()
    assert conn is not None
    return stack, conn, iss + 1, ours


def make_frames(n: int, seq: int, ack: int) -> list[bytes]:
    payload = bytes(range(256)) * 6
    payload = payload[:MSS]
    frames = []
    for i in range(n):
        s = TcpSegment(RPORT, LPORT, (seq + i * MSS) & 0xFFFFFFFF, ack, ACK, 502, payload,
                       TcpOptions(ts=(100 + i // 64, 5)))
        frames.append(_frame(s, (3 + i) & 0xFFFF))
    return frames


def run(n: int, trusted: bool, batched: bool, batch: int = 64) -> float:
    """Microseconds per segment. `batched`: `Stack.receive_batch` with (frame, trusted) pairs
    (what Host does with an offloading TUN); else one `receive` per frame."""
    stack, conn, seq, ack = setup()
    frames = make_frames(n, seq, ack)
    if batched:
        frames = [(f, trusted) for f in frames]
    receive = stack.receive
    now = 2.0
    got = 0
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        chunk = frames[i:i + batch]
        if batched:
            stack.receive_batch(chunk, now)
        else:
            for f in chunk:
                receive(f, now, trusted)
        stack.poll(now)
        got += len(conn.recv(1 << 22))
        now += 0.0001
    dt = time.perf_counter() - t0
    assert got == n * MSS, (got, n * MSS, stack.counters.snapshot())
    assert not stack.counters.get("stack.internal_error"), stack.internal_errors
    return dt / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50000)
    p.add_argument("--trusted", action="store_true", help="frames whose checksum the device vouched for")
    p.add_argument("--batched", action="store_true", help="Stack.receive_batch instead of receive")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="cProfile one run")
    a = p.parse_args()
    if a.profile:
        import cProfile
        import pstats

        cProfile.runctx("run(a.n, a.trusted, a.batched)", globals(), {"a": a, "run": run},
                        "/tmp/rx_path.prof")
        pstats.Stats("/tmp/rx_path.prof").sort_stats("tottime").print_stats(15)
        return
    res = [run(a.n, a.trusted, a.batched) for _ in range(a.repeat)]
    print(f"rx path ({'trusted' if a.trusted else 'verified'}, {'batched' if a.batched else 'per frame'}): "
          f"{min(res):.2f} us/segment (best of {a.repeat}: {', '.join(f'{r:.2f}' for r in res)})")


if __name__ == "__main__":
    main()
