"""Host with receive checksum offload on a real TUN against the kernel (private namespaces).

Host.open turns offload on for a bare TUN and off when middleware (faults, pcap, trace) must see
every frame; a kernel TCP stream arrives intact through the trusted path; frames that do not
come from the kernel's own sockets (AF_PACKET injections) are still verified, on the fast path
too; and a corrupting FaultInjector is never bypassed even over an offloading device.
"""

from __future__ import annotations

import hashlib
import random
import socket
import threading
import time

import pytest

from ustack import drivers
from ustack.runtime.host import Host
from ustack.wire.ipv4 import Ipv4Packet, ip_int
from ustack.wire.tcp import ACK, PSH, TcpOptions, TcpSegment

pytestmark = pytest.mark.netns

IF = "rtofl0"
KERNEL, USTACK = "198.18.0.1", "198.18.0.2"
PORT = 7100


def open_host(**kw) -> Host:
    return Host.open(tun=IF, addr=f"{USTACK}/24", peer=f"{KERNEL}/24", seed=3, **kw)


def raw_device(host: Host):
    d = host.device
    while isinstance(d, drivers.Middleware):
        d = d.inner
    return d


@pytest.mark.parametrize("kw, expect", [
    ({}, True),
    ({"offload": False}, False),
    ({"offload": "none"}, False),
    ({"offload": "csum"}, True),
    ({"offload": "csum", "pcap": "PCAP"}, False),
    ({"faults": "loss=0%"}, False),
    ({"pcap": "PCAP"}, False),
    ({"trace": lambda line: None}, False),
])
def test_open_turns_offload_on_only_for_a_bare_tun(netns, tmp_path, kw, expect):
    if kw.get("pcap") == "PCAP":
        kw["pcap"] = str(tmp_path / "x.pcap")
    host = open_host(**kw)
    try:
        assert host.offload is expect
        assert raw_device(host).offload is (expect or kw.get("offload") == "csum")
        # GRO only for the bare TUN in auto mode: middleware sees frames per segment
        assert raw_device(host).gso is (expect and kw.get("offload", "auto") == "auto")
    finally:
        host.close()


def test_tap_offload_is_off_unless_asked(netns):
    host = Host.open(tap="rtofltap0", addr=f"{USTACK}/24", peer=f"{KERNEL}/24", seed=3)
    try:
        assert host.offload is False
    finally:
        host.close()


def accept_one(host: Host) -> tuple:
    def listen():
        s = host.stack.tcp.open()
        s.bind(ip_int(USTACK), PORT)
        s.listen(4)
        return s
    return host.call(listen)


def drain(host: Host, conn, want: int, timeout_s: float = 20.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout_s
    while len(out) < want and time.monotonic() < deadline:
        host.wait(lambda: conn.readable_bytes > 0 or conn.at_eof or conn.error is not None, 1.0)
        out += host.call(lambda: conn.recv(1 << 20) if conn.readable_bytes else b"")
        if host.call(lambda: conn.at_eof or conn.error is not None) and not conn.readable_bytes:
            break
    return bytes(out)


@pytest.mark.parametrize("mode", ["auto", "csum"])
def test_kernel_stream_arrives_intact_through_the_trusted_path(netns, mode):
    """csum: per segment, every one vouched for. auto: GRO as well, so super-segments of many
    segments actually arrive (tcp.gro_in > 0) and are taken whole, and still the SHA-256 matches."""
    host = open_host(offload=mode)
    try:
        assert host.offload and raw_device(host).gso is (mode == "auto")
        lsock = accept_one(host)
        data = random.Random(5).randbytes(3_000_000)
        errors: list = []

        def send():
            try:
                with socket.create_connection((USTACK, PORT), timeout=10) as k:
                    k.sendall(data)
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        assert host.wait(lambda: lsock.accept_pending, 5.0)
        conn = host.call(lsock.accept)
        got = drain(host, conn, len(data))
        t.join(10)
        assert not errors
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
        c = host.call(host.stack.counters.snapshot)
        info = host.call(conn.conn.info)
        if mode == "csum":
            assert c.get("ipv4.csum_offloaded", 0) >= len(data) // 1460  # every data segment
            assert c.get("tcp.gro_in", 0) == 0 and c.get("tcp.gro_segs", 0) == 0
        else:
            assert c.get("tcp.gro_in", 0) > 0, c
            # a super-segment holds several segments; segs_in counts them, not the frames
            assert c["tcp.gro_segs"] >= 2 * c["tcp.gro_in"], c
            assert info["segs_in"] >= len(data) // 1448
            assert c.get("ipv4.csum_offloaded", 0) < len(data) // 1460  # fewer frames than segments
        assert info["rcv_mss"] <= 1460  # the receive MSS stays the real segment size
        assert c.get("tcp.bad_checksum", 0) == 0 and host.errors == 0
        assert c.get("stack.internal_error", 0) == 0 and c.get("tcp.internal_error", 0) == 0
    finally:
        host.close()


def inject(frame: bytes) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM) as s:
        s.sendto(frame, (IF, 0x0800))


