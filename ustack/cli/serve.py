"""`ustack serve`: ustack on a TUN/TAP device with test services, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from .hosting import open_host
from .options import UsageError


def _services(args: argparse.Namespace) -> list[tuple[str, int]]:
    wanted = [("udp-echo", p) for p in args.udp_echo]
    for kind in ("echo", "discard", "chargen", "http"):
        wanted += [(kind, p) for p in getattr(args, kind)]
    tcp_ports = [p for kind, p in wanted if kind != "udp-echo"]
    dup = {p for p in tcp_ports if tcp_ports.count(p) > 1} | {
        p for p in args.udp_echo if args.udp_echo.count(p) > 1}
    if dup:
        raise UsageError(f"port {min(dup)} is given to two services")
    return wanted


def run(args: argparse.Namespace) -> int:
    from ustack.tcp.config import TcpConfig

    from .services import LISTEN_BACKLOG, ServiceSet

    wanted = _services(args)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        # A server's accept queue as deep as Linux's SOMAXCONN (the Windows clamp of 200 is the
        # default): a burst of handshakes can complete in one network-thread batch before the
        # service thread accepts them.
        with open_host(args, tcp=TcpConfig(max_backlog=LISTEN_BACKLOG)) as opened:
            host = opened.host
            services = ServiceSet(host, log=lambda line: print(f"serve: {line}", file=sys.stderr, flush=True))
            try:
                for kind, port in wanted:
                    try:
                        if kind == "udp-echo":
                            services.udp_echo(port)
                        else:
                            services.tcp(kind, port)
                    except Exception as e:  # noqa: BLE001 - e.g. UsageError(ADDR_IN_USE) from bind
                        raise UsageError(f"cannot start {kind} on port {port}: {e}") from None
                listing = " ".join(f"{kind}={port}" for kind, port in wanted) or "no services"
                print(f"ready {opened.describe()} {listing}", flush=True)
                while not stop.wait(0.5):
                    if not opened.alive():
                        print("serve: the network thread stopped", file=sys.stderr, flush=True)
                        return 1
            finally:
                services.stop()
        print("stopped", flush=True)
        return 0
    finally:
        for s, h in old.items():
            signal.signal(s, h)
