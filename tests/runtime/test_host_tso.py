"""Transmit segmentation offload (TSO) against the kernel over a real TUN, in a private namespace.

With offload "auto" on a bare TUN, ustack's TCP hands the device super-segments (virtio header
with NEEDS_CSUM, gso_type TCPV4, gso_size = MSS) and the kernel takes them as the segments they
stand for: the data arrives intact (SHA-256) and the kernel's TCP counts the segments
(tcpi_segs_in), while far fewer frames crossed the device. With "csum", "none" or middleware,
ustack sends per segment.
"""

from __future__ import annotations

import hashlib
import random
import socket
import struct
import threading

import pytest

from ustack import drivers
from ustack.runtime.host import Host
from ustack.tcp import State
from ustack.wire.ipv4 import ip_int

pytestmark = pytest.mark.netns

IF = "rttso0"
KERNEL, USTACK = "198.18.0.1", "198.18.0.2"
PORT = 7200
_TCPI_RCV_MSS = 20  # offset of tcpi_rcv_mss in struct tcp_info (<linux/tcp.h>)


def raw_device(host: Host):
    d = host.device
    while isinstance(d, drivers.Middleware):
        d = d.inner
    return d


class KernelSink:
    """A kernel listener on KERNEL:PORT hashing what one connection sends until EOF, then
    reading its own TCP_INFO (the receive MSS it measured)."""

    def __init__(self) -> None:
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((KERNEL, PORT))
        self.ls.listen(1)
        self.ls.settimeout(10)
        self.digest = hashlib.sha256()
        self.nbytes = 0
        self.rcv_mss = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            c, _ = self.ls.accept()
            with c:
                c.settimeout(15)
                while True:
                    b = c.recv(1 << 20)
                    if not b:
                        break
                    self.digest.update(b)
                    self.nbytes += len(b)
                info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
                self.rcv_mss = struct.unpack_from("I", info, _TCPI_RCV_MSS)[0]
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.ls.close()


def send_all(host: Host, data: bytes, timeout_s: float = 20.0) -> dict:
    def connect():
        s = host.stack.tcp.open()
        s.connect(ip_int(KERNEL), PORT, host.now())
        return s
    s = host.call(connect)
    assert host.wait(lambda: s.state == State.ESTABLISHED or s.error is not None, 5.0)
    view = memoryview(data)
    sent = 0
    import time
    deadline = time.monotonic() + timeout_s
    while sent < len(data) and time.monotonic() < deadline:
        host.wait(lambda: s.writable_bytes > 0 or s.error is not None, 1.0)
        sent += host.call(lambda k=sent: s.send(view[k:k + (1 << 20)], host.now()))
        assert host.call(lambda: s.error) is None
    assert sent == len(data)
    host.call(lambda: s.shutdown(1, host.now()))
    assert host.wait(lambda: s.conn.snd.fin_acked() or s.error is not None, timeout_s)
    return host.call(lambda: s.conn.info())


@pytest.mark.parametrize("mode", ["auto", "csum"])
def test_kernel_receives_a_tso_stream_intact(netns, mode):
    host = Host.open(tun=IF, addr=f"{USTACK}/24", peer=f"{KERNEL}/24", seed=7, offload=mode)
    try:
        sink = KernelSink()
        data = random.Random(11).randbytes(4_000_000)
        info = send_all(host, data)
        sink.thread.join(15)
        assert sink.error is None and not sink.thread.is_alive()
        assert sink.nbytes == len(data)
        assert sink.digest.hexdigest() == hashlib.sha256(data).hexdigest()
        c = host.call(host.stack.counters.snapshot)
        dev = raw_device(host).counters
        segments = len(data) // 1448
        # the kernel took gso_size as the segment size (tcp_measure_rcv_mss), not the frame's
        assert sink.rcv_mss <= 1448, sink.rcv_mss
        assert info["segs_out"] >= segments
        if mode == "auto":
            assert host.stack.gso_max > 0
            assert c.get("ipv4.gso_out", 0) > 0, c
            assert c["ipv4.gso_segs_out"] >= 2 * c["ipv4.gso_out"]
            assert dev.tx_frames < segments // 2  # super-segments: far fewer writes than segments
        else:
            assert host.stack.gso_max == 0
            assert c.get("ipv4.gso_out", 0) == 0
            assert dev.tx_frames >= segments
        assert dev.tx_dropped == 0, dev.drops
        assert host.errors == 0
        assert c.get("stack.internal_error", 0) == 0 and c.get("tcp.internal_error", 0) == 0
    finally:
        host.close()


