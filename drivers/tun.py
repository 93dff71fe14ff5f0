"""Linux TUN (IPv4 packets) and TAP (Ethernet frames) devices, plus kernel-side set-up helpers.

The fd is nonblocking: `recv` returns None instead of waiting, and `send` counts a drop when the
kernel queue is full instead of raising, so the network thread never stalls on the device.

Receive checksum offload (`offload=True`), as virtio-net does it: the device is opened with
IFF_VNET_HDR and TUN_F_CSUM only (no TSO/GSO: frames stay MTU-sized), so every frame starts
with a 10-byte `struct virtio_net_hdr`. The kernel then hands packets it generated itself with
VIRTIO_NET_HDR_F_NEEDS_CSUM (the checksum field holds only the pseudo-header sum; the data never
left memory) or F_DATA_VALID (it verified the checksum); anything else (ICMP, AF_PACKET
injections, ...) comes with flags 0 and must be verified as usual. `recv`/`recv_batch` return
ordinary frames: header stripped, NEEDS_CSUM checksums filled in (like skb_checksum_help), so
middleware, pcaps and the stack see valid packets. `recv_batch_trusted` returns
(frame, checksum_trusted) pairs without filling anything in, for a stack that then skips the
transport checksum of trusted frames; middleware does not provide it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterable
from typing import Any, Self

from ustack.wire.vnet import (
    GSO_MAX_PAYLOAD,
    VNET_F_DATA_VALID,
    VNET_F_NEEDS_CSUM,
    VNET_GSO_ECN,
    VNET_GSO_NONE,
    VNET_GSO_TCPV4,
    VNET_HDR,
    VNET_HDR_LEN,
    GsoPacket,
)

from .base import DeviceCounters

_READ_SIZE = 65536 + 10  # larger than any IPv4 packet, GSO super-segments included (+ virtio header)

# <linux/if_tun.h>, <linux/virtio_net.h>
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04  # not asked for: receive takes TCP/IPv4 super-segments only
GSO_MIN_SIZE = 64  # the smallest MSS the stack uses; a smaller gso_size is malformed
_VNET_TRUSTED = VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID
_TRUSTED_BY_FLAGS = tuple(bool(flags & _VNET_TRUSTED) for flags in range(256))  # one lookup a frame
_VNET_HDR = VNET_HDR
_VNET_TX = bytes(VNET_HDR_LEN)  # flags 0: our frames carry complete checksums
_CSUM_FIELD = struct.Struct("!H")

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


def _complete_checksum(frame: bytes) -> bytes:
    """The frame after its virtio header, with a NEEDS_CSUM checksum filled in: the one's
    complement sum from csum_start to the end (the field already holds the pseudo-header sum)
    is stored at csum_start + csum_offset, 0 sent as 0xffff (skb_checksum_help). A header
    pointing outside the frame leaves it as it is (the stack's verification will drop it)."""
    flags, _, _, _, start, offset = _VNET_HDR.unpack_from(frame)
    data = frame[VNET_HDR_LEN:]
    if not flags & VNET_F_NEEDS_CSUM:
        return data
    at = start + offset
    if at + 2 > len(data) or start > at:
        return data
    region = data[start:]
    total = int.from_bytes(region, "big") << (8 if len(region) & 1 else 0)
    s = total % 0xFFFF
    csum = (~(0xFFFF if s == 0 and total else s) & 0xFFFF) or 0xFFFF
    out = bytearray(data)
    _CSUM_FIELD.pack_into(out, at, csum)
    return bytes(out)


def interface_exists(name: str) -> bool:
    """Whether `name` exists in this network namespace (sysfs may show another one's)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def vnet_rx(raw: bytes) -> tuple[memoryview, int] | str:
    """One frame read from a vnet-header device as (frame past the header, rx) for
    `Stack.receive_batch`: rx 0 = verify the checksums, 1 = the kernel vouched for the transport
    checksum (NEEDS_CSUM or DATA_VALID), >= GSO_MIN_SIZE = a TCP/IPv4 GSO super-segment (GRO on
    receive) to be taken as segments of that size (always NEEDS_CSUM). A header the stack cannot
    take returns the drop reason instead (a short read, GSO of another kind, a bad gso_size)."""
    if len(raw) < VNET_HDR_LEN:
        return "rx_vnet_short"
    flags, gso_type = raw[0], raw[1]
    view = memoryview(raw)[VNET_HDR_LEN:]
    if gso_type == VNET_GSO_NONE:
        return view, 1 if flags & _VNET_TRUSTED else 0
    if gso_type & ~VNET_GSO_ECN != VNET_GSO_TCPV4:
        return "rx_gso_unsupported"  # TCPv6/UDP: we never asked for them
    gso_size = _VNET_HDR.unpack_from(raw)[3]
    if gso_size < GSO_MIN_SIZE or not flags & VNET_F_NEEDS_CSUM:
        return "rx_gso_malformed"
    return view, gso_size


class _TunTapBase:
    medium = "ip"
    _flag_name = "IFF_TUN"

    def __init__(self, name: str = "ust0", mtu: int = 1500, create: bool = True,
                 offload: bool = False, gso: bool = False) -> None:
        import pytun

        if not create and not interface_exists(name):
            raise FileNotFoundError(f"interface {name!r} does not exist (create=False)")
        flags = getattr(pytun, self._flag_name) | (pytun.IFF_VNET_HDR if offload else 0)
        self._dev = _open_tuntap(name, flags)
        self.name: str = self._dev.name
        try:
            if offload:
                fd = self._dev.fileno()
                fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
                # gso: the kernel may hand us TCP/IPv4 super-segments of up to 64 KB (GRO on
                # receive). Not TSO6: GRO over IPv6 is not written, so the kernel segments IPv6
                # TCP for us. Transmit takes both (a written GSO packet needs no feature flag).
                tso = TUN_F_TSO4 if gso else 0
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | tso)
            if create:
                self._dev.mtu = mtu
        except BaseException:
            self._dev.close()
            raise
        self.offload: bool = offload
        # TSO both ways: receive super-segments (only recv_batch_trusted), send GsoPackets
        self.gso: bool = bool(gso and offload)
        self.gso_max: int = GSO_MAX_PAYLOAD if self.gso and self.medium == "ip" else 0
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

    def send(self, frame: bytes | GsoPacket, now: float) -> None:
        try:
            if self.offload:
                if type(frame) is GsoPacket:  # TSO: its own virtio header, the payload view as it is
                    if not self.gso:
                        self.counters.drop_tx("tx_gso_unsupported")
                        return
                    n = os.writev(self._fd, (frame.header, frame.payload)) - VNET_HDR_LEN
                else:  # a zeroed virtio header: flags 0, the checksums are ours
                    n = os.writev(self._fd, (_VNET_TX, frame)) - VNET_HDR_LEN
            elif type(frame) is GsoPacket:
                self.counters.drop_tx("tx_gso_unsupported")
                return
            else:
                n = os.write(self._fd, frame)
        except OSError as e:
            self.counters.drop_tx(self._tx_error(e))
            return
        c = self.counters
        c.tx_frames += 1
        c.tx_bytes += n

    def send_batch(self, frames: Iterable[bytes], now: float) -> None:
        if self.offload:
            send = self.send
            for frame in frames:
                send(frame, now)
            return
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
        if self.offload:
            frame = _complete_checksum(frame)
        c = self.counters
        c.rx_frames += 1
        c.rx_bytes += len(frame)
        return frame

    def _read_batch(self, limit: int) -> list[bytes]:
        # Hot path: locals only, one try around the whole loop.
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
        return out

    def recv_batch(self, now: float, limit: int = 64) -> list[bytes]:
        out = self._read_batch(limit)
        if out:
            if self.offload:
                out = [_complete_checksum(f) for f in out]
            c = self.counters
            c.rx_frames += len(out)
            c.rx_bytes += sum(map(len, out))
        return out

    def recv_batch_trusted(self, now: float, limit: int = 64) -> list[tuple[bytes | memoryview, bool]]:
        """Like recv_batch, as (frame, checksum_trusted) pairs: True when the kernel vouched for
        the transport checksum (NEEDS_CSUM: the field holds only the pseudo-header sum, so the
        frame must not be verified; DATA_VALID). Without offload every frame is untrusted.
        Frames are memoryviews past the virtio header (their `.obj` is the immutable read)."""
        raw = self._read_batch(limit)
        if not raw:
            return []
        c = self.counters
        c.rx_frames += len(raw)
        if not self.offload:
            c.rx_bytes += sum(map(len, raw))
            return [(f, False) for f in raw]
        c.rx_bytes += sum(map(len, raw)) - VNET_HDR_LEN * len(raw)
        trusted, view = _TRUSTED_BY_FLAGS, memoryview
        if not self.gso:
            return [(view(f)[VNET_HDR_LEN:], trusted[f[0]]) for f in raw]
        out: list[tuple[bytes | memoryview, bool]] = []
        append = out.append
        for f in raw:
            if f[1] == VNET_GSO_NONE:  # the usual frame: one lookup, as without GSO
                append((view(f)[VNET_HDR_LEN:], trusted[f[0]]))
                continue
            got = vnet_rx(f)
            if type(got) is str:
                c.drop_rx(got)
            else:
                append(got)  # type: ignore[arg-type]
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
        extra = (", offload=True" if self.offload else "") + (", gso=True" if self.gso else "")
        return f"{type(self).__name__}({self.name!r}, mtu={self.mtu}{extra})"


class TunDevice(_TunTapBase):
    """A TUN interface: frames are raw IPv4 packets (IFF_TUN | IFF_NO_PI).

    `create=True` creates the interface if needed and sets its MTU; `create=False` attaches
    to an existing (persistent) interface and adopts its MTU. `offload=True`: receive checksum
    offload through a virtio header (module docstring; `recv_batch_trusted`). `gso=True` (with
    offload) also asks for TSO4, so the kernel's TCP hands over super-segments of up to
    64 KB; only `recv_batch_trusted` is meant for such a device (`vnet_rx`).
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
                   txqueuelen: int | None = None, disable_ipv6: bool = True,
                   addr6_cidr: str | None = None) -> None:
    """Configure the kernel's end of a TUN/TAP: MTU, address, IPv6 off, link up.

    IPv6 is disabled before the link comes up so the kernel never sends router solicitations
    or MLD reports into the device, unless `addr6_cidr` gives the kernel's side an IPv6 address
    (then IPv6 stays on, and that address skips DAD: `nodad`). Uses iproute2 (`ip`); raises
    RuntimeError on failure.
    """
    if addr6_cidr:
        set_sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "0")
    elif disable_ipv6:
        set_sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "1")  # path form: names may hold dots
    if mtu is not None:
        _ip("link", "set", "dev", name, "mtu", str(mtu))
    if txqueuelen is not None:
        _ip("link", "set", "dev", name, "txqueuelen", str(txqueuelen))
    if addr_cidr:
        _ip("addr", "replace", addr_cidr, "dev", name)
    if addr6_cidr:
        _ip("-6", "addr", "replace", addr6_cidr, "dev", name, "nodad")
    _ip("link", "set", "dev", name, "up")


def kernel_side_down(name: str) -> None:
    """Bring the kernel side down (the interface itself goes away when the device is closed)."""
    _ip("link", "set", "dev", name, "down")
