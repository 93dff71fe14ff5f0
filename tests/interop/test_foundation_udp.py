"""Foundation "done when", over TUN and TAP: UDP between kernel and ustack sockets (the kernel ->
ustack echo case is in tests/runtime/test_host_tun.py), ECONNREFUSED from ustack's ICMP port
unreachable, and a 4000-byte datagram fragmented and reassembled both ways (seen in the pcap)."""

import socket

import pytest

from tests.interop.peer import KERNEL_IP, USTACK_IP, ip_int, pattern

pytestmark = pytest.mark.netns

ECHO = 7


def start_udp_echo(host, port=ECHO):
    from ustack.cli.services import ServiceSet

    services = ServiceSet(host)
    services.udp_echo(port)
    return services


def kernel_udp(timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((KERNEL_IP, 0))
    s.settimeout(timeout)
    return s


def test_ustack_udp_socket_talks_to_kernel_socket(hosts, link):
    host = hosts.open(link)
    with kernel_udp() as k:
        kport = k.getsockname()[1]
        u = host.call(host.stack.udp.open)
        host.call(lambda: u.bind(ip_int(USTACK_IP), 5000))
        host.call(lambda: u.sendto(b"from ustack", ip_int(KERNEL_IP), kport, host.now()))
        data, addr = k.recvfrom(2048)
        assert (data, addr) == (b"from ustack", (USTACK_IP, 5000))
        k.sendto(b"from kernel", (USTACK_IP, 5000))
        assert host.wait(lambda: u.readable, 2.0)
        got = host.call(u.recvfrom)
        assert got is not None
        data, src, sport = got
        assert (bytes(data), src, sport) == (b"from kernel", ip_int(KERNEL_IP), kport)


def test_udp_to_closed_port_gives_kernel_econnrefused(hosts, link):
    host = hosts.open(link)
    with kernel_udp() as s:
        s.connect((USTACK_IP, 9999))
        s.send(b"anyone?")
        with pytest.raises(ConnectionRefusedError):
            s.recv(100)
    assert host.call(lambda: host.stack.counters.get("udp.no_port")) >= 1, \
        host.call(host.stack.counters.snapshot)


def test_4000_byte_datagram_fragmented_and_reassembled_both_ways(hosts, link, tmp_path):
    from ustack.drivers import read_pcap

    pcap = tmp_path / "frag.pcap"
    host = hosts.open(link, pcap=str(pcap))
    services = start_udp_echo(host)
    try:
        msg = pattern(4000, seed=4)
        with kernel_udp() as s:
            s.sendto(msg, (USTACK_IP, ECHO))
            data, _ = s.recvfrom(65536)
        assert data == msg
    finally:
        services.stop()
    host.close()
    frags = {"in": 0, "out": 0}
    for _ts, frame, _lt in read_pcap(str(pcap)):
        ip = frame[14:] if link == "tap" else frame
        if link == "tap" and frame[12:14] != b"\x08\x00":
            continue
        if len(ip) < 20 or ip[9] != 17:
            continue
        flags_off = int.from_bytes(ip[6:8], "big")
        if flags_off & 0x3FFF:  # MF or an offset: a fragment
            direction = "out" if ip[12:16] == socket.inet_aton(USTACK_IP) else "in"
            frags[direction] += 1
    assert frags["in"] >= 3, f"kernel->ustack datagram was not fragmented: {frags}"
    assert frags["out"] >= 3, f"ustack->kernel datagram was not fragmented: {frags}"
