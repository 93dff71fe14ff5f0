"""Nonblocking connect, seen through select, WSAAsyncSelect and WSAEventSelect."""

from __future__ import annotations

from ustack import winsock as W

from .. import labkernel as K
from .context import LabContext, Outcome


def sc_nb_select(ctx: LabContext) -> Outcome:
    ctx.need_tcp()
    r = ctx.rec()
    s, _ = r.socket()
    nb = r.fionbio(s, True)
    c = r.connect(s, K.KERNEL, K.ECHO_PORT)
    ready, sel = r.select(s, write=True, exc=True, timeout_s=5.0)
    err, so = r.getsockopt_int(s, "SOL_SOCKET", "SO_ERROR")
    r.closesocket(s)
    ok = (not nb.failed and c.error == W.WSAEWOULDBLOCK and sel.ret == 1 and ready["write"]
          and not ready["except"] and err == 0)
    got = "WSAEWOULDBLOCK, then writable, SO_ERROR 0" if ok else "unexpected"
    return Outcome(ok, got, r.calls, [c, sel, so])


def sc_nb_async(ctx: LabContext) -> Outcome:
    ctx.need_tcp()
    r = ctx.rec()
    s, _ = r.socket()
    hwnd = ctx.ws.create_window("lab")
    msg = W.WM_USER + 1
    a = r.async_select(s, hwnd, msg, W.FD_CONNECT | W.FD_WRITE | W.FD_CLOSE)
    c = r.connect(s, K.KERNEL, K.ECHO_PORT)
    m1, g1 = r.get_message(hwnd, 5.0)
    m2, g2 = r.get_message(hwnd, 5.0)
    r.closesocket(s)
    ok = (not a.failed and c.error == W.WSAEWOULDBLOCK and m1 is not None
          and m1.message == msg and m1.wParam == s and m1.lParam == W.WSAMAKESELECTREPLY(W.FD_CONNECT, 0)
          and m2 is not None and W.WSAGETSELECTEVENT(m2.lParam) == W.FD_WRITE)
    got = f"FD_CONNECT lParam={m1.lParam:#010x}, then FD_WRITE" if ok else "unexpected"
    return Outcome(ok, got, r.calls, [c, g1, g2])


def sc_nb_event(ctx: LabContext) -> Outcome:
    ctx.need_tcp()
    r = ctx.rec()
    s, _ = r.socket()
    ev, _ = r.create_event()
    es = r.event_select(s, ev, W.FD_CONNECT | W.FD_CLOSE)
    c = r.connect(s, K.KERNEL, K.ECHO_PORT)
    w = r.wait_events([ev], 5000)
    ne, en = r.enum_events(s, ev)
    r.closesocket(s)
    r.close_event(ev)
    ok = (not es.failed and c.error == W.WSAEWOULDBLOCK and w.ret == W.WSA_WAIT_EVENT_0
          and not en.failed and ne.lNetworkEvents & W.FD_CONNECT and ne.iErrorCode[W.FD_CONNECT_BIT] == 0)
    got = "event signalled, FD_CONNECT with error 0" if ok else "unexpected"
    return Outcome(ok, got, r.calls, [c, w, en])
