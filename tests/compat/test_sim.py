"""CPython's socket API on ustack, in the Simulator (virtual time): the Linux behaviour a program
relies on — errnos and exception classes, timeouts, nonblocking mode, readiness of the real
file descriptor, makefile, sendfile, shutdown, options, name lookup, UDP, TLS, asyncio."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import select
import selectors
import socket
import ssl
import time

import pytest

from ustack.compat import names, patched


def _fd_ready(sock) -> tuple[bool, bool]:
    r, w, _ = select.select([sock.fileno()], [sock.fileno()], [], 0)
    return bool(r), bool(w)


def _listener(mod, port=80, backlog=8):
    s = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    s.setsockopt(mod.SOL_SOCKET, mod.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(backlog)
    return s


def _echo_server(env, port=80, conns=1):
    srv = _listener(env.sb, port)

    def serve():
        for _ in range(conns):
            c, _ = srv.accept()
            with c:
                while data := c.recv(65536):
                    c.sendall(data)
        srv.close()

    return env.sim.spawn(serve)


def test_connect_errors_are_linux_errors_with_the_winsock_code(sim):
    with pytest.raises(ConnectionRefusedError) as ei:
        sim.sa.create_connection(("198.18.0.1", 81), timeout=5)
    e = ei.value
    assert (e.errno, str(e), e.winerror, e.wsa_name) == (errno.ECONNREFUSED, "[Errno 111] Connection refused",
                                                         10061, "WSAECONNREFUSED")
    assert sim.sim.now < 0.5  # Linux: the first RST refuses (no Windows SYN retries)
    s = sim.sa.socket()
    s.settimeout(2.0)
    t0 = sim.sim.now
    with pytest.raises(TimeoutError) as ei:
        s.connect(("198.18.0.99", 80))  # nobody answers
    assert ei.value.args == ("timed out",) and ei.value.errno is None  # as CPython's socket timeout
    assert sim.sim.now - t0 == pytest.approx(2.0, abs=0.01)
    assert s.connect_ex(("198.18.0.1", 81)) in (errno.ECONNREFUSED, errno.EALREADY)
    s.close()
    with pytest.raises(OSError) as ei:
        s.recv(1)
    assert ei.value.errno == errno.EBADF


def test_blocking_echo_makefile_shutdown_and_eof(sim):
    task = _echo_server(sim)
    with sim.sa.create_connection(("198.18.0.1", 80)) as c:
        assert c.getpeername() == ("198.18.0.1", 80)
        assert c.getsockname()[0] == "198.18.0.2"
        f = c.makefile("rwb")
        f.write(b"line one\nline two\n")
        f.flush()
        assert f.readline() == b"line one\n" and f.readline() == b"line two\n"
        f.close()
        data = bytes(range(256)) * 2000
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := c.recv(100_000):
            got += chunk
        assert bytes(got) == data
        assert c.recv(10) == b""  # EOF stays EOF
    task.result()


def test_timeouts_and_nonblocking_mode(sim):
    srv = _listener(sim.sb)
    c = sim.sa.create_connection(("198.18.0.1", 80), timeout=1.5)
    assert c.gettimeout() == 1.5 and c.getblocking()
    t0 = sim.sim.now
    with pytest.raises(TimeoutError):
        c.recv(10)
    assert sim.sim.now - t0 == pytest.approx(1.5, abs=0.01)
    c.setblocking(False)
    assert c.gettimeout() == 0.0 and not c.getblocking()
    with pytest.raises(BlockingIOError) as ei:
        c.recv(10)
    assert ei.value.errno == errno.EAGAIN
    c.settimeout(None)
    with pytest.raises(BlockingIOError):
        c.recv(10, socket.MSG_DONTWAIT)  # one nonblocking call on a blocking socket
    with pytest.raises(ValueError):
        c.settimeout(-1)
    srv.setblocking(False)
    conn, _ = srv.accept()
    assert conn.gettimeout() is None  # CPython: an accepted socket gets the default timeout
    srv.setblocking(True)
    srv.settimeout(0.5)
    with pytest.raises(TimeoutError):
        srv.accept()
    for s in (c, conn, srv):
        s.close()


def test_fd_mirrors_readiness(sim):
    srv = _listener(sim.sb)
    c = sim.sa.socket()
    c.setblocking(False)
    assert c.connect_ex(("198.18.0.1", 80)) == errno.EINPROGRESS
    assert _fd_ready(c) == (False, False)  # connecting: neither
    sel = selectors.DefaultSelector()
    sel.register(c, selectors.EVENT_WRITE)
    with patched(sim.a):  # in the simulator, selectors wait in virtual time
        assert sel.select(5)
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    assert _fd_ready(c) == (False, True)
    assert _fd_ready(srv) == (True, False)  # a connection waits in the backlog
    conn, _ = srv.accept()
    assert _fd_ready(srv) == (False, False)
    conn.sendall(b"x" * 1000)
    sim.sim.run_for(0.1)
    assert _fd_ready(c) == (True, True)
    assert c.recv(600) == b"x" * 600
    assert _fd_ready(c)[0]  # 400 left
    assert c.recv(600) == b"x" * 400
    assert _fd_ready(c) == (False, True)
    sent = 0
    with pytest.raises(BlockingIOError):
        for _ in range(10_000):  # the peer does not read: the send buffer fills
            sent += c.send(b"y" * 65536)
    assert sent > 0 and _fd_ready(c) == (False, False)
    got = 0
    conn.setblocking(False)
    while got < sent:
        try:
            got += len(conn.recv(1 << 20))
        except BlockingIOError:
            sim.sim.run_for(0.05)
    sim.sim.run_for(0.5)
    assert _fd_ready(c)[1]  # room again
    conn.close()
    sim.sim.run_for(0.1)
    assert _fd_ready(c)[0] and c.recv(10) == b""  # EOF is readable
    for s in (c, srv):
        s.close()


def test_nonblocking_connect_refused_sets_so_error_once(sim):
    c = sim.sa.socket()
    c.setblocking(False)
    assert c.connect_ex(("198.18.0.1", 81)) == errno.EINPROGRESS
    sim.sim.run_for(0.1)
    assert _fd_ready(c) == (True, True)  # POLLERR: select reports it in both sets
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0  # reading clears it (Linux)
    c.close()


def test_options_and_linux_rules(sim):
    s = sim.sa.socket()
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, bytes(8))
    assert len(s.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)) == 8
    with pytest.raises(OSError) as ei:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 5)
    assert ei.value.errno == errno.ENOPROTOOPT
    assert s.getsockname() == ("0.0.0.0", 0)  # unbound (Winsock would fail)
    s.listen()  # Linux binds an ephemeral port first (Winsock would fail)
    assert s.getsockname()[1] > 0 and s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    s.close()
    s6 = sim.sa.socket(socket.AF_INET6, socket.SOCK_STREAM)  # ustack's (issue 12), Linux's defaults
    assert s6.family == socket.AF_INET6 and s6.getsockname() == ("::", 0, 0, 0)
    assert s6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    s6.close()
    with pytest.raises(OSError) as ei:
        sim.sa.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    assert ei.value.errno == errno.ESOCKTNOSUPPORT
    u = sim.sa.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # other families stay the kernel's
    assert type(u) is socket.socket and isinstance(u, sim.sa.socket)
    u.close()
    a, b = sim.sa.socketpair()
    assert type(a) is socket.socket
    a.close()
    b.close()


def test_recv_after_shutdown_rd_is_eof_and_sendfile_falls_back(sim, tmp_path):
    task = _echo_server(sim)
    c = sim.sa.create_connection(("198.18.0.1", 80))
    blob = tmp_path / "blob"
    data = hashlib.sha256(b"seed").digest() * 5000
    blob.write_bytes(data)
    with open(blob, "rb") as f:
        assert c.sendfile(f) == len(data)
    got = bytearray()
    while len(got) < len(data):
        got += c.recv(65536)
    assert bytes(got) == data
    c.shutdown(socket.SHUT_RD)
    assert c.recv(10) == b""
    c.close()
    task.result()
    with pytest.raises(ValueError):
        sim.sa.socket().sendfile(io.BytesIO(b"x"), count=-1)


def test_name_lookup_never_uses_dns(sim, tmp_path, monkeypatch):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n198.18.0.1 peer.test peer # comment\n::1 ip6-localhost\n")
    monkeypatch.setattr(names, "HOSTS_FILE", str(hosts))
    gai = sim.sa.getaddrinfo
    assert gai("peer.test", 80, type=socket.SOCK_STREAM) == [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("198.18.0.1", 80))]
    assert [x[4] for x in gai("198.18.0.1", "http", proto=socket.IPPROTO_TCP)] == [("198.18.0.1", 80)]
    assert {x[1] for x in gai("127.1", 0)} >= {socket.SOCK_STREAM, socket.SOCK_DGRAM}
    assert gai("127.1", 0)[0][4] == ("127.0.0.1", 0)
    assert gai(None, 8080, flags=socket.AI_PASSIVE, type=socket.SOCK_STREAM)[0][4] == ("0.0.0.0", 8080)
    for bad in ("example.com", "nonexistent.invalid"):
        with pytest.raises(socket.gaierror) as ei:
            gai(bad, 80)
        assert ei.value.errno == socket.EAI_NONAME
    assert {x[4] for x in gai("::1", 80)} == {("::1", 80, 0, 0)}  # an IPv6 literal: AF_INET6
    with pytest.raises(socket.gaierror):
        gai("198.18.0.1", 80, socket.AF_INET6)
    assert sim.sa.gethostbyname("peer") == "198.18.0.1"
    assert sim.sa.gethostbyaddr("198.18.0.1")[0] == "peer.test"
    assert sim.sa.getnameinfo(("198.18.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV) == (
        "198.18.0.1", "80")
    task = _echo_server(sim)
    with sim.sa.create_connection(("peer.test", 80)) as c:  # connect resolves through the same
        assert c.getpeername() == ("198.18.0.1", 80)
    task.result()


def test_udp_request_response_truncation_and_icmp(sim):
    srv = sim.sb.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", 53))

    def serve():
        for _ in range(2):
            data, peer = srv.recvfrom(2048)
            srv.sendto(data.upper(), peer)

    task = sim.sim.spawn(serve)
    u = sim.sa.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(2)
    u.sendto(b"hello", ("198.18.0.1", 53))
    assert u.recvfrom(100) == (b"HELLO", ("198.18.0.1", 53))
    u.sendto(b"abcdefgh", ("198.18.0.1", 53))
    assert u.recv(3) == b"ABC"  # Linux truncates a datagram to the buffer
    task.result()
    u.sendto(b"x", ("198.18.0.1", 9))  # port unreachable: an unconnected socket never hears of it
    with pytest.raises(TimeoutError):
        u.recvfrom(10)
    u.connect(("198.18.0.1", 9))
    u.send(b"x")
    with pytest.raises(ConnectionRefusedError):
        u.recv(10)  # a connected one does
    u.close()
    with pytest.raises(OSError) as ei:
        sim.sa.socket(socket.AF_INET, socket.SOCK_DGRAM).send(b"x")
    assert ei.value.errno == errno.EDESTADDRREQ


def test_tls_client_and_server_over_ustack(sim, tls_cert):
    cert, key = tls_cert
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    srv = sctx.wrap_socket(_listener(sim.sb, 443), server_side=True)

    def serve():
        conn, _ = srv.accept()
        with conn:
            req = conn.recv(100)
            conn.sendall(b"TLS " + req + b" " + conn.version().encode())
        with pytest.raises(ssl.SSLError):
            srv.accept()  # the client below refuses our certificate

    task = sim.sim.spawn(serve)
    cctx = ssl.create_default_context(cafile=cert)
    with cctx.wrap_socket(sim.sa.create_connection(("198.18.0.1", 443)), server_hostname="198.18.0.1") as c:
        assert c.getpeercert()["subject"] == ((("commonName", "198.18.0.1"),),)
        c.sendall(b"ping")
        reply = c.recv(100)
    assert reply.startswith(b"TLS ping TLSv1.")
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context().wrap_socket(sim.sa.create_connection(("198.18.0.1", 443)),
                                                 server_hostname="198.18.0.1")
    task.result()
    srv.close()


def test_patched_asyncio_and_sleep_run_in_virtual_time(sim):
    task = _echo_server(sim, conns=1)

    async def client():
        r, w = await asyncio.open_connection("198.18.0.1", 80)
        w.write(b"hello asyncio\n")
        await w.drain()
        line = await r.readline()
        await asyncio.sleep(30)  # virtual: the loop's clock and selector are the simulator's
        w.close()
        await w.wait_closed()
        return line

    t0 = sim.sim.now
    with patched(sim.a) as mod:
        assert mod is socket and socket.socket is not socket.SocketType
        assert asyncio.run(client()) == b"hello asyncio\n"
        time.sleep(5)
    assert sim.sim.now - t0 >= 35  # a real sleep would not move the simulator's clock
    assert socket.socket.__module__ == "socket" and time.sleep.__module__ == "time"  # restored
    task.result()


def test_socket_dropped_without_close_is_closed_later(sim):
    """A socket object collected without close() (ResourceWarning, as CPython) has its ustack
    connection closed by the next socket the program makes, not left open forever."""
    import gc
    import warnings

    srv = _listener(sim.sb)
    c = sim.sa.create_connection(("198.18.0.1", 80))
    conn, _ = srv.accept()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del c
        gc.collect()
    sim.sa.socket().close()  # any later socket call of the host reaps it
    conn.settimeout(5)
    assert conn.recv(10) == b""  # the peer sees the FIN
    conn.close()
    srv.close()


def test_socketserver_in_virtual_time(sim):
    """socketserver's serve_forever polls with a selector: under patched(sim host) that wait
    is virtual, so a server and its client both run in the simulation."""
    import socketserver

    class Upper(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline().upper())

    with patched(sim.b):
        server = socketserver.TCPServer(("0.0.0.0", 7), Upper)
        task = sim.sim.spawn(server.serve_forever, 0.5)
        with sim.sa.create_connection(("198.18.0.1", 7), timeout=10) as c:
            c.sendall(b"over ustack\n")
            assert c.makefile("rb").readline() == b"OVER USTACK\n"
        server.shutdown()
        task.result()
        server.server_close()


def test_tls_nonblocking_handshake_and_read_want_read(sim, tls_cert):
    """A nonblocking TLS socket behaves as CPython's SSLSocket: SSLWantReadError until the
    peer's records arrive, the caller waiting on the fd in between."""
    cert, key = tls_cert
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    srv = sctx.wrap_socket(_listener(sim.sb, 443), server_side=True)

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    task = sim.sim.spawn(serve)
    cctx = ssl.create_default_context(cafile=cert)
    raw = sim.sa.create_connection(("198.18.0.1", 443))
    c = cctx.wrap_socket(raw, server_hostname="198.18.0.1", do_handshake_on_connect=False)
    c.setblocking(False)
    want_reads = 0
    with patched(sim.a):
        sel = selectors.DefaultSelector()
        sel.register(c, selectors.EVENT_READ)
        while True:
            try:
                c.do_handshake()
                break
            except ssl.SSLWantReadError:
                want_reads += 1
                assert sel.select(5)
        c.send(b"quiet please")
        while True:
            try:
                reply = c.recv(100)
                break
            except ssl.SSLWantReadError:
                want_reads += 1
                assert sel.select(5)
    assert reply == b"QUIET PLEASE" and want_reads >= 2
    c.close()
    task.result()
    srv.close()


