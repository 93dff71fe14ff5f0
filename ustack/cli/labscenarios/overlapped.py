"""Overlapped I/O and completion ports (docs/winsock-overlapped.md): ConnectEx with an
overlapped WSARecv, and an echo server on a completion port (AcceptEx)."""

from __future__ import annotations

import ctypes
import time
from typing import Any

from ustack import winsock as W

from .. import labkernel as K
from ..wscalls import Call, WsRecorder
from .context import LabContext, Outcome

IOCP_PORT = 7007
IOCP_MESSAGES = (b"first line\n", b"second, a little longer\n", b"third\n" * 40)
_BOOL = {"fail": False, "ret_text": lambda r: "TRUE" if r else "FALSE"}


def _ext_fn(r: WsRecorder, s: int, guid: Any, name: str) -> Any:
    out = W.Ref()
    r.record("WSAIoctl", f"{r.sname(s)}, SIO_GET_EXTENSION_FUNCTION_POINTER, {name}",
             lambda: r.ws.WSAIoctl(s, W.SIO_GET_EXTENSION_FUNCTION_POINTER, guid.bytes_le, 16, out, 8,
                                   W.u_long()))
    if not callable(out.value):
        raise RuntimeError(f"WSAIoctl gave no {name}")
    return out.value


def _ov_result(r: WsRecorder, s: int, ov: Any) -> tuple[int, Call]:
    n = W.u_long()
    call = r.record("WSAGetOverlappedResult", f"{r.sname(s)}, &ov, &n, TRUE, &flags",
                    lambda: r.ws.WSAGetOverlappedResult(s, ov, n, True, W.u_long()), **_BOOL,
                    detail=lambda _r: f"n={n.value}")
    return n.value, call


def sc_overlapped(ctx: LabContext) -> Outcome:
    """ConnectEx with data, then an overlapped WSARecv of the echo, each waited for on its event."""
    ctx.need_tcp()
    r = ctx.rec()
    s, _ = r.socket()
    r.bind(s, "0.0.0.0", 0)
    connect_ex = _ext_fn(r, s, W.WSAID_CONNECTEX, "WSAID_CONNECTEX")
    msg = b"overlapped hello"
    ov = W.WSAOVERLAPPED(ctx.ws.WSACreateEvent())
    name = W.SOCKADDR_IN.make(K.KERNEL, K.ECHO_PORT)
    c = r.record("ConnectEx", f"{r.sname(s)}, {K.KERNEL}:{K.ECHO_PORT}, {len(msg)} bytes, &ov",
                 lambda: connect_ex(s, name, 16, msg, len(msg), W.u_long(), ov), **_BOOL)
    w1 = r.wait_events([ov.hEvent], 5000)
    sent, g1 = _ov_result(r, s, ov)
    r.setsockopt_int(s, "SOL_SOCKET", "SO_UPDATE_CONNECT_CONTEXT", 0)
    buf = bytearray(256)
    rov = W.WSAOVERLAPPED(ctx.ws.WSACreateEvent())
    rv = r.record("WSARecv", f"{r.sname(s)}, [256 bytes], &ov",
                  lambda: r.ws.WSARecv(s, [W.WSABUF(256, buf)], 1, W.u_long(), W.u_long(0), rov, None),
                  ret_text=lambda v: "0" if v == 0 else "SOCKET_ERROR")
    w2 = r.wait_events([rov.hEvent], 5000)
    got, g2 = _ov_result(r, s, rov)
    r.closesocket(s)
    pending_ok = c.error == W.WSA_IO_PENDING and (rv.error in (None, W.WSA_IO_PENDING))
    ok = (pending_ok and w1.ret == W.WSA_WAIT_EVENT_0 and sent == len(msg) and not g2.failed
          and bytes(buf[:got]) == msg)
    text = f"ConnectEx pended, sent {sent} bytes; WSARecv got the echo" if ok else "unexpected"
    return Outcome(ok, text, r.calls, [c, g1, rv, w2, g2])


def _kernel_client(port: int, out: dict[str, Any]) -> None:
    """The kernel's side of iocp-echo: connect, send the messages, half-close, read to EOF."""
    import socket

    try:
        with socket.create_connection((K.USTACK, port), timeout=K.IO_TIMEOUT_S) as c:
            for m in IOCP_MESSAGES:
                c.sendall(m)
            c.shutdown(socket.SHUT_WR)
            back = bytearray()
            while chunk := c.recv(65536):
                back += chunk
            out["echo"] = bytes(back)
    except OSError as e:
        out["error"] = f"{type(e).__name__}: {e}"


