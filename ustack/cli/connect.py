"""`ustack connect HOST PORT`: one Winsock connect on ustack, every call printed.

    WSAStartup(2.2) = 0  wVersion 2.2
    socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = s1
    connect(s1, 198.18.0.1:81) = SOCKET_ERROR  WSAECONNREFUSED (10061)  [3.2 ms]
    closesocket(s1) = 0
    WSACleanup() = 0

Exit status: 0 when the connect succeeded, 1 when Winsock reported an error, 2 for a usage
error.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .hosting import open_host
from .wscalls import WsRecorder

WINSOCK_FAILED = 1
USAGE_EXIT = 2


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    import ustack.winsock as W

    args.host, embedded = args.host
    if (args.port is None) == (embedded is None):
        if embedded is not None and args.port == embedded:
            pass
        else:
            what = "a PORT" if args.port is None else "one port, not two"
            sys.stderr.write(f"ustack connect: error: {what} is needed (HOST PORT, or [ADDR]:PORT)\n")
            return USAGE_EXIT
    if args.port is None:
        args.port = embedded

    with open_host(args) as opened:
        ws = W.Winsock(opened.host)
        rec = WsRecorder(ws, echo=_print)
        if rec.startup().ret != 0:
            return WINSOCK_FAILED
        try:
            if not _resolve(args, ws):
                return WINSOCK_FAILED
            if args.udp:
                return _connect(args, ws, rec)
            hint = ("" if args.peer else
                    f" (no --peer was given: does anything on the link answer for {args.host}?)")
            with SynProgress(opened.host, _progress_line, hint):
                return _connect(args, ws, rec)
        finally:
            rec.cleanup()


def _resolve(args: argparse.Namespace, ws: Any) -> bool:
    """A HOST given by name: gethostbyname (printed like the other calls); args.host becomes
    its first address. False (printed with the WSA code) when the name does not resolve."""
    from ustack.services.resolver import numeric
    from ustack.winsock.names import NAME_ERRORS

    if numeric(args.host) is not None or ":" in args.host:  # an IPv4 or IPv6 literal
        return True
    start = time.monotonic()
    h = ws.gethostbyname(args.host)
    took = f"[{(time.monotonic() - start) * 1000:.1f} ms]"
    if h is None:
        code = ws.WSAGetLastError()
        _print(f'gethostbyname("{args.host}") = NULL  {NAME_ERRORS.get(code, "WSA error")} ({code})  {took}')
        return False
    addrs = [".".join(str(b) for b in a) for a in h.h_addr_list]
    _print(f'gethostbyname("{args.host}") = {", ".join(addrs)}  {took}')
    args.host = addrs[0]
    return True


def _progress_line(line: str) -> None:
    sys.stderr.write(f"ustack connect: {line}\n")
    sys.stderr.flush()


class SynProgress:
    """While a TCP connect waits for an answer, one line per SYN retransmission: how long it
    has waited, which retry this is and when connect gives up (Windows' schedule takes 21 s,
    which looks like a hang without it). Reads the stack's `tcp.syn_retransmit` counter."""

    POLL_S = 0.1

    def __init__(self, host: Any, write: Callable[[str], None], hint: str = "") -> None:
        from .labscenarios import syn_schedule

        cfg = host.stack.tcp.config
        self.retries = cfg.syn_retries
        self.give_up_s = syn_schedule(cfg.syn_rto_s, cfg.syn_retries)[1]
        self.host = host
        self.write = write
        self.hint = hint  # added to the first line only
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="syn-progress", daemon=True)

    def _count(self) -> int:
        counters = self.host.stack.counters
        return int(self.host.call(lambda: counters.get("tcp.syn_retransmit")))

    def _watch(self) -> None:
        start = time.monotonic()
        seen = self._count()
        while not self._stop.wait(self.POLL_S):
            try:
                now = self._count()
            except Exception:  # noqa: BLE001 - the host is closing: progress is best effort
                return
            for retry in range(seen + 1, now + 1):
                waited = time.monotonic() - start
                self.write(f"no answer after {waited:.0f} s: SYN sent again (retry {retry} of "
                           f"{self.retries}); connect gives up {self.give_up_s:g} s after the first SYN"
                           + (self.hint if retry == 1 else ""))
            seen = now

    def __enter__(self) -> SynProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)


def _connect(args: argparse.Namespace, ws: Any, rec: WsRecorder) -> int:
    import ustack.winsock as W

    s, call = rec.socket(udp=args.udp, family=6 if ":" in args.host else 4)
    if call.failed:
        return WINSOCK_FAILED
    event = None
    try:
        if args.broadcast and rec.setsockopt_int(s, "SOL_SOCKET", "SO_BROADCAST", 1).failed:
            return WINSOCK_FAILED
        if args.bind is not None and rec.bind(s, *args.bind).failed:
            return WINSOCK_FAILED
        mode = args.nonblocking
        hwnd = None
        if mode == "select":
            if rec.fionbio(s, True).failed:
                return WINSOCK_FAILED
        elif mode == "async":
            hwnd = ws.create_window("connect")
            if rec.async_select(s, hwnd, W.WM_USER + 1, W.FD_CONNECT | W.FD_WRITE | W.FD_CLOSE).failed:
                return WINSOCK_FAILED
        elif mode == "event":
            event, _ = rec.create_event()
            if rec.event_select(s, event, W.FD_CONNECT | W.FD_CLOSE).failed:
                return WINSOCK_FAILED
        c = rec.connect(s, args.host, args.port)
        if c.failed:
            if mode is None or c.error != W.WSAEWOULDBLOCK:
                return WINSOCK_FAILED
            error = _complete(args, rec, s, mode, hwnd, event)
            if error != 0:
                return WINSOCK_FAILED
        rec.getsockname(s)
        rec.getpeername(s)
        if event is not None:
            rec.event_select(s, event, 0)
        return 0
    finally:
        rec.closesocket(s)
        if event is not None:  # on failure too: every handle the program made is closed
            rec.close_event(event)


def _complete(args: argparse.Namespace, rec: WsRecorder, s: int, mode: str, hwnd: Any, event: Any) -> int:
    """Wait for a nonblocking connect to finish; its Winsock error code (0 on success)."""
    import ustack.winsock as W

    timeout = args.timeout
    if mode == "select":
        ready, sel = rec.select(s, write=True, exc=True, timeout_s=timeout)
        if sel.failed:
            return sel.error or -1
        if sel.ret == 0:
            rec.note(f"no outcome within {timeout:g} s")
            return W.WSAETIMEDOUT
        err, _ = rec.getsockopt_int(s, "SOL_SOCKET", "SO_ERROR")
        return err if err is not None else -1
    if mode == "async":
        for _ in range(8):  # FD_WRITE may be queued after FD_CONNECT; stop at FD_CONNECT
            msg, _ = rec.get_message(hwnd, timeout)
            if msg is None:
                rec.note(f"no message within {timeout:g} s")
                return W.WSAETIMEDOUT
            if W.WSAGETSELECTEVENT(msg.lParam) & W.FD_CONNECT:
                return W.WSAGETSELECTERROR(msg.lParam)
        return -1
    wait = rec.wait_events([event], int(timeout * 1000))
    if wait.ret != W.WSA_WAIT_EVENT_0:
        return W.WSAETIMEDOUT
    ne, en = rec.enum_events(s, event)
    if en.failed or not ne.lNetworkEvents & W.FD_CONNECT:
        return -1
    return int(ne.iErrorCode[W.FD_CONNECT_BIT])