def test_asyncio_sendfile_falls_back_to_send(sim, tmp_path):
    """asyncio's loop.sendfile would os.sendfile into the socket's fd; under patched() that
    fails with EINVAL for a ustack socket, so asyncio falls back to send() and the file arrives."""
    import os

    data = os.urandom(300_000)
    path = tmp_path / "blob"
    path.write_bytes(data)
    srv = _listener(sim.sb)

    def sink():
        c, _ = srv.accept()
        got = bytearray()
        while chunk := c.recv(65536):
            got += chunk
        c.close()
        return bytes(got)

    task = sim.sim.spawn(sink)

    async def send() -> int:
        loop = asyncio.get_running_loop()
        s = socket.socket()
        s.setblocking(False)
        await loop.sock_connect(s, ("198.18.0.1", 80))
        with open(path, "rb") as f:
            n = await loop.sock_sendfile(s, f)
        s.close()
        return n

    with patched(sim.a):
        assert asyncio.run(send()) == len(data)
        with pytest.raises(OSError) as ei:
            u = socket.socket()
            os.sendfile(u.fileno(), os.open(path, os.O_RDONLY), 0, 10)
        assert ei.value.errno == errno.EINVAL
        u.close()
    assert task.result() == data


def test_subclass_of_the_patched_class(sim):
    class Mine(sim.sa.socket):
        def hello(self) -> str:
            return "mine"

    s = Mine(socket.AF_INET, socket.SOCK_STREAM)
    assert s.hello() == "mine" and isinstance(s, sim.sa.socket) and s.getsockname() == ("0.0.0.0", 0)
    s.close()
    with pytest.raises(OSError) as ei:
        Mine(socket.AF_UNIX, socket.SOCK_STREAM)
    assert ei.value.errno == errno.EAFNOSUPPORT


