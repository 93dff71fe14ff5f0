"""Readiness of a socket in Winsock's terms, and the WSAAsyncSelect / WSAEventSelect events.

`refresh(ws, version)` is the heart: it advances a pending TCP connect from the stack socket
(to CONNECTED or FAILED, with SO_ERROR), then posts (WSAAsyncSelect) or records
(WSAEventSelect) each network event whose condition is true and which is enabled. An event is
disabled once reported and re-enabled only by the calls of item 43 (`reenable`); the details
of which registration re-enables what follow Wine's sock.c test_events (see `refresh`).
`readable`, `writable` and `excepted` are select()'s three questions, `poll_revents` WSAPoll's.
Everything runs under the host lock. This module is the only one that reads stack socket
state for readiness.
"""

from __future__ import annotations

from ustack.core.reasons import Reason

from . import constants as C
from . import errors as E
from . import oob as OOB
from .structs import WSAMAKESELECTREPLY
from .wsocket import Phase, WSocket

# TCP states (ustack.tcp.State names) after the handshake completed
SYNCHRONIZED = frozenset({"ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",
                          "LAST_ACK", "TIME_WAIT"})
CAN_SEND = frozenset({"ESTABLISHED", "CLOSE_WAIT"})
BROKEN = (Reason.RESET, Reason.ABORTED, Reason.TIMED_OUT, Reason.KEEPALIVE_FAILED)
FD_ORDER = (C.FD_CONNECT, C.FD_READ, C.FD_WRITE, C.FD_OOB, C.FD_ACCEPT, C.FD_CLOSE)


def tcp_state(ws: WSocket) -> str:
    return ws.sock.state.name


def local(ws: WSocket) -> tuple[int, int] | None:
    loc = ws.sock.local
    return None if loc is None else (int(loc[0]), int(loc[1]))


def refresh(ws: WSocket, version: tuple[int, int]) -> None:
    """Advance the connect phase from the stack socket and post/record due events.

    The event model follows Wine's sock.c test_events on real Windows:
    - FD_CONNECT is an occurrence, not a condition: WSAAsyncSelect posts it when a TCP connect
      completes while registered for it; otherwise it waits in `connect_event` until a
      WSAEventSelect registration for FD_CONNECT records it (so a socket connected before its
      first WSAEventSelect reports FD_CONNECT, one registered with WSAAsyncSelect does not). A
      UDP connect gives it to WSAEventSelect only; an accepted socket never has one.
    - Other events are conditions reported once until re-enabled (item 43). WSAAsyncSelect
      registration re-enables all of them; WSAEventSelect registration none. Under
      WSAEventSelect a new arrival (data, a connection) re-enables FD_READ / FD_ACCEPT.
    - FD_CLOSE is due as soon as the peer's FIN (or RST) arrived, even with data unread.
    """
    if ws.closed:
        return
    s = ws.sock
    if not ws.is_tcp and not ws.opts.udp_connreset and s.error is not None:
        s.clear_error()  # SIO_UDP_CONNRESET off: ICMP errors are ignored entirely
    if ws.is_tcp and ws.phase is Phase.CONNECTING:
        state = tcp_state(ws)
        if state in SYNCHRONIZED:
            ws.phase = Phase.CONNECTED
            ws.connected_at = ws.clock()
            ws.so_error = 0  # only a successful connection clears SO_ERROR (sock.c test_select)
            ws.connect_failed = False
            ws.enabled |= C.FD_WRITE  # a fresh connection reports FD_WRITE once
            connect_done(ws, 0)
        elif s.error is not None:
            code = E.connect_error(s.error, version=version, was_bound=True)
            s.clear_error()
            ws.phase = Phase.FAILED
            ws.connect_failed = True
            ws.connect_error = code
            if not ws.blocking_connect:
                ws.so_error = code  # a blocking connect reports it only as its result (sock.c)
            connect_done(ws, code)
    rx = s.readable_bytes if ws.is_tcp else s.pending_bytes
    waiting = s.accept_pending if ws.phase is Phase.LISTENING else 0
    if ws.reg_kind == "event":
        if rx > ws.seen_rx:
            ws.enabled |= C.FD_READ
        if waiting > ws.seen_accept:
            ws.enabled |= C.FD_ACCEPT
    ws.seen_rx, ws.seen_accept = rx, waiting
    if ws.reg_kind is None:
        return
    if ws.reg_kind == "event" and ws.connect_event is not None and ws.reg_events & C.FD_CONNECT:
        code, ws.connect_event = ws.connect_event, None
        ws.enabled |= C.FD_CONNECT
        report(ws, C.FD_CONNECT, code)
    due = conditions(ws) & ws.enabled & ws.reg_events
    for bit in FD_ORDER:
        if due & bit:
            report(ws, bit, event_error(ws, bit))


def connect_done(ws: WSocket, code: int, *, udp: bool = False) -> None:
    """A connect completed (TCP: with `code`; UDP: at once): FD_CONNECT as Windows reports it."""
    if ws.reg_kind == "async":
        if not udp and ws.reg_events & C.FD_CONNECT:
            ws.enabled |= C.FD_CONNECT
            report(ws, C.FD_CONNECT, code)
        return
    ws.connect_event = code  # recorded by a WSAEventSelect for FD_CONNECT, now or later


