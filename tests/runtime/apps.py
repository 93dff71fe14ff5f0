"""Small applications written only against the runtime interface (call/wait/now/sleep), so
the same code runs in the simulator and on a real Host."""

from __future__ import annotations

from typing import Any

from ustack.wire.ipv4 import ip_int


def udp_echo(host: Any, port: int, count: int, timeout_s: float = 5.0, ready: list | None = None) -> int:
    """Echo `count` datagrams back to their senders (or stop after `timeout_s` without one).
    Returns how many were echoed."""
    sock = host.call(host.stack.udp.open)
    host.call(sock.bind, 0, port)
    if ready is not None:
        ready.append(sock)
    echoed = 0
    try:
        while echoed < count:
            if not host.wait(lambda: sock.readable, timeout_s):
                break

            def echo_all() -> int:
                sock.clear_error()  # e.g. port unreachable from a client already gone
                n = 0
                while (item := sock.recvfrom()) is not None:
                    data, addr, p = item
                    sock.sendto(data, addr, p, host.now())
                    n += 1
                return n

            echoed += host.call(echo_all)
    finally:
        host.call(sock.close, host.now())
    return echoed


def udp_client(host: Any, dst: str, port: int, payloads: list[bytes], timeout_s: float = 2.0,
               interval_s: float = 0.0) -> list[bytes | None]:
    """Send each payload and wait for its echo (None when none came within timeout_s)."""
    sock = host.call(host.stack.udp.open)
    addr = ip_int(dst)
    out: list[bytes | None] = []
    try:
        for data in payloads:
            host.call(lambda d=data: sock.sendto(d, addr, port, host.now()))
            def take() -> bytes | None:
                sock.clear_error()
                item = sock.recvfrom()
                return None if item is None else item[0]

            got = None
            deadline = host.now() + timeout_s
            while got is None and (left := deadline - host.now()) > 0:
                if not host.wait(lambda: sock.readable, left):
                    break
                got = host.call(take)
            out.append(got)
            if interval_s:
                host.sleep(interval_s)
    finally:
        host.call(sock.close, host.now())
    return out


def tcp_echo_server(host: Any, port: int, timeout_s: float = 30.0, ready: list | None = None) -> int:
    """Accept one connection and echo everything until the peer closes. Returns bytes echoed."""
    lsock = host.call(host.stack.tcp.open)
    host.call(lsock.bind, 0, port)
    host.call(lsock.listen, 4)
    if ready is not None:
        ready.append(lsock)
    try:
        if not host.wait(lambda: lsock.accept_pending > 0, timeout_s):
            raise TimeoutError("no connection to accept")
        conn = host.call(lsock.accept)
        total = 0
        pending = b""
        while True:
            host.wait(lambda p=pending: conn.readable_bytes > 0 or conn.at_eof or conn.error is not None
                      or (bool(p) and conn.writable_bytes > 0), timeout_s)
            if conn.error is not None:
                raise ConnectionError(conn.error)
            chunk = host.call(conn.recv, 65536)
            pending += chunk
            if pending:
                n = host.call(lambda p=pending: conn.send(p, host.now()))
                total += n
                pending = pending[n:]
            if host.call(lambda: conn.at_eof) and not pending:
                break
        host.call(lambda: conn.close(host.now()))
        return total
    finally:
        host.call(lambda: lsock.close(host.now()))


def tcp_exchange(host: Any, dst: str, port: int, data: bytes, timeout_s: float = 30.0) -> bytes:
    """Connect, send `data` (all of it), half-close, read until EOF. Returns what came back."""
    sock = host.call(host.stack.tcp.open)
    host.call(lambda: sock.connect(ip_int(dst), port, host.now()))
    from ustack.tcp import State

    if not host.wait(lambda: sock.state is State.ESTABLISHED or sock.error is not None, timeout_s):
        raise TimeoutError("connect")
    if sock.error is not None:
        raise ConnectionError(sock.error)
    view = memoryview(data)
    got = bytearray()
    sent_fin = False
    while True:
        if view:
            n = host.call(lambda v=view: sock.send(v, host.now()))
            view = view[n:]
        if not view and not sent_fin:
            host.call(lambda: sock.shutdown(1, host.now()))
            sent_fin = True
        got += host.call(sock.recv, 1 << 20)
        if host.call(lambda: sock.at_eof):
            break
        if sock.error is not None:
            raise ConnectionError(sock.error)
        if not host.wait(lambda v=view: sock.readable_bytes > 0 or sock.at_eof or sock.error is not None
                         or (bool(v) and sock.writable_bytes > 0), timeout_s):
            raise TimeoutError(f"stalled after {len(got)} bytes back")
    host.call(lambda: sock.close(host.now()))
    return bytes(got)


def tcp_sink_server(host: Any, port: int, timeout_s: float = 30.0) -> int:
    """Accept one connection, read to EOF, answer with the SHA-256 of what came, close.
    Data flows one way only (the answer goes after EOF). Returns the byte count."""
    import hashlib

    lsock = host.call(host.stack.tcp.open)
    host.call(lsock.bind, 0, port)
    host.call(lsock.listen, 1)
    try:
        if not host.wait(lambda: lsock.accept_pending > 0, timeout_s):
            raise TimeoutError("no connection to accept")
        conn = host.call(lsock.accept)
        h = hashlib.sha256()
        total = 0
        while True:
            if not host.wait(lambda: conn.readable_bytes > 0 or conn.at_eof or conn.error is not None,
                             timeout_s):
                raise TimeoutError(f"stalled after {total} bytes")
            if conn.error is not None:
                raise ConnectionError(conn.error)
            chunk = host.call(conn.recv, 1 << 20)
            h.update(chunk)
            total += len(chunk)
            if not chunk and host.call(lambda: conn.at_eof):
                break
        host.call(lambda: conn.send(h.digest(), host.now()))
        host.call(lambda: conn.close(host.now()))
        return total
    finally:
        host.call(lambda: lsock.close(host.now()))