def test_names_through_ustacks_dns_when_the_stack_has_servers(sim):
    """With DNS servers configured on the stack, names not in /etc/hosts are asked through
    ustack's own stub resolver over ustack's UDP (a DNS server on host b); NXDOMAIN is
    EAI_NONAME, and without servers nothing is asked."""
    from tests.services.simservers import DnsTestServer
    from ustack.wire.ipv4 import ip_int

    server = sim.b.call(lambda: DnsTestServer(sim.b.stack, {"www.example.test": ["198.18.0.1"]}))
    with pytest.raises(socket.gaierror) as ei:
        sim.sa.getaddrinfo("www.example.test", 80)
    assert ei.value.errno == socket.EAI_NONAME and server.udp_queries == []
    sim.a.stack.dns_servers = [ip_int("198.18.0.1")]
    got = sim.sa.getaddrinfo("www.example.test", 80, type=socket.SOCK_STREAM)
    assert got == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("198.18.0.1", 80))]
    assert len(server.udp_queries) == 1
    with pytest.raises(socket.gaierror) as ei:
        sim.sa.gethostbyname("missing.example.test")
    assert ei.value.errno == socket.EAI_NONAME
    task = _echo_server(sim)
    with sim.sa.create_connection(("www.example.test", 80), timeout=5) as c:  # cached: no new query
        assert c.getpeername() == ("198.18.0.1", 80)
    task.result()
    assert len(server.udp_queries) == 2


