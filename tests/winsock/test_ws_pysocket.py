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
    with pytest.raises(ConnectionRefusedError) as ei:  # with a timeout: select's exceptfds, SO_ERROR
        us.create_connection(net.me, (PEER, 9301), timeout=5)
    assert ei.value.winerror == WSAECONNREFUSED
    d = us.socket(net.me, us.AF_INET, us.SOCK_STREAM)
    d.settimeout(1.0)
    t0 = net.me.now()
    with pytest.raises(TimeoutError):
        d.connect((SILENT, 80))
    assert abs(net.me.now() - t0 - 1.0) < 0.01


def test_pysocket_accept_timeout_and_nonblocking_connect(net) -> None:
    """accept honours settimeout; a nonblocking connect raises BlockingIOError and connect_ex returns
    10035."""
    srv = us.socket(net.peer)
    srv.bind(("", 9400))
    srv.listen(5)
    srv.settimeout(0.75)
    t0 = net.peer.now()
    with pytest.raises(TimeoutError):
        srv.accept()
    assert abs(net.peer.now() - t0 - 0.75) < 0.01
    c = us.socket(net.me)
    c.setblocking(False)
    assert c.connect_ex((PEER, 9400)) == WSAEWOULDBLOCK
    srv.settimeout(5)
    conn, addr = srv.accept()
    assert conn.gettimeout() is None and addr == c.getsockname()
    d = us.socket(net.me)
    d.setblocking(False)
    with pytest.raises(BlockingIOError):
        d.connect((PEER, 9400))
    conn.close()
    srv.close()


def test_pysocket_options_and_recv_into(net) -> None:
    """setsockopt/getsockopt with ints and bytes, recv_into, shutdown and the closed-socket error."""
    srv = us.socket(net.peer)
    srv.setsockopt(us.SOL_SOCKET, us.SO_REUSEADDR, 1)
    assert srv.getsockopt(us.SOL_SOCKET, us.SO_REUSEADDR) == 1
    srv.bind((PEER, 9500))
    srv.listen()

    def serve() -> None:
        conn, _ = srv.accept()
        conn.sendall(b"0123456789")
        conn.shutdown(us.SHUT_WR)
        assert conn.recv(10) == b""
        conn.close()

    task = net.sim.spawn(serve)
    c = us.create_connection(net.me, (PEER, 9500), timeout=5, source_address=(ME, 9501))
    assert c.getsockname() == (ME, 9501)
    c.setsockopt(us.IPPROTO_TCP, us.TCP_NODELAY, 1)
    assert c.getsockopt(us.IPPROTO_TCP, us.TCP_NODELAY) == 1
    assert c.getsockopt(us.SOL_SOCKET, us.SO_TYPE) == us.SOCK_STREAM
    assert len(c.getsockopt(us.SOL_SOCKET, us.SO_LINGER, 4)) == 4
    buf = bytearray(4)
    assert c.recv_into(buf) == 4 and buf == b"0123"
    assert c.recv(100, us.MSG_WAITALL) == b"456789"
    c.shutdown(us.SHUT_RDWR)
    task.join()
    c.close()
    c.close()  # idempotent, as in Python
    with pytest.raises(OSError):
        c.send(b"x")
    assert "closed" in repr(c)
