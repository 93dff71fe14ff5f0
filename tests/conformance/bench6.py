"""The IPv6 side of the conformance bench: craft and sniff raw IPv6 against ustack or Linux.

The same arrangement as bench.py, on one TUN named ``IFNAME6`` in the test's private netns:

* DUT = **ustack**: a ustack ``Host`` owns the TUN fd as 2001:2::2/64; IPv6 stays off on the
  kernel side (it never answers). The bench injects with ``socket(AF_PACKET, SOCK_DGRAM)``
  (protocol 0x86DD) and sniffs with an AF_PACKET socket bound to the interface.
* DUT = **linux**: the kernel is 2001:2::2/64 (``nodad``) on the interface; the bench owns the
  TUN fd. ``net.ipv6.icmp.ratelimit`` is 0 so every case gets its error.

The bench speaks as ``BENCH6`` (2001:2::9), an address nobody owns. Every wait is bounded.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

from scapy.layers.inet6 import IPv6

IFNAME6 = "cnf6"
DUT6 = "2001:2::2"
BENCH6 = "2001:2::9"
MTU = 1500
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4


class AfPacketLink6:
    """Bench side of a TUN whose fd belongs to the DUT: inject and sniff IPv6 on the interface."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)
        self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IPV6))
        self.rx.bind((ifname, ETH_P_IPV6))
        self.rx.setblocking(False)

    def send(self, pkt: bytes) -> None:
        self.tx.sendto(pkt, (self.ifname, ETH_P_IPV6))

    def recv(self, timeout: float) -> bytes | None:
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            r, _, _ = select.select([self.rx], [], [], left)
            if not r:
                return None
            data, addr = self.rx.recvfrom(65536)
            if addr[2] != PACKET_OUTGOING:  # skip our own injected frames
                return data
        return None

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


class TunFdLink6:
    """Bench owns the TUN fd: what it writes reaches the kernel as received packets."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, pkt: bytes) -> None:
        try:
            os.write(self.fd, pkt)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise

    def recv(self, timeout: float) -> bytes | None:
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                return None
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            if data and data[0] >> 4 == 6:
                return data
        return None

    def close(self) -> None:
        pass  # the fd belongs to the TunDevice


class Bench6:
    def __init__(self, link: Any) -> None:
        self.link, self.ip, self.dut_ip = link, BENCH6, DUT6
        self.seen: list[IPv6] = []

    def send(self, pkt: Any) -> None:
        self.link.send(bytes(pkt))

    def expect(self, match: Callable[[IPv6], bool] | None = None, within: float = 1.0) -> IPv6 | None:
        """The first packet from the DUT to the bench matching `match` within `within` s."""
        end = time.monotonic() + within
        while (left := end - time.monotonic()) > 0:
            raw = self.link.recv(left)
            if raw is None:
                return None
            pkt = IPv6(raw)
            self.seen.append(pkt)
            if pkt.dst != self.ip:
                continue  # (Linux's own MLD reports and router solicitations)
            if match is None or match(pkt):
                return pkt
        return None

    def expect_all(self, match: Callable[[IPv6], bool], within: float = 1.0) -> list[IPv6]:
        """Every matching packet until `within` s passed with nothing more matching."""
        out = []
        while (p := self.expect(match, within)) is not None:
            out.append(p)
        return out

    def describe_seen(self, last: int = 12) -> str:
        return "\n".join(p.summary() for p in self.seen[-last:]) or "(nothing received)"

    def close(self) -> None:
        self.link.close()


class LinuxDut6:
    name = "linux"

    def __init__(self) -> None:
        from ustack.drivers import TunDevice, kernel_side_up, set_sysctl

        self.dev = TunDevice(IFNAME6, mtu=MTU)
        set_sysctl("net.ipv6.icmp.ratelimit", "0")
        kernel_side_up(self.dev.name, None, mtu=MTU, addr6_cidr=f"{DUT6}/64")
        self.link = TunFdLink6(self.dev.fileno())

    def close(self) -> None:
        self.dev.close()


class UstackDut6:
    name = "ustack"

    def __init__(self) -> None:
        import ustack

        # icmp_rate high: the cases send one error-provoking packet each, quickly
        self.host = ustack.Host.open(tun=IFNAME6, addr="198.18.0.2/24", mtu=MTU, offload="none",
                                     config={"addr6": f"{DUT6}/64", "icmp_rate": 10000.0})
        _wait_iface_up(IFNAME6)
        self.link = AfPacketLink6(IFNAME6)

    def counters(self) -> dict[str, int]:
        return self.host.call(self.host.stack.counters.snapshot)

    def close(self) -> None:
        try:
            self.link.close()
        finally:
            self.host.close()


def _wait_iface_up(name: str, within: float = 2.0) -> None:
    end = time.monotonic() + within
    while time.monotonic() < end:
        out = subprocess.run(["ip", "-o", "link", "show", name], capture_output=True, text=True, timeout=5)
        if out.returncode == 0 and ",UP" in out.stdout:
            return
        time.sleep(0.02)
    raise RuntimeError(f"interface {name} did not come up")


def make_dut6(kind: str) -> tuple[Any, Bench6]:
    dut = LinuxDut6() if kind == "linux" else UstackDut6()
    return dut, Bench6(dut.link)
