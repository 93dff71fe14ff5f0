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