@pytest.mark.parametrize("via", ["offload", "faults"])
def test_bad_tcp_checksum_from_af_packet_is_dropped(netns, via):
    """An in-order data segment shaped for the TCP fast path (NOP NOP TS), with a bad checksum,
    injected with AF_PACKET (virtio flags 0): dropped and counted; the stream goes on intact."""
    host = open_host() if via == "offload" else open_host(offload=True, faults="loss=0%")
    try:
        assert host.offload is (via == "offload")
        lsock = accept_one(host)
        k = socket.create_connection((USTACK, PORT), timeout=5)
        try:
            assert host.wait(lambda: lsock.accept_pending, 5.0)
            conn = host.call(lsock.accept)
            k.sendall(b"first")
            assert drain(host, conn, 5) == b"first"

            def shape():
                c = conn.conn
                return (c.rcv.rcv_nxt, c.snd.snd_una, c.snd.snd_wnd >> c.snd.wscale, c.ts_recent,
                        c.ts_ok, c.lport, c.rport)
            rcv_nxt, snd_una, window, ts_recent, ts_ok, lport, rport = host.call(shape)
            assert ts_ok  # the kernel uses timestamps
            # exactly what the header prediction takes: in order, same ACK and window, TS, ACK|PSH
            seg = TcpSegment(rport, lport, rcv_nxt, snd_una, ACK | PSH, window, b"EVIL" * 100,
                             TcpOptions(ts=(ts_recent, 0)))
            src, dst = ip_int(KERNEL), ip_int(USTACK)
            raw = bytearray(Ipv4Packet(src, dst, 6, seg.emit(src, dst), df=True).emit())
            raw[36] ^= 0x5A  # TCP checksum
            before = host.call(host.stack.counters.get, "tcp.bad_checksum")
            inject(bytes(raw))
            assert host.wait(lambda: host.stack.counters.get("tcp.bad_checksum") > before, 3.0)
            k.sendall(b"second")
            assert drain(host, conn, 6) == b"second"
        finally:
            k.close()
    finally:
        host.close()


def test_corrupting_fault_injector_is_never_bypassed(netns):
    """offload=True with a FaultInjector corrupting every received frame: the device offloads,
    but the Host reads through the middleware, so every corruption is caught by verification."""
    host = open_host(offload=True, faults="corrupt=100%,dir=rx,seed=1")
    try:
        assert raw_device(host).offload and not host.offload
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as k:
            for i in range(20):
                k.sendto(b"datagram %d" % i + bytes(200), (USTACK, 9))  # closed port
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            c = host.call(host.stack.counters.snapshot)
            if c.get("ipv4.in", 0) >= 20:
                break
            time.sleep(0.02)
        c = host.call(host.stack.counters.snapshot)
        assert c.get("ipv4.in", 0) >= 20
        assert c.get("ipv4.csum_offloaded", 0) == 0
        # one flipped bit per frame: caught by the IPv4 header or the UDP checksum (or an IPv4
        # length/version check before them); a frame accepted as valid would count udp.no_port
        assert c.get("udp.no_port", 0) == 0, c
        assert c.get("ipv4.bad_checksum", 0) + c.get("udp.bad_checksum", 0) >= 15, c
    finally:
        host.close()
