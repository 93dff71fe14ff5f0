"""TunDevice/TapDevice receive checksum offload (IFF_VNET_HDR + TUN_F_CSUM) against the kernel,
each test in its own private network namespace.

Checked independently of ustack.wire (dpkt and a word-by-word checksum): the kernel's own
UDP/TCP packets come trusted with only the pseudo-header sum in the checksum field; `recv` and
`recv_batch` fill it in; frames injected with AF_PACKET (a deliberately bad checksum) come
untrusted and byte for byte as written; frames we send carry a zeroed header the kernel strips.
"""

from __future__ import annotations

import select
import socket
import subprocess
import time

import dpkt
import pytest

from ustack.drivers import FaultInjector, TapDevice, TunDevice, kernel_side_up

pytestmark = pytest.mark.netns

KERNEL, US, OTHER = "198.18.0.1", "198.18.0.2", "198.18.0.9"
IF = "ofl0"
WAIT_S = 3.0


def csum_ok(ip: dpkt.ip.IP) -> bool:
    """Word-by-word RFC 1071 check of the transport checksum (pseudo-header included)."""
    seg = bytes(ip.data)
    data = ip.src + ip.dst + bytes([0, ip.p]) + len(seg).to_bytes(2, "big") + seg
    if len(data) & 1:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def read_until(dev, pred, read, timeout: float = WAIT_S, max_frames: int = 500):
    deadline = time.monotonic() + timeout
    seen = 0
    while seen < max_frames and time.monotonic() < deadline:
        select.select([dev.fileno()], [], [], max(0.0, deadline - time.monotonic()))
        for item in read():
            seen += 1
            if pred(item):
                return item
    raise AssertionError(f"no matching frame within {timeout} s ({seen} others)")


def udp_to_us(port: int):
    def pred(item) -> bool:
        f = item[0] if isinstance(item, tuple) else item
        ip = dpkt.ip.IP(bytes(f))
        return ip.p == 17 and socket.inet_ntoa(ip.dst) == US and ip.data.dport == port
    return pred


@pytest.fixture
def tun(netns):
    dev = TunDevice(IF, 1500, offload=True)
    kernel_side_up(IF, f"{KERNEL}/24", 1500)
    yield dev
    dev.close()


def kernel_udp(port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(payload, (US, port))


def test_kernel_udp_comes_trusted_with_a_partial_checksum(tun):
    payload = b"odd length payload" * 7 + b"!"
    kernel_udp(9001, payload)
    frame, trusted = read_until(tun, udp_to_us(9001), lambda: tun.recv_batch_trusted(0.0))
    assert trusted is True
    assert isinstance(frame, memoryview) and type(frame.obj) is bytes
    ip = dpkt.ip.IP(bytes(frame))
    assert ip.data.data == payload
    assert not csum_ok(ip)  # NEEDS_CSUM: the field holds the pseudo-header sum only


@pytest.mark.parametrize("single", [False, True])
def test_plain_reads_fill_the_checksum_in(tun, single):
    payload = b"x" * 333
    kernel_udp(9002, payload)
    read = (lambda: [f] if (f := tun.recv(0.0)) is not None else []) if single else (
        lambda: tun.recv_batch(0.0))
    frame = read_until(tun, udp_to_us(9002), read)
    assert type(frame) is bytes
    ip = dpkt.ip.IP(frame)
    assert ip.data.data == payload and csum_ok(ip)
    assert tun.counters.rx_bytes >= len(frame)


def test_kernel_tcp_syn_is_trusted_and_completes(tun):
    socks = [socket.socket() for _ in range(2)]
    try:
        for s in socks:
            s.setblocking(False)
        socks[0].connect_ex((US, 80))
        frame, trusted = read_until(tun, lambda it: dpkt.ip.IP(bytes(it[0])).p == 6,
                                    lambda: tun.recv_batch_trusted(0.0))
        assert trusted and not csum_ok(dpkt.ip.IP(bytes(frame)))
        socks[1].connect_ex((US, 81))
        plain = read_until(tun, lambda f: dpkt.ip.IP(f).p == 6 and dpkt.ip.IP(f).data.dport == 81,
                           lambda: tun.recv_batch(0.0))
        assert csum_ok(dpkt.ip.IP(plain))
    finally:
        for s in socks:
            s.close()


def af_packet_udp(port: int, payload: bytes, bad: bool) -> bytes:
    udp = dpkt.udp.UDP(sport=4444, dport=port, data=payload)
    ip = dpkt.ip.IP(src=socket.inet_aton(OTHER), dst=socket.inet_aton(US), p=17, ttl=64, data=udp)
    ip.len = 20 + 8 + len(payload)
    udp.ulen = 8 + len(payload)
    raw = bytearray(bytes(ip))  # dpkt fills in both checksums
    if bad:
        raw[26] ^= 0x5A
    with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM) as s:
        s.sendto(bytes(raw), (IF, 0x0800))
    return bytes(raw)


