"""Unmodified stdlib clients and servers on ustack, against the Linux kernel on a TUN link in a
private network namespace, with and without 3% loss: urllib, http.client keep-alive, asyncio
streams (client and server), a selectors-driven nonblocking client, a socketserver/http.server
reached by the kernel, a TLS client, UDP. The kernel's side runs in its own process
(kpeer.py) and reports the address it saw: it must be ustack's (198.18.0.2), never the
kernel's own."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import http.client
import http.server
import os
import selectors
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import urllib.request
from contextlib import contextmanager

import pytest
import requests

import ustack
from tests.interop.peer import fault_stats
from ustack.compat import patched

pytestmark = pytest.mark.netns

KERNEL_IP, USTACK_IP = "198.18.0.1", "198.18.0.2"
KPEER = os.path.join(os.path.dirname(__file__), "kpeer.py")
PATTERN = bytes(range(256)) * 256


def pattern(n: int) -> bytes:
    return (PATTERN * (n // len(PATTERN) + 1))[:n]


@pytest.fixture(params=[None, "loss=3%"], ids=["clean", "loss3"])
def host(request, netns):
    h = ustack.Host.open(tun="cpt0", addr=f"{USTACK_IP}/24", peer=f"{KERNEL_IP}/24", faults=request.param,
                         seed=11)
    try:
        yield h
        counters = h.call(h.stack.counters.snapshot)
        assert counters.get("tcp.internal_error", 0) == 0 and h.errors == 0, h.error_log
        assert counters["ipv4.in"] > 0 and counters["ipv4.out"] > 0  # the traffic went through ustack
    finally:
        h.close()


@contextmanager
def kernel_peer(*args: str):
    """kpeer.py ARGS in this namespace, until the block ends; waits for its `ready`."""
    p = subprocess.Popen([sys.executable, KPEER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        line = p.stdout.readline()
        assert line.strip() == "ready", (line, p.stderr.read() if p.poll() is not None else "")
        yield p
    finally:
        p.kill()
        p.wait(10)


def kernel_client(port: int, msg: str) -> tuple[str, str]:
    """The kernel connects to ustack: (the peer address it saw, what came back)."""
    out = subprocess.run([sys.executable, KPEER, "client", USTACK_IP, str(port), msg], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    peer, _, reply = out.stdout.partition("\n")
    return peer, reply


def test_urllib_get_with_checksum(host):
    n = 1_500_000
    with kernel_peer("http", "8080"), patched(host):
        with urllib.request.urlopen(f"http://{KERNEL_IP}:8080/bytes/{n}", timeout=60) as r:
            data = r.read()
            seen = r.headers["X-Peer"]
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(pattern(n)).hexdigest()
    assert seen.startswith(f"{USTACK_IP}:")
    stats = fault_stats(host)
    if stats:  # 3% of ~1100 frames: the loss really happened
        assert stats["dropped"] > 0, stats


def test_http_client_keepalive(host):
    with kernel_peer("http", "8080"), patched(host):
        conn = http.client.HTTPConnection(KERNEL_IP, 8080, timeout=60)
        seen, socks = set(), set()
        for n in (10, 200_000, 0, 70_000):
            conn.request("GET", f"/bytes/{n}")
            r = conn.getresponse()
            assert r.status == 200 and r.read() == pattern(n)
            seen.add(r.headers["X-Peer"])
            socks.add(id(conn.sock))
        conn.close()
    assert len(seen) == 1 and len(socks) == 1  # one connection carried all four requests
    assert seen.pop().startswith(f"{USTACK_IP}:")


def test_asyncio_streams_client(host):
    async def talk() -> list[bytes]:
        r, w = await asyncio.open_connection(KERNEL_IP, 7007)
        lines = []
        for i in range(50):
            w.write(b"line %d %s\n" % (i, b"x" * (i * 97)))
            await w.drain()
            lines.append(await asyncio.wait_for(r.readline(), 30))
        w.close()
        await w.wait_closed()
        return lines

    with kernel_peer("echo", "7007"), patched(host):
        lines = asyncio.run(talk())
    assert len(lines) == 50
    for i, line in enumerate(lines):
        assert line.startswith(f"peer={USTACK_IP}:".encode())
        assert line.endswith(b"line %d %s\n" % (i, b"x" * (i * 97)))


def test_asyncio_streams_server_reached_by_kernel(host):
    seen = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append(w.get_extra_info("peername"))
        data = await r.read()
        w.write(b"got %d bytes, sha %s" % (len(data), hashlib.sha256(data).hexdigest().encode()))
        await w.drain()
        w.close()

    async def main() -> tuple[str, str]:
        server = await asyncio.start_server(handle, "0.0.0.0", 9090)
        async with server:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, kernel_client, 9090, "hello " * 5000)

    with patched(host):
        peer, reply = asyncio.run(main())
    assert peer == f"peer={USTACK_IP}:9090"
    assert reply == f"got 30000 bytes, sha {hashlib.sha256(b'hello ' * 5000).hexdigest()}"
    assert seen and seen[0][0] == KERNEL_IP


def test_selectors_nonblocking_client(host):
    want = b"".join(b"%05d %s\n" % (i, b"y" * 300) for i in range(300))
    with kernel_peer("echo", "7007"), patched(host):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        assert s.connect_ex((KERNEL_IP, 7007)) == errno.EINPROGRESS
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_WRITE)
        assert sel.select(30), "connect did not complete"
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        out, got = memoryview(want), bytearray()
        sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        for _ in range(100_000):
            events = sel.select(30)
            assert events, "no progress in 30 s"
            for _key, mask in events:
                if mask & selectors.EVENT_WRITE and out:
                    try:
                        out = out[s.send(out[:8192]):]
                    except BlockingIOError:
                        pass
                    if not out:
                        sel.modify(s, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    try:
                        got += s.recv(65536)
                    except BlockingIOError:
                        pass
            if got.count(b"\n") >= 300:
                break
        sel.close()
        s.close()
    lines = bytes(got).splitlines(keepends=True)
    assert len(lines) == 300
    assert all(line.startswith(f"peer={USTACK_IP}:".encode()) for line in lines)
    assert b"".join(line.split(b" ", 1)[1] for line in lines) == want


def test_socketserver_http_server_reached_by_kernel(host):
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.client_address)
            body = b"served by http.server on ustack at %s\n" % self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with patched(host):
        server = http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler)
        assert isinstance(server, socketserver.ThreadingMixIn)
        t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        t.start()
        try:
            peer, reply = kernel_client(8000, "GET /hello HTTP/1.0\r\nHost: x\r\n\r\n")
        finally:
            server.shutdown()
            server.server_close()
            t.join(10)
    assert peer == f"peer={USTACK_IP}:8000"
    assert reply.startswith("HTTP/1.0 200 OK")
    assert reply.endswith("served by http.server on ustack at /hello\n")
    assert seen and seen[0][0] == KERNEL_IP


def test_tls_client_to_kernel_tls_server(host, tls_cert):
    cert, key = tls_cert
    with kernel_peer("tls", "8443", cert, key), patched(host):
        ctx = ssl.create_default_context(cafile=cert)
        with socket.create_connection((KERNEL_IP, 8443), timeout=60) as raw:
            with ctx.wrap_socket(raw, server_hostname=KERNEL_IP) as s:
                assert s.version() in ("TLSv1.2", "TLSv1.3")
                assert s.getpeercert()["subjectAltName"] == (("IP Address", KERNEL_IP),)
                f = s.makefile("rwb")
                big = b"z" * 100_000
                f.write(b"hello tls\n" + big + b"\n")
                f.flush()
                first, second = f.readline(), f.readline()
                f.close()
    assert first == f"peer={USTACK_IP}:".encode() + first.split(b":", 1)[1]
    assert first.endswith(b" hello tls\n") and second.endswith(b" " + big + b"\n")


def test_udp_request_response(host):
    replies = []
    with kernel_peer("udp", "5353"), patched(host):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(1.0)
        for i in range(5):
            msg = b"query %d" % i
            for _attempt in range(10):  # UDP: a lost request or reply is the client's to repeat
                u.sendto(msg, (KERNEL_IP, 5353))
                try:
                    data, addr = u.recvfrom(2048)
                except TimeoutError:
                    continue
                if data.endswith(msg):
                    replies.append((data, addr))
                    break
        port = u.getsockname()[1]
        u.close()
    assert len(replies) == 5
    for data, addr in replies:
        assert addr == (KERNEL_IP, 5353) and data.startswith(f"peer={USTACK_IP}:{port} ".encode())


def test_smtplib_client(host):
    import smtplib

    msg = "Subject: over ustack\r\n\r\n" + "a line of the body\r\n" * 2000
    with kernel_peer("smtp", "2525"), patched(host):
        with smtplib.SMTP(KERNEL_IP, 2525, timeout=60) as smtp:
            assert smtp.ehlo()[0] == 250
            smtp.mail("a@example.test")
            smtp.rcpt("b@example.test")
            code, resp = smtp.data(msg)
    assert code == 250 and resp.endswith(f"from {USTACK_IP}".encode())


def test_requests_keepalive_and_https(host, tls_cert):
    """urllib3/requests, unchanged: a Session reuses one connection; HTTPS verifies the kernel
    server's certificate through ustack's TLS socket."""
    cert, key = tls_cert
    with kernel_peer("http", "8080"), kernel_peer("https", "8443", cert, key), patched(host):
        with requests.Session() as s:
            peers = set()
            for n in (1000, 300_000, 5):
                r = s.get(f"http://{KERNEL_IP}:8080/bytes/{n}", timeout=60)
                assert r.status_code == 200 and r.content == pattern(n)
                peers.add(r.headers["X-Peer"])
            r = s.get(f"https://{KERNEL_IP}:8443/bytes/200000", timeout=60, verify=cert)
            assert r.content == pattern(200_000)
            tls_peer = r.headers["X-Peer"]
            with pytest.raises(requests.exceptions.SSLError):
                s.get(f"https://{KERNEL_IP}:8443/bytes/1", timeout=60)  # not a CA the system trusts
    assert len(peers) == 1 and peers.pop().startswith(f"{USTACK_IP}:")
    assert tls_peer.startswith(f"{USTACK_IP}:")
