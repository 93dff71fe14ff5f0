"""What every lab scenario gets and returns: `LabContext` (the host, its Winsock, the kernel
side, helpers) and `Outcome`; `Scenario` is one row of the registry; the lab's SYN schedule."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import labkernel as K
from ..wscalls import Call, WsRecorder

# The lab's short SYN schedule: first retry after 0.25 s, doubling, 2 retries: gives up at 1.75 s.
# (Windows: 3 s initial RTO, 2 retries, about 21 s; the simulator tests that one.)
LAB_SYN_RTO_S = 0.25
LAB_SYN_RETRIES = 2
RECV_TIMEOUT_MS = 2000
UDP_TRIES = 3  # UDP scenarios retry when the tour runs under the user's loss


def syn_schedule(rto: float, retries: int) -> tuple[list[float], float]:
    """Times of each SYN after the first and the moment connect gives up."""
    times, t = [], 0.0
    for i in range(retries):
        t += rto * (2 ** i)
        times.append(t)
    return times, t + rto * (2 ** retries)


def syn_schedule_text(rto: float = LAB_SYN_RTO_S, retries: int = LAB_SYN_RETRIES) -> str:
    times, give_up = syn_schedule(rto, retries)
    shown = ", ".join(f"{t:g} s" for t in [0.0, *times])
    return f"SYNs at {shown}; gives up at {give_up:g} s"


@dataclass
class Outcome:
    passed: bool
    got: str
    calls: list[Call] = field(default_factory=list)
    key: list[Call] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Scenario:
    id: str
    title: str
    expected: str
    fn: Callable[[LabContext], Outcome]
    ipv6: bool = False  # needs IPv6 on the link (the tour then turns it on at set-up)


@dataclass
class LabContext:
    args: argparse.Namespace
    host: Any
    sink: Any
    user_faults: Any
    transfer_faults: Any
    transfer_bytes: int
    pcap: str
    kernel: K.KernelSide | None = None
    ws: Any = None
    last_recorder: WsRecorder | None = None
    step: Callable[[str, int, int], None] = lambda name, done, total: None  # long-step progress
    counters: dict[str, int] = field(default_factory=dict)  # the stack's, at the end of the tour
    faults_done: dict[str, int] = field(default_factory=dict)  # what the FaultInjector did

    # -- set-up / teardown ----------------------------------------------------------------------
    def configure_tcp(self) -> None:
        tcp = getattr(self.host.stack, "tcp", None)
        if tcp is None:
            return
        cfg = getattr(tcp, "config", None)

        def short_syn() -> None:
            cfg.syn_rto_s = LAB_SYN_RTO_S
            cfg.syn_retries = LAB_SYN_RETRIES
        if cfg is not None:
            self.host.call(short_syn)

    def start_winsock(self) -> None:
        from ustack.winsock import WSADATA, Winsock

        self.ws = Winsock(self.host)
        if self.ws.WSAStartup(0x0202, WSADATA()) != 0:
            raise RuntimeError("WSAStartup failed")

    def snapshot(self) -> None:
        """Keep the stack's counters and the injector's statistics for the report."""
        try:
            self.counters = dict(self.host.call(self.host.stack.counters.snapshot))
            self.faults_done = self.fault_stats()
        except Exception:  # noqa: BLE001 - a report without counters is still a report
            pass

    def close(self) -> None:
        try:
            if self.ws is not None:
                self.ws.WSACleanup()
        except Exception:  # noqa: BLE001 - teardown goes on whatever happens
            pass
        if self.kernel is not None:
            self.kernel.close()
        try:
            self.host.close()
        finally:
            self.sink.close()

    def describe(self) -> dict[str, Any]:
        a = self.args
        return {"device": "tap" if a.tap else "tun", "ifname": a.ifname, "kernel": f"{K.KERNEL}/{K.PREFIX}",
                "ustack": f"{K.USTACK}/{K.PREFIX}", "mtu": a.mtu,
                "faults": self.user_faults.describe() if self.user_faults is not None else None,
                "syn_schedule": syn_schedule_text()}

    # -- helpers for scenarios ------------------------------------------------------------------
    def rec(self) -> WsRecorder:
        self.last_recorder = WsRecorder(self.ws)
        return self.last_recorder

    def need_tcp(self) -> None:
        if getattr(self.host.stack, "tcp", None) is None:
            raise RuntimeError("this stack has no TCP layer (ustack.tcp.TcpLayer missing)")

    def injector(self) -> Any:
        from ustack.drivers import FaultInjector

        dev = self.host.device
        for _ in range(8):
            if isinstance(dev, FaultInjector):
                return dev
            dev = getattr(dev, "inner", None)
            if dev is None:
                break
        return None

    def fault_stats(self) -> dict[str, int]:
        inj = self.injector()
        return dict(inj.stats) if inj is not None else {}

    def frames_dropped(self) -> int:
        """Frames the fault injector lost so far, every cause."""
        inj = self.injector()
        return self.host.call(lambda: inj.frames_dropped) if inj is not None else 0

    def counter(self, name: str) -> int:
        c = self.host.stack.counters
        return int(self.host.call(lambda: c.get(name)))

    def frames_sent(self) -> int:
        """What the stack itself has emitted so far (IPv4 packets and ARP requests), counted
        before any fault injection, so a dropped frame still counts as sent."""
        snap = self.host.call(self.host.stack.counters.snapshot)
        return int(snap.get("ipv4.out", 0)) + int(snap.get("arp.requests_out", 0))