def test_ipv6_sockets_dual_mode_like_linux(sim):
    """AF_INET6 sockets of an unmodified program (issue 12): dual-mode by default as on Linux
    (IPV6_V6ONLY 0), so an IPv4 client reaches an [::] listener and is named
    ("::ffff:a.b.c.d", port, 0, 0); IPV6_V6ONLY 1 makes it IPv6-only (the IPv4 connect is
    refused); getaddrinfo(AF_INET6) gives 4-tuples for literals and localhost, an IPv4 literal
    is EAI_ADDRFAMILY; socket.has_ipv6 is True."""
    assert sim.sa.has_ipv6 is True
    srv = sim.sa.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.bind(("::", 8080))
    srv.listen()

    def serve():
        c, addr = srv.accept()
        with c:
            c.sendall(repr(addr).encode() + b"|" + repr(c.getsockname()).encode())
        return addr

    task = sim.sim.spawn(serve)
    cli = sim.sb.create_connection(("198.18.0.2", 8080), timeout=5)
    got = b""
    while chunk := cli.recv(1000):
        got += chunk
    cli.close()
    addr = task.result()
    assert addr == ("::ffff:198.18.0.1", addr[1], 0, 0) and addr[1] > 0
    assert got == repr(addr).encode() + b"|" + repr(("::ffff:198.18.0.2", 8080, 0, 0)).encode()
    srv.close()
    only = sim.sa.socket(socket.AF_INET6, socket.SOCK_STREAM)
    only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    only.bind(("::", 8081))
    only.listen()
    with pytest.raises(ConnectionRefusedError):
        sim.sb.create_connection(("198.18.0.2", 8081), timeout=5)
    only.close()
    infos = sim.sa.getaddrinfo("2001:2::7", 80, socket.AF_INET6, socket.SOCK_STREAM)
    assert infos == [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:2::7", 80, 0, 0))]
    assert sim.sa.getaddrinfo("fe80::1%3", 9, 0, socket.SOCK_DGRAM)[0][4] == ("fe80::1", 9, 0, 3)
    assert sim.sa.getaddrinfo("localhost", 1, socket.AF_INET6, socket.SOCK_STREAM)[0][4] == ("::1", 1, 0, 0)
    with pytest.raises(socket.gaierror) as ei:
        sim.sa.getaddrinfo("198.18.0.1", 80, socket.AF_INET6)
    assert ei.value.errno == socket.EAI_ADDRFAMILY
    u = sim.sa.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with pytest.raises(TypeError):
        u.sendto(b"x", ("::1",))
    with pytest.raises(OverflowError):
        u.sendto(b"x", ("::1", 1, 1 << 20))
    u.close()