def event_error(ws: WSocket, bit: int) -> int:
    if bit == C.FD_CLOSE:
        err = ws.sock.error
        return E.fd_close_error(err if err in BROKEN else None)
    return 0


def conditions(ws: WSocket) -> int:
    """FD bits whose condition is true now (FD_CONNECT is an occurrence: see `refresh`)."""
    s = ws.sock
    bits = 0
    if not ws.is_tcp:
        if s.readable or (s.error is not None and ws.opts.udp_connreset):
            bits |= C.FD_READ
        if ws.reg_kind == "async" or ws.is_bound:
            bits |= C.FD_WRITE  # WSAEventSelect: once bound; WSAAsyncSelect: always (sock.c)
        return bits
    if ws.phase is Phase.LISTENING:
        return C.FD_ACCEPT if s.accept_pending else 0
    if ws.phase is not Phase.CONNECTED:
        return 0
    if OOB.normal_bytes(ws) > 0:
        bits |= C.FD_READ
    if OOB.pending(ws):
        bits |= C.FD_OOB
    err = s.error
    if tcp_state(ws) in CAN_SEND and err is None and s.writable_bytes > 0:
        bits |= C.FD_WRITE
    if s.fin_received or err in BROKEN:
        bits |= C.FD_CLOSE
    return bits


def report(ws: WSocket, bit: int, error: int) -> None:
    """Post (WSAAsyncSelect) or record (WSAEventSelect) one network event, once until
    something re-enables it."""
    if ws.reg_kind is None or not (ws.reg_events & bit) or not (ws.enabled & bit):
        return
    ws.enabled &= ~bit
    if ws.reg_kind == "async":
        if ws.hwnd is not None:
            ws.hwnd.post(ws.wmsg, ws.handle, WSAMAKESELECTREPLY(bit, error))
    else:
        ws.record |= bit
        ws.record_errors[bit.bit_length() - 1] = error
        if ws.event is not None and not ws.event.closed:
            ws.event.signaled = True


def reenable(ws: WSocket, bits: int, version: tuple[int, int]) -> None:
    ws.enabled |= bits & ~(C.FD_CONNECT | C.FD_CLOSE)
    refresh(ws, version)


def readable(ws: WSocket) -> bool:
    s = ws.sock
    if not ws.is_tcp:
        return bool(s.readable) or (s.error is not None and ws.opts.udp_connreset)
    if ws.phase is Phase.LISTENING:
        return bool(s.accept_pending)
    if ws.phase is not Phase.CONNECTED:
        return False
    return OOB.normal_bytes(ws) > 0 or bool(s.at_eof) or s.error is not None or ws.shut_rd


def writable(ws: WSocket) -> bool:
    if not ws.is_tcp:
        return True
    if ws.phase is not Phase.CONNECTED:
        return False
    s = ws.sock
    if s.error is not None or ws.shut_wr:
        return True
    return tcp_state(ws) in CAN_SEND and s.writable_bytes > 0


def excepted(ws: WSocket) -> bool:
    """A failed connect stays in exceptfds, even after a listen (sock.c test_select), until
    the next connect starts; so does urgent data not yet read out of line (Microsoft, select)."""
    return ws.is_tcp and (ws.connect_failed or (ws.phase is Phase.CONNECTED and OOB.pending(ws)))


def poll_revents(ws: WSocket, events: int) -> int:
    """WSAPoll's revents for one socket, as sock.c test_WSAPoll shows Windows reporting them:
    POLLRDNORM for queued data or a pending connection; POLLWRNORM while a connected socket (or
    any UDP socket) can take data, even after its own shutdown; POLLHUP once the peer's FIN or
    RST arrived (POLLRDNORM only while data is left); a reset or a failed connect adds POLLERR
    (a failed connect reads POLLWRNORM | POLLHUP | POLLERR). POLLHUP and POLLERR are reported
    whatever `events` asks for; the others only when asked."""
    s = ws.sock
    got = 0
    if not ws.is_tcp:
        if s.readable or (s.error is not None and ws.opts.udp_connreset):
            got |= C.POLLRDNORM
        return (got | C.POLLWRNORM) & events
    if ws.phase is Phase.LISTENING:
        return C.POLLRDNORM & events if s.accept_pending else 0
    if ws.connect_failed and ws.phase is not Phase.CONNECTED:
        return (C.POLLWRNORM & events) | C.POLLHUP | C.POLLERR
    if ws.phase is not Phase.CONNECTED:
        return 0
    err = s.error
    if OOB.normal_bytes(ws) > 0:
        got |= C.POLLRDNORM
    if OOB.pending(ws):
        got |= C.POLLRDBAND  # sock.c test_WSAPoll: urgent data out of line
    if err in BROKEN:
        return ((got | C.POLLWRNORM) & events) | C.POLLHUP | C.POLLERR
    if s.writable_bytes > 0 or tcp_state(ws) not in CAN_SEND:
        got |= C.POLLWRNORM
    hup = C.POLLHUP if s.fin_received else 0
    return (got & events) | hup
