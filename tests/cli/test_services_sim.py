"""The `ustack serve` services in the Simulator (virtual time, no root): HTTP framing and
keep-alive rules, echo, discard, chargen and UDP echo, served by ustack to a ustack client."""

from __future__ import annotations

import pytest

from ustack import Simulator
from ustack import socket as us
from ustack.cli.services import ServiceSet

from .helpers import RFC864_LINE0, chargen_lines, http_body

SERVER = "198.18.0.2"


@pytest.fixture
def served():
    sim = Simulator(seed=5)
    server = sim.add_host(f"{SERVER}/24", name="server")
    client = sim.add_host("198.18.0.1/24", name="client")
    svc = ServiceSet(server, spawn=sim.spawn)
    svc.udp_echo(7)
    for kind, port in (("echo", 7), ("discard", 9), ("chargen", 19), ("http", 80)):
        svc.tcp(kind, port)
    yield client, svc
    svc.stop()
    sim.close()


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def response(self, head_only=False):
        while b"\r\n\r\n" not in self.buf:
            assert self.fill(), f"connection closed mid-head: {self.buf!r}"
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        n = 0 if head_only else int(headers["content-length"])
        while len(self.buf) < n:
            assert self.fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed(self) -> bool:
        return not self.buf and not self.fill()


def http(client, raw: bytes):
    s = us.create_connection(client, (SERVER, 80), timeout=10)
    s.settimeout(10)
    s.sendall(raw)
    return s, Reader(s)


def test_http_bytes_keepalive_and_pipelining(served):
    client, svc = served
    s, r = http(client, b"GET /bytes/5 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /bytes/70000 HTTP/1.1\r\n\r\n"
                        b"GET /bytes/70000 HTTP/1.1\r\n\r\n")
    st, h, body = r.response()
    assert (st, body, h["connection"]) == (200, bytes(range(5)), "keep-alive")
    st, h, body = r.response(head_only=True)
    assert st == 200 and h["content-length"] == "70000" and body == b""
    st, h, body = r.response()
    assert st == 200 and body == http_body(70000)
    s.sendall(b"GET /bytes/3 HTTP/1.1\r\nConnection: close\r\n\r\n")
    st, h, body = r.response()
    assert (st, body, h["connection"]) == (200, b"\x00\x01\x02", "close")
    assert r.closed()  # the server closed after "Connection: close"
    s.close()
    assert svc.stats["http_requests"] == 4


@pytest.mark.parametrize("raw,status,closes", [
    (b"GET /nope HTTP/1.1\r\n\r\n", 404, False),
    (b"POST /bytes/1 HTTP/1.1\r\n\r\n", 405, False),
    (b"GET /bytes/1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 400, True),
    (b"BROKEN\r\n\r\n", 400, True),
    (b"GET /bytes/2 HTTP/1.0\r\n\r\n", 200, True),  # 1.0 closes unless keep-alive
    (b"GET / HTTP/1.1\r\n\r\n", 200, False),
])
def test_http_status_and_connection_rules(served, raw, status, closes):
    client, _ = served
    s, r = http(client, raw)
    st, h, body = r.response()
    assert st == status
    assert (h["connection"] == "close") == closes
    if closes:
        assert r.closed()
    s.close()


def test_http_head_too_large_is_431(served):
    client, _ = served
    s, r = http(client, b"GET / HTTP/1.1\r\nX: " + b"a" * 20000)
    st, h, _ = r.response()
    assert st == 431 and h["connection"] == "close"
    s.close()


def test_tcp_echo_discard_chargen_and_udp_echo(served):
    client, _ = served
    blob = bytes(range(256)) * 1000
    with us.create_connection(client, (SERVER, 7), timeout=10) as e:
        e.settimeout(10)
        e.sendall(blob)
        e.shutdown(us.SHUT_WR)
        got = b""
        while chunk := e.recv(65536):
            got += chunk
        assert got == blob
    with us.create_connection(client, (SERVER, 9), timeout=10) as d:
        d.settimeout(10)
        d.sendall(blob)
        d.shutdown(us.SHUT_WR)
        assert d.recv(10) == b""  # discard sends nothing, then closes after our FIN
    with us.create_connection(client, (SERVER, 19), timeout=10) as c:
        c.settimeout(10)
        got = b""
        while len(got) < 5 * 74:
            got += c.recv(4096)
        assert got[:5 * 74] == chargen_lines(5) and got[:74] == RFC864_LINE0
    with us.socket(client, us.AF_INET, us.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(b"datagram", (SERVER, 7))
        assert u.recvfrom(100) == (b"datagram", (SERVER, 7))


def test_http_keepalive_idle_limit_closes_only_idle_connections(served):
    """HTTP_IDLE_S of silence closes a keep-alive connection (one heap entry per connection);
    a connection that made a request meanwhile gets its full idle time again."""
    from ustack.cli.services import HTTP_IDLE_S

    client, svc = served
    idle, r_idle = http(client, b"GET /bytes/1 HTTP/1.1\r\n\r\n")
    busy, r_busy = http(client, b"GET /bytes/1 HTTP/1.1\r\n\r\n")
    assert r_idle.response()[0] == 200 and r_busy.response()[0] == 200
    client.sleep(HTTP_IDLE_S * 0.75)
    busy.sendall(b"GET /bytes/2 HTTP/1.1\r\n\r\n")
    assert r_busy.response()[2] == b"\x00\x01"
    client.sleep(HTTP_IDLE_S * 0.5)  # the first is now past its limit, the second is not
    assert r_idle.closed()
    busy.sendall(b"GET /bytes/3 HTTP/1.1\r\n\r\n")
    assert r_busy.response()[2] == b"\x00\x01\x02"
    idle.close()
    busy.close()


def test_udp_echo_that_cannot_be_sent_back_is_counted_not_echoed(served):
    """A datagram from source port 0 cannot be answered (sendto port 0 is refused): the echo
    service drops it and counts it as failed, not as echoed, and keeps serving."""
    import socket

    import dpkt

    client, svc = served
    host = svc.host
    udp = dpkt.udp.UDP(sport=0, dport=7, data=b"no reply possible")
    udp.ulen = len(bytes(udp))
    ip = dpkt.ip.IP(src=socket.inet_aton("198.18.0.1"), dst=socket.inet_aton(SERVER), p=17, ttl=64, data=udp)
    host.call(lambda: host.stack.receive(bytes(ip), host.now()))
    assert host.wait(lambda: svc.stats["udp_echo_failed"] == 1, 5)
    assert svc.stats["udp_echoed"] == 0
    with us.socket(client, us.AF_INET, us.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(b"still here", (SERVER, 7))
        assert u.recvfrom(100) == (b"still here", (SERVER, 7))
    assert svc.stats["udp_echoed"] == 1
