"""The Pythonic layer `ustack.socket`: Python's socket API, Winsock semantics and codes."""

from __future__ import annotations

import errno

import pytest

from ustack import socket as us
from ustack.winsock import WSAECONNREFUSED, WSAEINVAL, WSAENOTCONN, WSAETIMEDOUT, WSAEWOULDBLOCK, WinsockError

from .wsutil import ME, PEER, SILENT


def test_pysocket_udp_roundtrip_and_names(net) -> None:
    """UDP through ustack.socket: bind, sendto, recvfrom, getsockname with ("a.b.c.d", port) tuples."""
    srv = us.socket(net.peer, us.AF_INET, us.SOCK_DGRAM)
    with srv, us.socket(net.me, us.AF_INET, us.SOCK_DGRAM) as c:
        srv.bind((PEER, 9100))
        assert srv.getsockname() == (PEER, 9100)
        assert c.sendto(b"hi", (PEER, 9100)) == 2
        data, addr = srv.recvfrom(100)
        assert data == b"hi" and addr == (ME, c.getsockname()[1])
        srv.sendto(b"yo", addr)
        assert c.recvfrom(100) == (b"yo", (PEER, 9100))
    assert srv.fileno() == -1


def test_pysocket_error_carries_winerror_and_errno(net) -> None:
    """WinsockError is an OSError with .winerror (WSA code), .wsa_name and the closest POSIX errno."""
    c = us.socket(net.me, us.AF_INET, us.SOCK_DGRAM)
    with pytest.raises(WinsockError) as ei:
        c.send(b"x")
    e = ei.value
    assert isinstance(e, OSError)
    assert e.winerror == WSAENOTCONN and e.wsa_name == "WSAENOTCONN" and e.errno == errno.ENOTCONN
    assert "WSAENOTCONN" in str(e)
    with pytest.raises(OSError) as ei:
        us.socket(net.me, us.AF_INET, us.SOCK_STREAM).listen(1)  # ≠L: no implicit bind
    assert ei.value.winerror == WSAEINVAL


def test_pysocket_udp_timeout_and_nonblocking(net) -> None:
    """settimeout(t): recvfrom raises TimeoutError after t (virtual) seconds; setblocking(False):
    BlockingIOError/WSAEWOULDBLOCK."""
    c = us.socket(net.me, us.AF_INET, us.SOCK_DGRAM)
    c.bind(("", 0))
    c.settimeout(2.5)
    t0 = net.me.now()
    with pytest.raises(TimeoutError) as ei:
        c.recvfrom(10)
    assert ei.value.winerror == WSAETIMEDOUT
    assert abs(net.me.now() - t0 - 2.5) < 0.01
    c.setblocking(False)
    assert c.getblocking() is False and c.gettimeout() == 0.0
    with pytest.raises(BlockingIOError) as ei:
        c.recv(10)
    assert ei.value.winerror == WSAEWOULDBLOCK


def test_pysocket_tcp_echo(net) -> None:
    """TCP through ustack.socket: listen/accept/connect/sendall/recv/shutdown, EOF as b''."""
    srv = us.socket(net.peer, us.AF_INET, us.SOCK_STREAM)
    srv.bind((PEER, 9200))
    srv.listen()

    def serve() -> bytes:
        conn, addr = srv.accept()
        assert addr[0] == ME
        got = b""
        while chunk := conn.recv(65536):
            got += chunk
        conn.sendall(got[::-1])
        conn.close()
        return got

    task = net.sim.spawn(serve)
    payload = bytes(range(256)) * 400
    with us.create_connection(net.me, (PEER, 9200), timeout=10) as c:
        assert c.getpeername() == (PEER, 9200)
        c.sendall(payload)
        c.shutdown(us.SHUT_WR)
        back = b""
        while chunk := c.recv(65536):
            back += chunk
    assert task.result() == payload
    assert back == payload[::-1]


def test_pysocket_tcp_refused_and_timeout(net) -> None:
    """connect raises ConnectionRefusedError (WSAECONNREFUSED), connect_ex returns the WSA code, a silent
    peer times out."""
    c = us.socket(net.me, us.AF_INET, us.SOCK_STREAM)
    with pytest.raises(ConnectionRefusedError) as ei:
        c.connect((PEER, 9300))
    assert ei.value.winerror == WSAECONNREFUSED and ei.value.errno == errno.ECONNREFUSED
    assert c.connect_ex((PEER, 9300)) == WSAECONNREFUSED
    d = us.socket(net.me, us.AF_INET, us.SOCK_STREAM)
    d.settimeout(1.0)
    t0 = net.me.now()
    with pytest.raises(TimeoutError):
        d.connect((SILENT, 80))
    assert abs(net.me.now() - t0 - 1.0) < 0.01
