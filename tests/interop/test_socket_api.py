"""The Pythonic socket layer (`ustack.socket`, Winsock semantics) against the real kernel over
TUN and TAP: HTTP from `python3 -m http.server`, a ustack server for a kernel client, and the
Winsock error codes the kernel's answers must produce (refused, reset by ICMP, timed out)."""

import hashlib
import socket
import subprocess
import sys
import threading

import pytest

from tests.interop.peer import KERNEL_IP, USTACK_IP, pattern, stop_process
from tests.interop.test_tcp_http import _wait_listening

pytestmark = pytest.mark.netns


def test_http_get_from_kernel_server_with_ustack_socket(hosts, link, tmp_path):
    from ustack import socket as us

    (tmp_path / "f.bin").write_bytes(content := pattern(500_000, seed=21))
    host = hosts.open(link)
    srv = subprocess.Popen([sys.executable, "-m", "http.server", "8001", "--bind", KERNEL_IP,
                            "--directory", str(tmp_path)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_listening(KERNEL_IP, 8001)
        with us.create_connection(host, (KERNEL_IP, 8001), timeout=10) as s:
            assert s.getpeername() == (KERNEL_IP, 8001)
            assert s.getsockname()[0] == USTACK_IP and 49152 <= s.getsockname()[1] <= 65535
            s.sendall(b"GET /f.bin HTTP/1.0\r\n\r\n")
            raw = bytearray()
            while chunk := s.recv(65536):
                raw += chunk
        head, _, body = bytes(raw).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200")
        assert hashlib.sha256(body).digest() == hashlib.sha256(content).digest()
    finally:
        stop_process(srv)


def test_kernel_client_against_ustack_socket_server(hosts, link):
    from ustack import socket as us

    host = hosts.open(link)
    with us.socket(host, us.AF_INET, us.SOCK_STREAM) as ls:
        ls.bind(("0.0.0.0", 8300))
        ls.listen(5)
        ls.settimeout(5)
        reply = pattern(300_000, seed=22)
        out = {}

        def client():
            with socket.create_connection((USTACK_IP, 8300), timeout=5) as k:
                k.sendall(b"ping")
                got = bytearray()
                while chunk := k.recv(65536):
                    got += chunk
                out["got"] = bytes(got)
        t = threading.Thread(target=client, daemon=True)
        t.start()
        conn, addr = ls.accept()
        with conn:
            assert addr[0] == KERNEL_IP
            conn.settimeout(5)
            assert conn.recv(4, us.MSG_WAITALL) == b"ping"
            conn.sendall(reply)
        t.join(10)
    assert out.get("got") == reply


def test_connect_to_closed_kernel_port_raises_wsaeconnrefused(hosts, link):
    from ustack import socket as us

    host = hosts.open(link)
    with us.socket(host, us.AF_INET, us.SOCK_STREAM) as s:
        s.settimeout(10)
        with pytest.raises(ConnectionRefusedError) as e:
            s.connect((KERNEL_IP, 9))
    assert e.value.winerror == 10061  # WSAECONNREFUSED


def test_udp_to_closed_kernel_port_then_recv_raises_wsaeconnreset(hosts, link):
    """Winsock item 56: ICMP port unreachable -> the next recv fails with WSAECONNRESET."""
    from ustack import socket as us

    host = hosts.open(link)
    with us.socket(host, us.AF_INET, us.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.connect((KERNEL_IP, 9999))
        s.send(b"anyone?")
        with pytest.raises(ConnectionResetError) as e:
            s.recv(100)
    assert e.value.winerror == 10054


def test_udp_exchange_with_kernel_socket(hosts, link):
    from ustack import socket as us

    host = hosts.open(link)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as k, \
            us.socket(host, us.AF_INET, us.SOCK_DGRAM) as u:
        k.bind((KERNEL_IP, 0))
        k.settimeout(3)
        u.bind(("0.0.0.0", 5300))
        u.settimeout(3)
        u.sendto(b"4000 bytes follow", (KERNEL_IP, k.getsockname()[1]))
        data, addr = k.recvfrom(100)
        assert (data, addr) == (b"4000 bytes follow", (USTACK_IP, 5300))
        big = pattern(4000, seed=23)
        k.sendto(big, addr)
        assert u.recvfrom(8192) == (big, k.getsockname())


def test_recv_timeout_raises_timeout_error(hosts, link):
    from ustack import socket as us

    host = hosts.open(link)
    with socket.socket() as ks:
        ks.bind((KERNEL_IP, 8302))
        ks.listen(1)
        with us.create_connection(host, (KERNEL_IP, 8302), timeout=5) as s:
            peer, _ = ks.accept()
            with peer:
                s.settimeout(0.3)
                with pytest.raises(TimeoutError) as e:
                    s.recv(10)  # the kernel side never writes
                assert e.value.winerror == 10060  # WSAETIMEDOUT