def sc_iocp_echo(ctx: LabContext) -> Outcome:
    """An echo server on a completion port: AcceptEx, then WSARecv / WSASend completions, for a
    client on the kernel's side."""
    import threading

    ctx.need_tcp()
    r = ctx.rec()
    ws = ctx.ws
    port = r.record("CreateIoCompletionPort", "INVALID_HANDLE_VALUE, NULL, 0, 0",
                    lambda: ws.CreateIoCompletionPort(W.INVALID_HANDLE_VALUE, None, 0, 0), fail=None,
                    ret_text=lambda p: "hPort" if p is not None else "NULL").ret
    lst, _ = r.socket()
    r.bind(lst, "0.0.0.0", IOCP_PORT)
    r.record("listen", f"{r.sname(lst)}, 5", lambda: ws.listen(lst, 5))
    listen_key, conn_key = 1, 2
    r.record("CreateIoCompletionPort", f"{r.sname(lst)}, hPort, {listen_key}, 0",
             lambda: ws.CreateIoCompletionPort(lst, port, listen_key, 0), fail=None,
             ret_text=lambda p: "hPort")
    accept_ex = _ext_fn(r, lst, W.WSAID_ACCEPTEX, "WSAID_ACCEPTEX")
    acc, _ = r.socket()
    abuf, aov = bytearray(64), W.WSAOVERLAPPED()
    a = r.record("AcceptEx", f"{r.sname(lst)}, {r.sname(acc)}, 0, 32, 32, &ov",
                 lambda: accept_ex(lst, acc, abuf, 0, 32, 32, W.u_long(), aov), **_BOOL)
    client: dict[str, Any] = {}
    th = threading.Thread(target=_kernel_client, args=(IOCP_PORT, client), name="lab-iocp-client",
                          daemon=True)
    th.start()
    r.note(f"the kernel connects to {K.USTACK}:{IOCP_PORT}, sends {len(IOCP_MESSAGES)} messages, "
           "half-closes and reads the echo")
    rbuf, rov, sov = bytearray(4096), W.WSAOVERLAPPED(), W.WSAOVERLAPPED()
    echoed, completions, closed = 0, 0, False
    key_calls: list[Call] = [a]

    def post_recv() -> None:
        r.record("WSARecv", f"{r.sname(acc)}, [4096 bytes], &ov",
                 lambda: ws.WSARecv(acc, [W.WSABUF(len(rbuf), rbuf)], 1, W.u_long(), W.u_long(0),
                                    rov, None))

    deadline = time.monotonic() + K.IO_TIMEOUT_S
    while not closed and completions < 200 and time.monotonic() < deadline:
        n, key, done = W.u_long(), ctypes.c_size_t(), W.Ref()
        g = r.record("GetQueuedCompletionStatus", "hPort, &n, &key, &ov, 5000",
                     lambda n=n, key=key, done=done: ws.GetQueuedCompletionStatus(port, n, key, done, 5000),
                     **_BOOL, detail=lambda _r, n=n, key=key: f"n={n.value} key={key.value}")
        completions += 1
        if g.ret is False and done.value is None:
            break  # timed out
        if done.value is aov:
            key_calls.append(g)
            r.record("setsockopt", f"{r.sname(acc)}, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, &listener",
                     lambda: ws.setsockopt(acc, W.SOL_SOCKET, W.SO_UPDATE_ACCEPT_CONTEXT,
                                           lst.to_bytes(8, "little"), 8))
            r.record("CreateIoCompletionPort", f"{r.sname(acc)}, hPort, {conn_key}, 0",
                     lambda: ws.CreateIoCompletionPort(acc, port, conn_key, 0), fail=None,
                     ret_text=lambda p: "hPort")
            post_recv()
        elif done.value is rov:
            if n.value == 0 or g.ret is False:
                key_calls.append(g)
                r.closesocket(acc)
                closed = True
                continue
            data = bytes(rbuf[:n.value])
            r.record("WSASend", f"{r.sname(acc)}, [{len(data)} bytes], &ov",
                     lambda data=data: ws.WSASend(acc, [W.WSABUF(len(data), data)], 1, W.u_long(), 0,
                                                  sov, None))
        elif done.value is sov:
            echoed += n.value
            post_recv()
    th.join(K.IO_TIMEOUT_S)
    r.closesocket(lst)
    r.record("CloseHandle", "hPort", lambda: ws.CloseHandle(port), **_BOOL)
    want = b"".join(IOCP_MESSAGES)
    ok = closed and client.get("echo") == want and echoed == len(want)
    got_text = (f"{echoed} bytes echoed in {completions} completions, client got them all" if ok
                else f"unexpected: {client.get('error') or f'echoed {echoed} of {len(want)}'}")
    return Outcome(ok, got_text, r.calls, key_calls, {"completions": completions, "bytes": echoed})