@pytest.mark.parametrize("bad", [True, False])
def test_af_packet_frames_come_untrusted_and_unchanged(tun, bad):
    sent = af_packet_udp(9003, b"injected", bad)
    frame, trusted = read_until(tun, udp_to_us(9003), lambda: tun.recv_batch_trusted(0.0))
    assert trusted is False and bytes(frame) == sent
    assert csum_ok(dpkt.ip.IP(bytes(frame))) is not bad
    sent = af_packet_udp(9004, b"again", bad)
    assert read_until(tun, udp_to_us(9004), lambda: tun.recv_batch(0.0)) == sent  # not "repaired"


def test_sent_frames_reach_the_kernel(tun):
    """A zeroed virtio header goes in front of each frame and the kernel strips it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as k:
        k.bind((KERNEL, 9005))
        k.settimeout(WAIT_S)
        udp = dpkt.udp.UDP(sport=5555, dport=9005, data=b"from the device")
        ip = dpkt.ip.IP(src=socket.inet_aton(US), dst=socket.inet_aton(KERNEL), p=17, ttl=64, data=udp)
        ip.len = 20 + 8 + len(udp.data)
        udp.ulen = 8 + len(udp.data)
        frame = bytes(ip)
        tun.send(frame, 0.0)
        tun.send_batch([frame, frame], 0.0)
        got = [k.recvfrom(100) for _ in range(3)]
    assert got == [(b"from the device", (US, 5555))] * 3
    assert tun.counters.tx_frames == 3 and tun.counters.tx_bytes == 3 * len(frame)


def test_middleware_does_not_offer_the_trusted_read(tun):
    """The Host looks the trusted read up on the device's type: middleware in between hides it
    (Middleware forwards unknown instance attributes, so the check must be on the type)."""
    wrapped = FaultInjector(tun)
    assert getattr(type(wrapped), "recv_batch_trusted", None) is None
    assert getattr(type(tun), "recv_batch_trusted", None) is not None


def udp_in_ethernet(port: int):
    def pred(item) -> bool:
        eth = dpkt.ethernet.Ethernet(bytes(item[0] if isinstance(item, tuple) else item))
        return isinstance(eth.data, dpkt.ip.IP) and eth.data.p == 17 and eth.data.data.dport == port
    return pred


def test_tap_offload(netns):
    tap = TapDevice("oftap0", 1500, offload=True)
    try:
        kernel_side_up("oftap0", f"{KERNEL}/24", 1500)
        subprocess.run(["ip", "neigh", "replace", US, "lladdr", "02:00:00:00:00:02", "dev", "oftap0"],
                       check=True, timeout=10)
        kernel_udp(9006, b"over ethernet")
        frame, trusted = read_until(tap, udp_in_ethernet(9006), lambda: tap.recv_batch_trusted(0.0))
        assert trusted and dpkt.ethernet.Ethernet(bytes(frame)).data.data.data == b"over ethernet"
        kernel_udp(9007, b"filled in")
        plain = read_until(tap, udp_in_ethernet(9007), lambda: tap.recv_batch(0.0))
        assert csum_ok(dpkt.ethernet.Ethernet(plain).data)
    finally:
        tap.close()
