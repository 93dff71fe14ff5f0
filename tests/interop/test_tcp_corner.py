"""TCP corner cases against the kernel over TUN and TAP: simultaneous open and simultaneous close
(made deterministic with a 200 ms delay on ustack's link so the two SYNs / FINs cross), and
transfers at MTU 576 and 9000 with every segment within the MTU (checked in the pcap)."""

import socket
import threading
import time

import pytest

from tests.interop.peer import KERNEL_IP, USTACK_IP, UstackStream, ip_int, pattern

pytestmark = pytest.mark.netns

DELAY = {"delay_s": 0.2, "seed": 5}


def tcp_flags_seen(pcap, link):
    """[(direction, flags)] of every TCP segment in ustack's pcap ("out" = sent by ustack)."""
    from ustack.drivers import read_pcap

    out = []
    for _ts, frame, _lt in read_pcap(str(pcap)):
        ip = frame[14:] if link == "tap" else frame
        if (link == "tap" and frame[12:14] != b"\x08\x00") or ip[9] != 6:
            continue
        ihl = (ip[0] & 0x0F) * 4
        out.append(("out" if ip[12:16] == socket.inet_aton(USTACK_IP) else "in", ip[ihl + 13]))
    return out


def test_simultaneous_open_with_the_kernel(hosts, link, tmp_path):
    from ustack.tcp import State

    pcap = tmp_path / "simopen.pcap"
    host = hosts.open(link, faults=DELAY, pcap=str(pcap))

    def start():
        s = host.stack.tcp.open()
        s.bind(ip_int(USTACK_IP), 6100)
        s.connect(ip_int(KERNEL_IP), 6200, host.now())
        return s
    us = host.call(start)  # its SYN sits in the 200 ms delay ...
    k = socket.socket()
    k.bind((KERNEL_IP, 6200))
    k.settimeout(5)
    k.connect((USTACK_IP, 6100))  # ... while the kernel's SYN crosses it: both in SYN-SENT
    try:
        assert host.wait(lambda: us.state == State.ESTABLISHED or us.error is not None, 5)
        assert host.call(lambda: us.error) is None
        stream = UstackStream(host, us)
        stream.sendall(b"from ustack")
        assert k.recv(100) == b"from ustack"
        k.sendall(b"from kernel")
        assert stream.recv_exact(11, timeout=5) == b"from kernel"
    finally:
        k.close()
    host.close()
    flags = tcp_flags_seen(pcap, link)
    assert flags[:2] == [("out", 0x02), ("in", 0x02)], flags  # two bare SYNs crossed
    assert ("out", 0x12) in flags and ("in", 0x12) in flags, flags  # each answered with SYN-ACK


def test_simultaneous_close_with_the_kernel(hosts, link, tmp_path):
    from ustack.tcp import State

    pcap = tmp_path / "simclose.pcap"
    host = hosts.open(link, faults=DELAY, pcap=str(pcap))
    ls = socket.socket()
    ls.bind((KERNEL_IP, 6300))
    ls.listen(1)
    ls.settimeout(5)
    stream = UstackStream.connect(host, KERNEL_IP, 6300, timeout=5)
    k, _ = ls.accept()
    ls.close()
    try:
        stream.sendall(b"x")
        assert k.recv(1) == b"x"
        time.sleep(0.5)  # quiet link: nothing in flight
        host.call(lambda: stream.sock.shutdown(1, host.now()))  # ustack's FIN waits 200 ms ...
        k.shutdown(socket.SHUT_WR)  # ... while the kernel's crosses it
        k.settimeout(5)
        assert k.recv(10) == b""
        assert stream.recv(timeout=5) == b""
        # FIN_WAIT_1 -> CLOSING -> TIME_WAIT: both sides closed first, both hold TIME-WAIT
        assert host.wait(lambda: stream.sock.state == State.TIME_WAIT, 5), \
            host.call(lambda: stream.sock.state)
        seen = host.call(lambda: [c.state.name for c in host.stack.tcp.conns.values()])
        assert seen == ["TIME_WAIT"], seen
    finally:
        k.close()
        stream.close()
    host.close()
    fins = [(d, f) for d, f in tcp_flags_seen(pcap, link) if f & 0x01]
    assert fins[:2] == [("out", 0x11), ("in", 0x11)], fins  # ours left before theirs arrived


@pytest.mark.parametrize("mtu", [576, 9000])
def test_transfer_at_other_mtus_stays_within_the_mtu(hosts, link, mtu, tmp_path):
    from ustack.drivers import read_pcap

    pcap = tmp_path / "mtu.pcap"
    host = hosts.open(link, mtu=mtu, pcap=str(pcap))
    data = pattern(1_000_000, seed=mtu)
    ls = socket.socket()
    ls.bind((KERNEL_IP, 6400))
    ls.listen(1)
    ls.settimeout(5)
    got = bytearray()

    def serve():
        c, _ = ls.accept()
        with c:
            c.settimeout(10)
            while chunk := c.recv(1 << 16):
                got.extend(chunk)
            c.sendall(bytes(got))
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    s = UstackStream.connect(host, KERNEL_IP, 6400, timeout=5)
    s.sendall(data)
    s.shutdown_write()
    back = s.recv_to_eof(timeout=30)
    s.close()
    t.join(10)
    ls.close()
    assert bytes(got) == data and back == data
    host.close()
    sizes = {"in": 0, "out": 0}
    for _ts, frame, _lt in read_pcap(str(pcap)):
        ip = frame[14:] if link == "tap" else frame
        if link == "tap" and frame[12:14] != b"\x08\x00":
            continue
        d = "out" if ip[12:16] == socket.inet_aton(USTACK_IP) else "in"
        sizes[d] = max(sizes[d], int.from_bytes(ip[2:4], "big"))
    assert sizes["out"] == mtu, sizes  # ustack fills its MTU ...
    assert sizes["in"] == mtu, sizes  # ... and the kernel used the MSS ustack announced
