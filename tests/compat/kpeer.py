"""The kernel's side of the compat tests: small servers and a client on the kernel's own sockets,
run as a separate process in the test's network namespace (so they never meet the patched
socket module and do not share the GIL with ustack). Each server prints `ready` once it
listens and tells its client what address it saw (an X-Peer header, or a `peer=ADDR:PORT`
prefix), so a test can check that the traffic came from ustack's address.

    python kpeer.py http PORT            HTTP/1.1 keep-alive; GET /bytes/N -> N pattern bytes
    python kpeer.py echo PORT            TCP: each line comes back as "peer=ADDR:PORT line"
    python kpeer.py tls PORT CERT KEY    TLS: the same over TLS
    python kpeer.py udp PORT             UDP: each datagram back as b"peer=ADDR:PORT " + data
    python kpeer.py smtp PORT            a minimal SMTP receiver; the reply to the message's
                                         final "." is "250 queued N bytes from ADDR"
    python kpeer.py https PORT CERT KEY  the http server over TLS
    python kpeer.py client ADDR PORT MSG connect, send MSG, shut down, print what came back and
                                         the peer address the kernel saw
Every server exits after 60 s at the latest.
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import ssl
import sys
import threading

LIFETIME_S = 60.0
PATTERN = bytes(range(256)) * 256


def body(n: int) -> bytes:
    reps = n // len(PATTERN) + 1
    return (PATTERN * reps)[:n]


class Http(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        n = int(self.path.rsplit("/", 1)[-1]) if self.path.startswith("/bytes/") else 0
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.send_header("X-Peer", "{}:{}".format(*self.client_address))
        self.end_headers()
        self.wfile.write(body(n))

    def log_message(self, *args: object) -> None:
        pass


class Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        prefix = b"peer=%s:%d " % (self.client_address[0].encode(), self.client_address[1])
        while line := self.rfile.readline():
            self.wfile.write(prefix + line)
            self.wfile.flush()


class Smtp(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        def reply(line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")
            self.wfile.flush()

        reply("220 kpeer ESMTP")
        while line := self.rfile.readline():
            cmd = line.decode(errors="replace").strip().upper()
            if cmd.startswith(("EHLO", "HELO")):
                reply("250-kpeer")
                reply("250 8BITMIME")
            elif cmd.startswith(("MAIL", "RCPT", "RSET", "NOOP")):
                reply("250 ok")
            elif cmd == "DATA":
                reply("354 go ahead")
                size = 0
                while (body := self.rfile.readline()) not in (b".\r\n", b""):
                    size += len(body)
                reply(f"250 queued {size} bytes from {self.client_address[0]}")
            elif cmd == "QUIT":
                reply("221 bye")
                return
            else:
                reply("502 not implemented")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve_tls(port: int, cert: str, key: str) -> socketserver.TCPServer:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    class Tls(Server):
        def get_request(self):  # type: ignore[no-untyped-def]
            conn, addr = self.socket.accept()
            conn.settimeout(20)
            return ctx.wrap_socket(conn, server_side=True), addr

    return Tls(("0.0.0.0", port), Echo)


def serve_udp(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(LIFETIME_S)
    print("ready", flush=True)
    while True:
        try:
            data, peer = s.recvfrom(65536)
        except TimeoutError:
            return
        s.sendto(b"peer=%s:%d " % (peer[0].encode(), peer[1]) + data, peer)


def client(addr: str, port: int, msg: str) -> None:
    with socket.create_connection((addr, port), timeout=20) as c:
        peer = c.getpeername()
        c.sendall(msg.encode())
        c.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := c.recv(65536):
            got += chunk
        print("peer={}:{}".format(*peer))
        sys.stdout.write(got.decode(errors="replace"))


def main(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "udp":
        serve_udp(int(argv[1]))
        return
    if kind == "client":
        client(argv[1], int(argv[2]), argv[3])
        return
    port = int(argv[1])
    if kind == "http":
        srv: socketserver.TCPServer = http.server.ThreadingHTTPServer(("0.0.0.0", port), Http)
    elif kind == "echo":
        srv = Server(("0.0.0.0", port), Echo)
    elif kind == "tls":
        srv = serve_tls(port, argv[2], argv[3])
    elif kind == "smtp":
        srv = Server(("0.0.0.0", port), Smtp)
    elif kind == "https":
        srv = http.server.ThreadingHTTPServer(("0.0.0.0", port), Http)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(argv[2], argv[3])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    threading.Timer(LIFETIME_S, srv.shutdown).start()
    print("ready", flush=True)
    srv.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main(sys.argv[1:])
