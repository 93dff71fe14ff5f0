"""TUN and TAP against the Linux kernel, each test in its own private network namespace.

The test plays the ustack side (198.18.0.2, MAC 02:00:00:00:00:02); the kernel side of the
interface is 198.18.0.1/24. Frames are built with scapy and parsed with dpkt, independently of
ustack.wire. Every wait is bounded in time and in frames.
"""

import select
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import dpkt
import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from tests.netns import require_tool, run_in_netns
from ustack.drivers import (
    PcapWriter,
    TapDevice,
    TunDevice,
    interface_exists,
    kernel_side_down,
    kernel_side_up,
    read_pcap,
)

KERNEL, US = "198.18.0.1", "198.18.0.2"
US_MAC = "02:00:00:00:00:02"
MAC = bytes.fromhex(US_MAC.replace(":", ""))
WAIT_S = 3.0


def wait_for(dev, pred: Callable[[bytes], bool], timeout: float = WAIT_S,
             answer: Callable[[bytes], None] | None = None, max_frames: int = 2000,
             single: bool = False) -> bytes:
    """First frame satisfying pred; others go to `answer` (e.g. ARP replies). Bounded.
    `single` reads with recv() instead of recv_batch()."""
    deadline = time.monotonic() + timeout
    seen = 0
    while seen < max_frames:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        select.select([dev.fileno()], [], [], left)
        if single:
            one = dev.recv(time.monotonic())
            frames = [] if one is None else [one]
        else:
            frames = dev.recv_batch(time.monotonic())
        for f in frames:
            seen += 1
            if pred(f):
                return f
            if answer is not None:
                answer(f)
    raise AssertionError(f"no matching frame within {timeout} s ({seen} others seen)")


def is_udp_to_us(port: int) -> Callable[[bytes], bool]:
    def pred(f: bytes) -> bool:
        ip = dpkt.ip.IP(f)
        return ip.p == 17 and socket.inet_ntoa(ip.dst) == US and ip.data.dport == port
    return pred


def is_echo_reply(f: bytes) -> bool:
    ip = dpkt.ip.IP(f)
    return ip.p == 1 and ip.data.type == 0 and socket.inet_ntoa(ip.src) == KERNEL


def echo_request(ident: int = 0x77, seq: int = 1, data: bytes = b"ustack-ping") -> bytes:
    return bytes(IP(src=US, dst=KERNEL) / ICMP(type=8, id=ident, seq=seq) / data)


def kernel_udp(port: int, payload: bytes = b"from-kernel", count: int = 1) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(count):
            s.sendto(payload, (US, port))


# -- TUN -----------------------------------------------------------------------------------------
def test_tun_receives_kernel_udp_and_answers_nothing_else(netns) -> None:
    dev = TunDevice("ust0", mtu=1500)
    try:
        assert dev.medium == "ip" and dev.mtu == 1500 and dev.recv(0.0) is None
        kernel_side_up("ust0", f"{KERNEL}/24", 1500)
        kernel_udp(9)
        f = wait_for(dev, is_udp_to_us(9), single=True)
        ip = dpkt.ip.IP(f)
        assert socket.inet_ntoa(ip.src) == KERNEL and ip.data.data == b"from-kernel"
        assert dev.counters.rx_frames >= 1 and dev.counters.rx_bytes >= len(f)
    finally:
        dev.close()


def test_tun_echo_request_gets_kernel_reply(netns) -> None:
    with TunDevice("ust0") as dev:
        kernel_side_up("ust0", f"{KERNEL}/24", 1500)
        dev.send(echo_request(), 0.0)
        assert dev.counters.tx_frames == 1
        reply = dpkt.ip.IP(wait_for(dev, is_echo_reply, single=True))
        assert socket.inet_ntoa(reply.dst) == US
        assert reply.data.data.id == 0x77 and reply.data.data.data == b"ustack-ping"


def test_tun_recv_batch_drains_a_burst(netns) -> None:
    with TunDevice("ust0") as dev:
        kernel_side_up("ust0", f"{KERNEL}/24", 1500, txqueuelen=1000)
        kernel_udp(5001, b"x" * 100, count=300)
        got: list[bytes] = []
        deadline = time.monotonic() + WAIT_S
        for _ in range(1000):
            if len(got) >= 300 or time.monotonic() > deadline:
                break
            select.select([dev.fileno()], [], [], 0.2)
            batch = dev.recv_batch(0.0, limit=64)
            assert len(batch) <= 64
            got.extend(f for f in batch if is_udp_to_us(5001)(f))
        assert len(got) == 300
        assert dev.counters.rx_frames >= 300


def test_tun_send_counts_drops_instead_of_raising(netns) -> None:
    with TunDevice("ust0") as dev:
        kernel_side_up("ust0", f"{KERNEL}/24", 1500)
        kernel_side_down("ust0")
        dev.send(echo_request(), 0.0)  # link down: EIO
        dev.send(b"", 0.0)  # the kernel refuses an empty packet: EINVAL
        dev.send_batch([echo_request(), echo_request()], 0.0)
        assert dev.counters.tx_frames == 0 and dev.counters.tx_dropped == 4
        assert set(dev.counters.drops) <= {"tx_link_down", "tx_invalid"}
    # after close: drops and empties, never a write to a recycled fd number
    dev.send(echo_request(), 0.0)
    dev.send_batch([echo_request()], 0.0)
    assert dev.counters.drops["closed"] == 2
    assert dev.recv(0.0) is None and dev.recv_batch(0.0) == [] and dev.fileno() is None
    dev.close()  # idempotent


