"""TCP and UDP over IPv6 against the Linux kernel, over TUN and TAP, in the test's private netns:
kernel TCP client to a ustack listener and ustack to a kernel listener (data both ways, hashed),
UDP echo both ways, a refused TCP port both ways and ICMPv6 port unreachable for UDP. The kernel
side is 2001:2::1/64, ustack 2001:2::2/64 (RFC 5180 benchmarking addresses only)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from tests.interop.peer import IFNAME, echo_handler, pattern, sha256
from tests.invariants import assert_no_internal_error

pytestmark = pytest.mark.netns

KERNEL6 = "2001:2::1"
USTACK6 = "2001:2::2"


def open_host6(link: str, mtu: int = 1500, seed: int = 1):
    """A ustack Host on a fresh TUN/TAP with an IPv4 and an IPv6 address, the kernel side
    configured for both (IPv6 left on, its address without DAD)."""
    import ustack.drivers as drivers
    from ustack.runtime.host import Host, build_stack

    dev_cls = drivers.TunDevice if link == "tun" else drivers.TapDevice
    dev = dev_cls(IFNAME, mtu=mtu)
    try:
        drivers.kernel_side_up(dev.name, "198.18.0.1/24", mtu, disable_ipv6=False)
        subprocess.run(["ip", "-6", "addr", "add", f"{KERNEL6}/64", "dev", dev.name, "nodad"],
                       check=True, timeout=10)
        drivers.set_sysctl("net.ipv6.icmp.ratelimit", "0")  # every ICMPv6 error a case expects
        stack = build_stack(addr="198.18.0.2/24", gateway=None, mtu=mtu, medium=dev.medium, mac=None,
                            seed=seed, addr6=f"{USTACK6}/64", dad_transmits=0)
    except BaseException:
        dev.close()
        raise
    return Host(stack, dev, time.monotonic, name=dev.name, start=True)


@pytest.fixture
def host6(request, netns, link):  # noqa: ARG001 - netns: the test's private namespace
    h = open_host6(link)
    try:
        yield h
        assert_no_internal_error(h.stack)
    finally:
        h.close()


def ip6(text: str) -> int:
    from ustack.wire.ipv6 import ip6_int

    return ip6_int(text)


def ustack_connect6(host, addr: str, port: int, timeout: float = 10.0):
    from ustack.tcp import State

    s = host.call(lambda: host.stack.tcp.open(family=6))
    host.call(lambda: s.connect(ip6(addr), port, host.now()))
    assert host.wait(lambda: s.state is State.ESTABLISHED or s.error is not None, timeout)
    return s


def recv_exact(host, s, n: int, timeout: float = 20.0) -> bytes:
    out = bytearray()
    end = time.monotonic() + timeout
    while len(out) < n:
        assert time.monotonic() < end, f"{len(out)}/{n} bytes"
        host.wait(lambda: s.readable_bytes > 0 or s.error is not None, 1.0)
        assert host.call(lambda: s.error) is None
        want = n - len(out)
        out += host.call(lambda w=want: s.recv(w))
    return bytes(out)


def send_all(host, s, data: bytes, timeout: float = 20.0) -> None:
    view = memoryview(data)
    end = time.monotonic() + timeout
    while view:
        assert time.monotonic() < end, f"{len(view)} bytes not sent"
        host.wait(lambda: s.writable_bytes > 0 or s.error is not None, 1.0)
        n = host.call(lambda v=view: s.send(v, host.now()))
        view = view[n:]


def test_ustack_client_to_kernel_tcp_listener(host6):
    lsock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    lsock.bind((KERNEL6, 7007))
    lsock.listen(4)
    lsock.settimeout(10)
    done: list = []

    def serve() -> None:
        c, peer = lsock.accept()
        with c:
            c.settimeout(20)
            done.append(peer[0])
            echo_handler(c)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        s = ustack_connect6(host6, KERNEL6, 7007)
        assert host6.call(lambda: s.error) is None
        assert host6.call(lambda: s.remote) == (ip6(KERNEL6), 7007)
        assert host6.call(lambda: s.conn.snd.mss) == 1500 - 60 - 12  # the kernel's MSS for IPv6
        data = pattern(300_000, seed=6)
        got = bytearray()
        for i in range(0, len(data), 50_000):
            send_all(host6, s, data[i:i + 50_000])
            got += recv_exact(host6, s, 50_000)
        assert sha256(bytes(got)) == sha256(data)
        host6.call(lambda: s.close(host6.now()))
        t.join(10)
        assert done == [USTACK6]
    finally:
        lsock.close()


def test_kernel_client_to_ustack_tcp_listener(host6):
    lst = host6.call(lambda: host6.stack.tcp.open(family=6))
    host6.call(lambda: (lst.bind(0, 8080), lst.listen(4)))
    data = pattern(200_000, seed=7)
    result: dict = {}

    def client() -> None:
        with socket.create_connection((USTACK6, 8080), timeout=10) as k:
            result["local"] = k.getsockname()[0]
            k.sendall(data)
            k.shutdown(socket.SHUT_WR)
            got = bytearray()
            while chunk := k.recv(1 << 16):
                got += chunk
            result["got"] = bytes(got)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    assert host6.wait(lambda: lst.accept_pending > 0, 10)
    srv = host6.call(lst.accept)
    assert host6.call(lambda: srv.remote[0]) == ip6(KERNEL6)
    assert host6.call(lambda: srv.local) == (ip6(USTACK6), 8080)
    got = bytearray()
    end = time.monotonic() + 20
    while True:
        assert time.monotonic() < end
        host6.wait(lambda: srv.readable_bytes > 0 or srv.at_eof, 1.0)
        chunk = host6.call(lambda: srv.recv(1 << 20))
        if not chunk and host6.call(lambda: srv.at_eof):
            break
        got += chunk
    assert bytes(got) == data
    send_all(host6, srv, data[::-1])
    host6.call(lambda: srv.close(host6.now()))
    t.join(20)
    assert result.get("got") == data[::-1] and result["local"] == KERNEL6


def test_refused_tcp_port_both_ways(host6):
    from ustack.core import Reason

    s = ustack_connect6(host6, KERNEL6, 7999)
    assert host6.call(lambda: s.error) is Reason.REFUSED
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((USTACK6, 7999), timeout=5)
    assert host6.call(lambda: host6.stack.counters.get("tcp.no_port")) >= 1


def test_udp_echo_both_ways_and_port_unreachable(host6):
    from ustack.core import Reason

    k = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    k.bind((KERNEL6, 5353))
    k.settimeout(10)
    try:
        u = host6.call(lambda: host6.stack.udp.open(family=6))
        host6.call(lambda: u.bind(0, 5354))
        # ustack -> kernel, and the kernel answers
        host6.call(lambda: u.sendto(b"from ustack", ip6(KERNEL6), 5353, host6.now()))
        data, peer = k.recvfrom(100)
        assert data == b"from ustack" and peer[0] == USTACK6 and peer[1] == 5354
        k.sendto(b"from kernel", (USTACK6, 5354))
        assert host6.wait(lambda: u.readable, 10), host6.call(host6.stack.counters.snapshot)
        assert host6.call(u.recvfrom) == (b"from kernel", ip6(KERNEL6), 5353)
        # a closed kernel port: ICMPv6 port unreachable reaches the connected socket
        host6.call(lambda: u.connect(ip6(KERNEL6), 5399, host6.now()))
        host6.call(lambda: u.send(b"nobody home", host6.now()))
        assert host6.wait(lambda: u.error is not None, 10), host6.call(host6.stack.counters.snapshot)
        assert host6.call(lambda: u.error) is Reason.PORT_UNREACH
    finally:
        k.close()