@pytest.mark.parametrize("kw", [{"pcap": "PCAP"}, {"faults": "loss=0%"}, {"trace": lambda line: None},
                                {"offload": "none"}])
def test_transmit_offload_only_on_a_bare_tun(netns, tmp_path, kw):
    if kw.get("pcap") == "PCAP":
        kw["pcap"] = str(tmp_path / "x.pcap")
    host = Host.open(tun=IF, addr=f"{USTACK}/24", peer=f"{KERNEL}/24", seed=7, **kw)
    try:
        assert host.stack.gso_max == 0
    finally:
        host.close()


def test_kernel_segments_forwarded_super_segments(netns):
    """ustack A (TSO) sends through the kernel, which routes to ustack B on a second TUN with
    no offload at all: the kernel must cut every super-segment into MTU-sized segments with
    correct checksums, which B verifies one by one in Python; the stream arrives intact."""
    from ustack.drivers import set_sysctl

    set_sysctl("net.ipv4.ip_forward", "1")
    a = Host.open(tun="rttsoa0", addr=f"{USTACK}/24", peer=f"{KERNEL}/24", gateway=KERNEL, seed=7)
    b = Host.open(tun="rttsob0", addr="198.18.1.2/24", peer="198.18.1.1/24", gateway="198.18.1.1",
                  seed=8, offload="none")
    try:
        assert a.stack.gso_max > 0 and b.stack.gso_max == 0 and not b.offload

        def listen():
            s = b.stack.tcp.open()
            s.bind(ip_int("198.18.1.2"), PORT)
            s.listen(4)
            return s
        ls = b.call(listen)

        def connect():
            s = a.stack.tcp.open()
            s.connect(ip_int("198.18.1.2"), PORT, a.now())
            return s
        s = a.call(connect)
        assert b.wait(lambda: ls.accept_pending, 5.0)
        conn = b.call(ls.accept)
        data = random.Random(12).randbytes(2_000_000)
        view = memoryview(data)
        got = bytearray()
        sent = 0
        import time
        deadline = time.monotonic() + 30
        while len(got) < len(data) and time.monotonic() < deadline:
            if sent < len(data):
                sent += a.call(lambda k=sent: s.send(view[k:k + (1 << 20)], a.now()))
            b.wait(lambda: conn.readable_bytes > 0, 0.2)
            got += b.call(lambda: conn.recv(1 << 20) if conn.readable_bytes else b"")
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
        ca = a.call(a.stack.counters.snapshot)
        cb = b.call(b.stack.counters.snapshot)
        assert ca.get("ipv4.gso_out", 0) > 0 and ca["ipv4.gso_segs_out"] >= 2 * ca["ipv4.gso_out"], ca
        segments = len(data) // 1448
        # B received segments (never larger than its MTU), every checksum verified in Python
        assert cb.get("ipv4.csum_offloaded", 0) == 0
        assert b.call(lambda: conn.conn.info())["segs_in"] >= segments
        assert raw_device(b).counters.rx_frames >= segments
        assert cb.get("tcp.bad_checksum", 0) == 0 and cb.get("ipv4.bad_checksum", 0) == 0, cb
        for c in (ca, cb):
            assert c.get("stack.internal_error", 0) == 0 and c.get("tcp.internal_error", 0) == 0
        assert a.errors == 0 and b.errors == 0
    finally:
        a.close()
        b.close()


