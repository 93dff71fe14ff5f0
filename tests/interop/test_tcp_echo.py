"""TCP interop, echo both ways over TUN and TAP: ustack client <-> kernel echo server, kernel
client <-> ustack echo service; plus half-close and refusal seen from both sides."""

import socket

import pytest

from tests.interop.peer import (
    KERNEL_IP,
    USTACK_IP,
    KernelServer,
    UstackError,
    UstackStream,
    echo_handler,
    pattern,
    sha256,
)

pytestmark = pytest.mark.netns


def test_ustack_client_against_kernel_echo_server(hosts, link):
    host = hosts.open(link)
    srv = KernelServer(7007, echo_handler)
    try:
        s = UstackStream.connect(host, KERNEL_IP, 7007)
        data = pattern(1_000_000, seed=1)
        got = bytearray()
        for i in range(0, len(data), 100_000):  # interleave so neither side's buffer must hold it all
            s.sendall(data[i:i + 100_000])
            got += s.recv_exact(100_000, timeout=20)
        s.shutdown_write()
        assert s.recv(timeout=5) == b""  # the kernel closes after our FIN
        s.close()
        assert sha256(bytes(got)) == sha256(data)
    finally:
        srv.close()
    assert srv.errors == []


def test_kernel_client_against_ustack_echo_service(hosts, link):
    from ustack.cli.services import ServiceSet

    host = hosts.open(link)
    services = ServiceSet(host)
    services.tcp("echo", 7)
    try:
        with socket.create_connection((USTACK_IP, 7), timeout=5) as k:
            data = pattern(1_000_000, seed=2)
            got = bytearray()
            for i in range(0, len(data), 50_000):
                k.sendall(data[i:i + 50_000])
                while len(got) < i + 50_000:
                    chunk = k.recv(1 << 16)
                    assert chunk, "ustack closed early"
                    got += chunk
            k.shutdown(socket.SHUT_WR)
            assert k.recv(10) == b""
        assert sha256(bytes(got)) == sha256(data)
    finally:
        services.stop()


def test_ustack_connect_to_closed_kernel_port_is_refused(hosts, link):
    host = hosts.open(link)
    with pytest.raises(UstackError) as e:
        UstackStream.connect(host, KERNEL_IP, 9, timeout=8)  # Windows-style retries take ~1 s
    assert e.value.reason == "refused"


def test_kernel_connect_to_closed_ustack_port_is_refused(hosts, link):
    hosts.open(link)
    with socket.socket() as k:
        k.settimeout(5)
        with pytest.raises(ConnectionRefusedError):
            k.connect((USTACK_IP, 9))


def test_kernel_half_close_ustack_keeps_sending(hosts, link):
    """Kernel sends a request and shuts down writing; ustack answers after reading EOF."""
    host = hosts.open(link)

    def listen():
        s = host.stack.tcp.open()
        s.bind(0, 6000)
        s.listen(4)
        return s
    lsock = host.call(listen)
    k = socket.create_connection((USTACK_IP, 6000), timeout=5)
    try:
        assert host.wait(lambda: lsock.accept_pending, 5)
        conn = UstackStream(host, host.call(lsock.accept))
        k.sendall(b"request")
        k.shutdown(socket.SHUT_WR)
        assert conn.recv_to_eof(timeout=5) == b"request"
        reply = pattern(200_000, seed=3)
        conn.sendall(reply)
        conn.close()
        got = bytearray()
        while chunk := k.recv(1 << 16):
            got += chunk
        assert bytes(got) == reply
    finally:
        k.close()
