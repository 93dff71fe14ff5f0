"""Host on a real TUN/TAP against the Linux kernel, each test in its own network namespace.

Runtime behaviour: kernel ping answered, a UDP echo application thread served through
host.call/host.wait, bad frames counted and dropped with the thread alive, clean shutdown
with no thread left, the interface disappearing stops the thread with the error recorded.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time

import pytest

from tests.netns import require_tool
from tests.runtime.apps import udp_echo
from ustack.runtime.host import Host
from ustack.wire.ipv4 import ip_int

pytestmark = pytest.mark.netns

IF = "rt0"
KERNEL = "198.18.0.1"
USTACK = "198.18.0.2"
ETH_P_IP = 0x0800


def net_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ustack-net-") and t.is_alive()]


@pytest.fixture(params=["tun", "tap"])
def link(request):
    return request.param


@pytest.fixture
def host(netns, link):
    h = Host.open(**{link: IF}, addr=f"{USTACK}/24", peer=f"{KERNEL}/24", seed=1)
    yield h
    h.close()


def ping(count: int = 3, size: int = 56) -> subprocess.CompletedProcess[str]:
    exe = require_tool("ping")
    return subprocess.run([exe, "-n", "-c", str(count), "-i", "0.2", "-W", "2", "-s", str(size), USTACK],
                          capture_output=True, text=True, timeout=20)


def test_kernel_ping_gets_replies(host):
    out = ping(3)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"3 packets transmitted, 3 received", out.stdout), out.stdout
    assert host.running and host.errors == 0
    assert host.stack.counters.get("icmp.echo_requests_in") >= 3 or host.stack.counters.get("icmp.in") >= 3


def test_kernel_udp_socket_talks_to_an_echo_app_thread(host):
    ready: list = []
    server = host.spawn(udp_echo, host, 7007, 20, 5.0, ready, name="echo")
    deadline = time.monotonic() + 5
    while not ready and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ready, "echo app did not bind"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3.0)
        s.bind((KERNEL, 0))
        for i in range(20):
            msg = b"datagram %d " % i + bytes(range(256)) * (i % 5)
            s.sendto(msg, (USTACK, 7007))
            data, addr = s.recvfrom(65535)
            assert data == msg and addr == (USTACK, 7007)
    assert server.result(5) == 20
    assert host.errors == 0


def test_ustack_pings_the_kernel_and_arp_resolves_both_ways(host, link):
    replies: list = []

    def arm() -> None:
        host.stack.icmp.on_echo_reply = replies.append
        host.stack.icmp.ping(ip_int(KERNEL), 0x4242, 1, b"runtime", host.now())

    host.call(arm)
    assert host.wait(lambda: bool(replies), 3.0)
    assert replies[0].ident == 0x4242 and bytes(replies[0].payload) == b"runtime"
    out = ping(1)
    assert out.returncode == 0, out.stdout + out.stderr
    if link == "tap":
        neigh = subprocess.run(["ip", "neigh", "show", USTACK, "dev", IF], capture_output=True, text=True,
                               timeout=5).stdout
        assert host.stack.mac.hex(":") in neigh.lower(), neigh
        assert host.stack.counters.get("arp.resolved") >= 1


def inject(link: str, frames: list[bytes]) -> None:
    """Have the kernel put frames on the link exactly as written (AF_PACKET)."""
    if link == "tun":
        with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM) as s:
            for f in frames:
                s.sendto(f, (IF, ETH_P_IP))
    else:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((IF, 0))
            for f in frames:
                s.send(f)


def test_bad_frames_are_counted_and_dropped_thread_survives(host, link):
    good = bytes.fromhex("450000200001000040110000") + socket.inet_aton(KERNEL) + socket.inet_aton(USTACK)
    bad_ip = [
        b"\x45" + b"\x00" * 3,  # truncated header
        good[:10] + b"\xde\xad" + good[12:] + b"\x00" * 12,  # bad header checksum
        b"\x46\x00\x00\x14" + b"\x00" * 16,  # IHL says options that are not there
        b"\x60" + b"\x00" * 39,  # IPv6
        bytes(range(256)) * 4,  # noise
    ]
    if link == "tap":
        mac = host.stack.mac
        frames = [mac + b"\x02\x00\x00\x00\x00\x09" + b"\x08\x00" + f for f in bad_ip]
        frames += [mac + b"\x02\x00\x00\x00\x00\x09" + b"\x08\x06" + b"\x00" * 10,  # short ARP
                   mac + b"\x02\x00\x00\x00\x00\x09" + b"\x12\x34" + b"\x00" * 46]  # unknown type
    else:
        frames = bad_ip
    before = sum(v for k, v in host.stack.counters.snapshot().items() if k != "stack.internal_error")
    inject(link, frames * 20)
    deadline = time.monotonic() + 3
    counted = 0
    while time.monotonic() < deadline:
        snap = host.call(host.stack.counters.snapshot)
        counted = sum(v for k, v in snap.items() if k != "stack.internal_error") - before
        if counted >= len(frames) * 20:
            break
        time.sleep(0.02)
    assert counted >= len(frames) * 20, snap
    assert host.running and host.errors == 0
    assert host.stack.counters.get("stack.internal_error") == 0
    out = ping(2)
    assert out.returncode == 0, out.stdout + out.stderr


def test_close_leaves_no_thread_and_removes_the_interface(netns, link):
    before = set(net_threads())
    h = Host.open(**{link: IF}, addr=f"{USTACK}/24", peer=f"{KERNEL}/24", seed=2)
    assert h.running and len(set(net_threads()) - before) == 1
    assert ping(1).returncode == 0
    h.close()
    h.close()
    assert not h.running
    assert set(net_threads()) <= before
    gone = subprocess.run(["ip", "link", "show", IF], capture_output=True, text=True, timeout=5)
    assert gone.returncode != 0  # a non-persistent interface goes with its last fd


def test_interface_deleted_under_the_host_stops_it_cleanly(netns, link):
    h = Host.open(**{link: IF}, addr=f"{USTACK}/24", peer=f"{KERNEL}/24", seed=3)
    try:
        waiter_result: list = []
        waiter = threading.Thread(target=lambda: waiter_result.append(h.wait(lambda: False, 30)))
        waiter.start()
        netns.ip("link", "del", IF)
        deadline = time.monotonic() + 5
        while h.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not h.running
        assert h.device_error is not None
        waiter.join(5)
        assert waiter_result == [False]  # released, not left to its 30 s timeout
    finally:
        h.close()
    assert not net_threads()


def test_pcap_and_faults_middleware(netns, tmp_path):
    pcap = tmp_path / "rt.pcap"
    h = Host.open(tun=IF, addr=f"{USTACK}/24", peer=f"{KERNEL}/24", seed=4, pcap=str(pcap),
                  faults="loss=100%,dir=rx")
    try:
        out = ping(2)
        assert out.returncode != 0  # every request dropped on the way in
        assert h.device.inner.stats["dropped"] >= 2
    finally:
        h.close()
    from ustack.drivers import read_pcap

    assert list(read_pcap(pcap)) == []  # the pcap shows what the stack saw: nothing


def test_kernel_tcp_client_and_echo_app_thread(host):
    from tests.runtime.apps import tcp_echo_server

    ready: list = []
    server = host.spawn(tcp_echo_server, host, 8007, 10.0, ready, name="tcp-echo")
    deadline = time.monotonic() + 5
    while not ready and time.monotonic() < deadline:
        time.sleep(0.005)
    data = bytes(range(256)) * 4096  # 1 MiB
    got = bytearray()
    with socket.create_connection((USTACK, 8007), timeout=10) as s:
        s.settimeout(10)
        reader = threading.Thread(target=lambda: _read_all(s, got, len(data)))
        reader.start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reader.join(20)
    assert bytes(got) == data
    assert server.result(10) == len(data)
    assert host.errors == 0 and host.running


def _read_all(s: socket.socket, out: bytearray, n: int) -> None:
    while len(out) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk


def test_trace_middleware_shows_the_ping(netns):
    import io

    out = io.StringIO()
    h = Host.open(tap=IF, addr=f"{USTACK}/24", peer=f"{KERNEL}/24", seed=5, trace=out)
    try:
        assert ping(1).returncode == 0
    finally:
        h.close()
    text = out.getvalue()
    assert re.search(r"< .*ICMP echo request", text), text
    assert re.search(r"> .*ICMP echo reply", text), text
    assert "ARP" in text


def test_open_failure_closes_the_device(netns):
    with pytest.raises(Exception):  # noqa: B017 - whatever the stack's config check raises
        Host.open(tun=IF, addr="198.18.0.2/99", peer=f"{KERNEL}/24")
    gone = subprocess.run(["ip", "link", "show", IF], capture_output=True, text=True, timeout=5)
    assert gone.returncode != 0
    assert not net_threads()


def test_open_needs_exactly_one_device():
    with pytest.raises(ValueError, match="exactly one"):
        Host.open()
    with pytest.raises(ValueError, match="exactly one"):
        Host.open(tun="a", tap="b")


def test_open_with_gateway_and_mtu_as_a_context_manager(netns, link, tmp_path):
    """`ustack.Host.open(tun=|tap=, addr, peer, gateway, mtu, pcap)` used with `with`: the MTU
    reaches both sides, off-link traffic goes to the gateway, and leaving the block closes it."""
    import ustack
    from ustack.drivers import read_pcap

    pcap = tmp_path / "gw.pcap"
    far = "198.19.0.9"  # off the /24, inside the test range: only reachable via the gateway
    with ustack.Host.open(**{link: IF}, addr=f"{USTACK}/24", peer=f"{KERNEL}/24", gateway=KERNEL,
                          mtu=1280, pcap=str(pcap), seed=6) as h:
        assert h.running and h.stack.mtu == 1280
        assert "mtu 1280" in netns.ip("link", "show", IF).stdout
        out = ping(2, size=2000)  # fragmented both ways at 1280
        assert out.returncode == 0 and "2008 bytes from" in out.stdout, out.stdout + out.stderr
        u = h.call(h.stack.udp.open)
        h.call(lambda: u.sendto(b"via the gateway", ip_int(far), 9, h.now()))
        kernel_mac = h.device.mac if link == "tap" else None  # TapDevice.mac: the kernel side's

        # on a TAP the datagram waits for the gateway's ARP reply, then leaves
        assert h.wait(lambda: h.stack.arp is None or not h.stack.arp.pending, 2.0)
        assert h.stack.counters.get("udp.out") == 1
    assert h.closed and not h.running and not net_threads()
    assert subprocess.run(["ip", "link", "show", IF], capture_output=True, timeout=5).returncode != 0
    frames = [f for _, f, _ in read_pcap(pcap)]
    ours = []
    for f in frames:
        if link == "tap":
            if f[12:14] != b"\x08\x00":
                continue
            eth_dst, f = f[:6], f[14:]
        else:
            eth_dst = None
        if f[12:16] == socket.inet_aton(USTACK):
            assert len(f) <= 1280
            if f[16:20] == socket.inet_aton(far):
                ours.append(eth_dst)
    assert len(ours) == 1, "the off-link datagram was not sent"
    if link == "tap":
        assert ours[0] == kernel_mac  # framed for the gateway's MAC, not broadcast


def test_kernel_port_unreachable_is_recorded_on_the_ustack_socket(host):
    """ustack -> kernel UDP to a closed port: the kernel's ICMP port unreachable is matched by
    its quote to the connected socket that sent the datagram, and to no other."""
    from ustack.core.reasons import Reason

    def setup():
        a, b = host.stack.udp.open(), host.stack.udp.open()
        a.connect(ip_int(KERNEL), 9, host.now())  # discard port: nobody listens in the netns
        b.connect(ip_int(KERNEL), 10, host.now())
        a.send(b"anyone?", host.now())
        return a, b

    a, b = host.call(setup)
    assert host.wait(lambda: a.error is not None, 3.0)
    assert a.error is Reason.PORT_UNREACH and b.error is None
    assert host.stack.counters.get("icmp.in_type3_code3") >= 1
