"""The lab's bulk-transfer peers (the kernel's TCP sink and source) in a process of their own.

    python -m ustack.cli.labpeer ADDR SINK_PORT SOURCE_PORT NBYTES

Why a separate process: in the lab process these loops are Python threads that share the GIL
with ustack's network and application threads. When the sink is not scheduled, the kernel's
receive queue is not drained, Linux holds back its ACKs (it does not ACK while it would have to
advertise a smaller window) until its 40 ms delayed-ACK timer, and ustack, cwnd-limited, sits
idle: the time-sequence graph showed 40-50 ms flat steps that were the harness, not the stack.

The child inherits the lab's private network namespace and dies with its parent
(PR_SET_PDEATHSIG). It prints `ready` once both ports listen, then one JSON line per finished
connection: {"kind": "sink", "peer": [addr, port], "nbytes": N, "sha256": "...", "error": null}
or {"kind": "source", "sent": N, "error": null}.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import signal
import socket
import sys
import threading
from collections.abc import Callable

from .services import http_body_bytes

IO_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - Linux always has prctl
        pass


_out_lock = threading.Lock()


def _report(rec: dict[str, object]) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(rec) + "\n")
        sys.stdout.flush()


def _sink(conn: socket.socket, peer: tuple[str, int]) -> None:
    h = hashlib.sha256()
    n = 0
    err = None
    buf = bytearray(1 << 18)
    view = memoryview(buf)
    try:
        while k := conn.recv_into(buf):
            h.update(view[:k])
            n += k
    except OSError as e:
        err = f"{type(e).__name__}: {e}"
    _report({"kind": "sink", "peer": list(peer), "nbytes": n, "sha256": h.hexdigest(), "error": err})


def _source(conn: socket.socket, nbytes: int) -> None:
    sent = 0
    err = None
    try:
        while sent < nbytes:
            k = min(1 << 18, nbytes - sent)
            conn.sendall(http_body_bytes(sent, k))
            sent += k
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):  # wait for ustack's FIN so the close is orderly
            pass
    except OSError as e:
        err = f"{type(e).__name__}: {e}"
    _report({"kind": "source", "sent": sent, "error": err})


def _serve(ls: socket.socket, handler: Callable[[socket.socket, tuple[str, int]], None]) -> None:
    while True:
        conn, peer = ls.accept()
        conn.settimeout(IO_TIMEOUT_S)

        def one(c: socket.socket = conn, p: tuple[str, int] = peer) -> None:
            with c:
                handler(c, p)
        threading.Thread(target=one, daemon=True).start()


def main(argv: list[str]) -> int:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the lab's to handle; it ends us
    addr, sink_port, source_port, nbytes = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    listeners = []
    for port in (sink_port, source_port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(64)
        listeners.append(s)
    threading.Thread(target=_serve, args=(listeners[0], _sink), daemon=True).start()
    threading.Thread(target=_serve, args=(listeners[1], lambda c, _p: _source(c, nbytes)),
                     daemon=True).start()
    with _out_lock:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    try:
        sys.stdin.read()  # the parent closes our stdin (or dies): time to go
    except (OSError, ValueError):
        pass
    return 0



if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
