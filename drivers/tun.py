"""Linux TUN (IPv4 packets) and TAP (Ethernet frames) devices, plus kernel-side set-up helpers.

The fd is nonblocking: `recv` returns None instead of waiting, and `send` counts a drop when the
kernel queue is full instead of raising, so the network thread never stalls on the device.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
from collections.abc import Iterable
from typing import Any, Self

from .base import DeviceCounters

_READ_SIZE = 65536  # larger than any frame the kernel hands us (no GSO without IFF_VNET_HDR)

# Errors that mean "this frame did not go out", not "the device is broken":
# full queue (EAGAIN/ENOBUFS), interface down (EIO), frame the kernel refuses (EINVAL, EMSGSIZE).
_TX_DROP_ERRNOS = {
    errno.EAGAIN: "tx_queue_full",
    errno.ENOBUFS: "tx_no_buffers",
    errno.EIO: "tx_link_down",
    errno.EINVAL: "tx_invalid",
    errno.EMSGSIZE: "tx_too_big",
}


def _open_tuntap(name: str, flags: int) -> Any:
    import pytun  # imported lazily so memlink-only users need no C extension

    return pytun.TunTapDevice(name=name, flags=flags | pytun.IFF_NO_PI)


def interface_exists(name: str) -> bool:
    """Whether `name` exists in this network namespace (sysfs may show another one's)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


class _TunTapBase:
    medium = "ip"
    _flag_name = "IFF_TUN"

    def __init__(self, name: str = "ust0", mtu: int = 1500, create: bool = True) -> None:
        import pytun

        if not create and not interface_exists(name):
            raise FileNotFoundError(f"interface {name!r} does not exist (create=False)")
        self._dev = _open_tuntap(name, getattr(pytun, self._flag_name))
        self.name: str = self._dev.name
        if create:
            self._dev.mtu = mtu
        self.mtu: int = self._dev.mtu
        self._fd: int = self._dev.fileno()
        os.set_blocking(self._fd, False)
        self.counters = DeviceCounters()
        self._closed = False

    def _tx_error(self, e: OSError) -> str:
        reason = _TX_DROP_ERRNOS.get(e.errno)
        if reason is None:
            if self._closed and e.errno == errno.EBADF:
                return "closed"  # a send racing close() is a drop, not a crash
            raise e
        return reason

    def send(self, frame: bytes, now: float) -> None:
        try:
            n = os.write(self._fd, frame)
        except OSError as e:
            self.counters.drop_tx(self._tx_error(e))
            return
        c = self.counters
        c.tx_frames += 1
        c.tx_bytes += n

    def send_batch(self, frames: Iterable[bytes], now: float) -> None:
        fd, write, c = self._fd, os.write, self.counters
        sent = nbytes = 0
        for frame in frames:
            try:
                nbytes += write(fd, frame)
                sent += 1
            except OSError as e:
                c.drop_tx(self._tx_error(e))
        c.tx_frames += sent
        c.tx_bytes += nbytes

    def recv(self, now: float) -> bytes | None:
        try:
            frame = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return None
        except OSError as e:
            if e.errno == errno.EIO or self._closed:  # interface going down, or closed
                return None
            raise
        c = self.counters
        c.rx_frames += 1
        c.rx_bytes += len(frame)
        return frame

    def recv_batch(self, now: float, limit: int = 64) -> list[bytes]:
        # Hot path: locals only, one try around the whole loop, counters updated once.
        out: list[bytes] = []
        append, read, fd = out.append, os.read, self._fd
        try:
            for _ in range(limit):
                append(read(fd, _READ_SIZE))
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno != errno.EIO and not self._closed:
                raise
        if out:
            c = self.counters
            c.rx_frames += len(out)
            c.rx_bytes += sum(map(len, out))
        return out

    def fileno(self) -> int | None:
        return None if self._closed else self._fd

    def poll_at(self) -> float | None:
        return None  # readiness comes from the fd

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._fd = -1  # never write to a recycled fd number after close
            self._dev.close()  # a non-persistent interface disappears with its last fd

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, mtu={self.mtu})"


class TunDevice(_TunTapBase):
    """A TUN interface: frames are raw IPv4 packets (IFF_TUN | IFF_NO_PI).

    `create=True` creates the interface if needed and sets its MTU; `create=False` attaches
    to an existing (persistent) interface and adopts its MTU.
    """

    medium = "ip"
    _flag_name = "IFF_TUN"


class TapDevice(_TunTapBase):
    """A TAP interface: frames are Ethernet II frames (IFF_TAP | IFF_NO_PI).

    `.mac` is the kernel side's MAC address; the stack uses its own MAC on the wire.
    """

    medium = "ethernet"
    _flag_name = "IFF_TAP"

    @property
    def mac(self) -> bytes:
        return bytes(self._dev.hwaddr)


def _ip(*args: str) -> None:
    exe = shutil.which("ip") or "/sbin/ip"
    res = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {res.stderr.strip()}")


def set_sysctl(key: str, value: str) -> bool:
    """Write a sysctl of the current network namespace via /proc/sys; False if it does not exist.

    `key` is dotted ("net.ipv4.ip_forward") or a path under /proc/sys ("net/ipv6/conf/a.b/...",
    needed when a component such as an interface name contains a dot).
    """
    path = "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))
    try:
        with open(path, "w") as f:
            f.write(value)
    except FileNotFoundError:
        return False
    return True


def kernel_side_up(name: str, addr_cidr: str | None, mtu: int | None = None, *,
                   txqueuelen: int | None = None, disable_ipv6: bool = True) -> None:
    """Configure the kernel's end of a TUN/TAP: MTU, address, IPv6 off, link up.

    IPv6 is disabled before the link comes up so the kernel never sends router solicitations
    or MLD reports into the device. Uses iproute2 (`ip`); raises RuntimeError on failure.
    """
    if disable_ipv6:
        set_sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "1")  # path form: names may hold dots
    if mtu is not None:
        _ip("link", "set", "dev", name, "mtu", str(mtu))
    if txqueuelen is not None:
        _ip("link", "set", "dev", name, "txqueuelen", str(txqueuelen))
    if addr_cidr:
        _ip("addr", "replace", addr_cidr, "dev", name)
    _ip("link", "set", "dev", name, "up")


def kernel_side_down(name: str) -> None:
    """Bring the kernel side down (the interface itself goes away when the device is closed)."""
    _ip("link", "set", "dev", name, "down")