def test_tun_mtu_and_attach_to_persistent_interface(netns) -> None:
    with TunDevice("ust1", mtu=1280) as dev:
        assert dev.mtu == 1280
        assert "mtu 1280" in netns.ip("link", "show", "ust1").stdout
    assert not interface_exists("ust1")  # closed: a non-persistent interface is gone
    with pytest.raises(FileNotFoundError):
        TunDevice("ust9", create=False)
    netns.ip("tuntap", "add", "dev", "ust2", "mode", "tun")
    netns.ip("link", "set", "dev", "ust2", "mtu", "1400")
    with TunDevice("ust2", create=False) as dev:
        assert dev.mtu == 1400 and dev.name == "ust2"
        kernel_side_up("ust2", f"{KERNEL}/24")
        dev.send(echo_request(seq=9), 0.0)
        assert is_echo_reply(wait_for(dev, is_echo_reply))


def _tun_echo_in_child() -> tuple[int, bytes]:
    with TunDevice("ust0") as dev:
        kernel_side_up("ust0", f"{KERNEL}/24", 1500)
        dev.send(echo_request(seq=3, data=b"forked"), 0.0)
        reply = dpkt.ip.IP(wait_for(dev, is_echo_reply))
        return reply.data.data.seq, bytes(reply.data.data.data)


@pytest.mark.netns
def test_tun_in_forked_namespace() -> None:
    assert run_in_netns(_tun_echo_in_child, timeout=20) == (3, b"forked")


def test_tun_capture_of_kernel_traffic_decodes_in_tshark(netns, tmp_path: Path) -> None:
    path = tmp_path / "tun.pcap"
    with PcapWriter(TunDevice("ust0"), path) as dev:
        kernel_side_up("ust0", f"{KERNEL}/24", 1500)
        dev.send(echo_request(), 1.0)
        wait_for(dev, is_echo_reply)
        kernel_udp(7)
        wait_for(dev, is_udp_to_us(7))
    recs = list(read_pcap(path))
    assert len(recs) >= 3 and recs[0][0] == 1.0
    tshark = require_tool("tshark")
    out = subprocess.run([tshark, "-n", "-r", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Malformed" not in out.stdout
    assert "Echo (ping) request" in out.stdout and "Echo (ping) reply" in out.stdout


# -- TAP -----------------------------------------------------------------------------------------
def arp_responder(dev: TapDevice) -> Callable[[bytes], None]:
    """Answer the kernel's ARP requests for our address, as the stack would."""
    def answer(f: bytes) -> None:
        eth = Ether(f)
        if ARP in eth and eth[ARP].op == 1 and eth[ARP].pdst == US:
            reply = Ether(dst=eth.src, src=US_MAC) / ARP(
                op=2, hwsrc=US_MAC, psrc=US, hwdst=eth[ARP].hwsrc, pdst=eth[ARP].psrc)
            dev.send(bytes(reply), time.monotonic())
    return answer


def eth_ipv4(pred: Callable[[bytes], bool]) -> Callable[[bytes], bool]:
    def check(f: bytes) -> bool:
        e = dpkt.ethernet.Ethernet(f)
        return e.type == 0x0800 and e.dst == MAC and pred(bytes(e.data))
    return check


def test_tap_arp_then_kernel_udp(netns) -> None:
    with TapDevice("ustap0") as dev:
        assert dev.medium == "ethernet" and len(dev.mac) == 6 and dev.mac != MAC
        kernel_side_up("ustap0", f"{KERNEL}/24", 1500)
        kernel_udp(9)
        # The kernel must resolve 198.18.0.2 first: we see its ARP request and answer it.
        req = wait_for(dev, lambda f: ARP in Ether(f) and Ether(f)[ARP].pdst == US)
        assert Ether(req).src.replace(":", "") == dev.mac.hex() and Ether(req).dst == "ff:ff:ff:ff:ff:ff"
        arp_responder(dev)(req)
        f = wait_for(dev, eth_ipv4(is_udp_to_us(9)), answer=arp_responder(dev))
        assert dpkt.ethernet.Ethernet(f).src == dev.mac
        assert "02:00:00:00:00:02" in netns.ip("neigh", "show", "dev", "ustap0").stdout


def test_tap_echo_request_gets_kernel_reply(netns) -> None:
    with TapDevice("ustap0") as dev:
        kernel_side_up("ustap0", f"{KERNEL}/24", 1500)
        frame = bytes(Ether(dst=dev.mac, src=US_MAC) / IP(src=US, dst=KERNEL) / ICMP(id=5, seq=2) / b"tap")
        dev.send(frame, 0.0)
        # the kernel may ARP for us before replying: the responder answers, bounded by wait_for
        reply = wait_for(dev, eth_ipv4(is_echo_reply), answer=arp_responder(dev))
        icmp = dpkt.ethernet.Ethernet(reply).data.data
        assert icmp.data.id == 5 and icmp.data.seq == 2 and icmp.data.data == b"tap"