def test_pcap_with_tso_records_the_super_segments_and_says_so(netns, tmp_path):
    """offload "tso" with a pcap: offloads stay on, the capture is pcapng whose section comment
    says super-segments appear as the device was given them, and each super-segment's record is
    the whole packet (over the MTU, partial checksum) with a comment naming its segments; tshark
    reads it."""
    import subprocess

    import dpkt

    from ustack.drivers.pcap import OFFLOAD_NOTE

    path = tmp_path / "tso.pcapng"
    host = Host.open(tun=IF, addr=f"{USTACK}/24", peer=f"{KERNEL}/24", seed=7, offload="tso", pcap=str(path))
    try:
        assert host.offload and host.stack.gso_max > 0
        sink = KernelSink()
        data = random.Random(13).randbytes(1_000_000)
        send_all(host, data)
        sink.thread.join(15)
        assert sink.error is None and sink.digest.hexdigest() == hashlib.sha256(data).hexdigest()
        c = host.call(host.stack.counters.snapshot)
    finally:
        host.close()
    raw = path.read_bytes()
    assert raw[:4] == b"\x0a\x0d\x0d\x0a"  # pcapng
    shb = dpkt.pcapng.SectionHeaderBlockLE(raw[:struct.unpack_from("<I", raw, 4)[0]])
    assert any(o.code == dpkt.pcapng.PCAPNG_OPT_COMMENT and o.text == OFFLOAD_NOTE for o in shb.opts)
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "ip.len", "-e", "tcp.len",
                          "-e", "frame.comment", "-e", "pkt_comment", "-Y", "tcp"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    big = [r for r in rows if int(r[0]) > 1500]
    assert len(big) == c["ipv4.gso_out"] > 0  # every super-segment the device was given, whole
    assert all("TSO super-segment" in " ".join(r[2:]) for r in big), big[:3]
    assert sum(int(r[1]) for r in rows) >= len(data)  # all the data is in the capture
    with pytest.raises(ValueError, match="tso"):
        Host.open(tun=IF, addr=f"{USTACK}/24", peer=f"{KERNEL}/24", offload="tso", faults="loss=1%")


def test_kernel_receives_a_tso_stream_over_ipv6(netns):
    """The same over IPv6: ustack's TCPV6 super-segments (virtio gso_type 4) to a kernel socket
    on [2001:2::1], intact by SHA-256, the kernel's receive MSS the gso_size."""
    from ustack.core.stack import Stack, StackConfig
    from ustack.runtime.host import attach_tcp
    from ustack.wire.ipv6 import ip6_int

    dev = drivers.TunDevice("rttso6", mtu=1500, offload=True, gso=True)
    try:
        drivers.kernel_side_up(dev.name, f"{KERNEL}/24", disable_ipv6=False)
        netns.ip("-6", "addr", "add", "2001:2::1/64", "dev", dev.name, "nodad")
        stack = Stack(StackConfig(addr=f"{USTACK}/24", addr6="2001:2::2/64", mtu=1500, medium="ip", seed=9))
        attach_tcp(stack, None)
    except BaseException:
        dev.close()
        raise
    host = Host(stack, dev)
    try:
        assert host.offload and stack.gso_max > 0
        ls = socket.socket(socket.AF_INET6)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("2001:2::1", PORT))
        ls.listen(1)
        ls.settimeout(10)
        data = random.Random(14).randbytes(3_000_000)
        result: dict = {}

        def sink():
            try:
                c, _ = ls.accept()
                with c:
                    c.settimeout(15)
                    h, n = hashlib.sha256(), 0
                    while b := c.recv(1 << 20):
                        h.update(b)
                        n += len(b)
                    info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
                    mss = struct.unpack_from("I", info, _TCPI_RCV_MSS)[0]
                    result.update(digest=h.hexdigest(), n=n, rcv_mss=mss)
            except BaseException as e:  # noqa: BLE001
                result["error"] = e
            finally:
                ls.close()
        t = threading.Thread(target=sink, daemon=True)
        t.start()

        def connect():
            s = stack.tcp.open(6)
            s.connect(ip6_int("2001:2::1"), PORT, host.now())
            return s
        s = host.call(connect)
        assert host.wait(lambda: s.state == State.ESTABLISHED or s.error is not None, 5.0), s
        view, sent = memoryview(data), 0
        import time
        deadline = time.monotonic() + 20
        while sent < len(data) and time.monotonic() < deadline:
            host.wait(lambda: s.writable_bytes > 0 or s.error is not None, 1.0)
            sent += host.call(lambda k=sent: s.send(view[k:k + (1 << 20)], host.now()))
        host.call(lambda: s.shutdown(1, host.now()))
        t.join(20)
        assert "error" not in result, result
        assert result["n"] == len(data) and result["digest"] == hashlib.sha256(data).hexdigest()
        assert result["rcv_mss"] <= 1440, result  # the gso_size (MTU - 40 - 20 - 12)
        c = host.call(stack.counters.snapshot)
        assert c.get("ipv6.gso_out", 0) > 0 and c["ipv6.gso_segs_out"] >= 2 * c["ipv6.gso_out"], c
        assert c.get("ipv4.gso_out", 0) == 0
        assert dev.counters.tx_dropped == 0 and host.errors == 0
        assert c.get("stack.internal_error", 0) == 0 and c.get("tcp.internal_error", 0) == 0
    finally:
        host.close()
