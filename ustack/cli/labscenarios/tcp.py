"""TCP scenarios with blocking calls: connect, its failures (refused, timeout, unreachable),
and urgent data both ways with Linux."""

from __future__ import annotations

import time
from typing import Any

from ustack import winsock as W

from .. import labkernel as K
from ..wscalls import Call, WsRecorder, format_duration
from .context import (
    LAB_SYN_RETRIES,
    LAB_SYN_RTO_S,
    RECV_TIMEOUT_MS,
    LabContext,
    Outcome,
    syn_schedule,
    syn_schedule_text,
)


def _tcp_connect(ctx: LabContext, addr: str, port: int) -> tuple[WsRecorder, int, Call]:
    ctx.need_tcp()
    r = ctx.rec()
    s, call = r.socket()
    if call.failed:
        raise RuntimeError(call.line())
    return r, s, r.connect(s, addr, port)


def sc_tcp_connect(ctx: LabContext) -> Outcome:
    r, s, c = _tcp_connect(ctx, K.KERNEL, K.ECHO_PORT)
    name, gs = r.getsockname(s)
    r.send(s, b"hello, kernel")
    data, rc = r.recv(s)
    r.closesocket(s)
    ephemeral = name is not None and 49152 <= name[1] <= 65535
    ok = not c.failed and ephemeral and data == b"hello, kernel"
    got = f"connected from ephemeral port {name[1]}, echo ok" if ok else "unexpected"
    return Outcome(ok, got, r.calls, [c, gs, rc], {"local_port": name[1] if name else None})


def _expect_connect_error(ctx: LabContext, addr: str, port: int, code: str, *,
                          within: tuple[float, float] | None = None, extra: str = "") -> Outcome:
    r, s, c = _tcp_connect(ctx, addr, port)
    r.closesocket(s)
    ok = c.error == getattr(W, code)
    if within is not None:
        ok = ok and within[0] <= c.seconds <= within[1]
    got = f"{c.error_name or c.ret_text} after {format_duration(c.seconds)}" + (f"; {extra}" if extra else "")
    return Outcome(ok, got, r.calls, [c], {"seconds": c.seconds})


def sc_tcp_refused(ctx: LabContext) -> Outcome:
    return _expect_connect_error(ctx, K.KERNEL, K.CLOSED_TCP_PORT, "WSAECONNREFUSED")


def sc_tcp_timeout(ctx: LabContext) -> Outcome:
    times, give_up = syn_schedule(LAB_SYN_RTO_S, LAB_SYN_RETRIES)
    out = _expect_connect_error(ctx, K.BLACKHOLE_HOST, K.ECHO_PORT, "WSAETIMEDOUT",
                                within=(give_up * 0.9, give_up + 1.5), extra=syn_schedule_text())
    out.info["syn_schedule"] = syn_schedule_text()
    return out


def sc_tcp_host_unreach(ctx: LabContext) -> Outcome:
    return _expect_connect_error(ctx, K.UNREACH_HOST, K.ECHO_PORT, "WSAEHOSTUNREACH")


def sc_tcp_net_unreach(ctx: LabContext) -> Outcome:
    ctx.need_tcp()
    r = ctx.rec()
    s, _ = r.socket()
    before = ctx.frames_sent()
    c = r.connect(s, K.NO_ROUTE_HOST, K.ECHO_PORT)
    sent = ctx.frames_sent() - before
    r.closesocket(s)
    ok = c.error == W.WSAENETUNREACH and sent == 0
    got = f"{c.error_name or c.ret_text}, {sent} frames sent"
    return Outcome(ok, got, r.calls, [c], {"frames_sent": sent})


OOB_PORT = 7008


def _kernel_oob_client(port: int, out: dict[str, Any]) -> None:
    """Connect to ustack, send b"xyz!" with MSG_OOB (Linux marks '!'), then b"more"."""
    import socket

    try:
        with socket.create_connection((K.USTACK, port), timeout=K.IO_TIMEOUT_S) as c:
            c.send(b"xyz!", socket.MSG_OOB)
            time.sleep(0.2)
            c.sendall(b"more")
            c.shutdown(socket.SHUT_WR)
            out["rest"] = c.recv(16)
    except OSError as e:
        out["error"] = f"{type(e).__name__}: {e}"


def sc_tcp_oob(ctx: LabContext) -> Outcome:
    """Urgent data both ways with the Linux kernel: our MSG_OOB byte is the one Linux takes out
    of line (its echo server returns the rest), and Linux's urgent byte is the one our
    recv(MSG_OOB) returns, the data around it read normally."""
    import threading

    r, s, c = _tcp_connect(ctx, K.KERNEL, K.ECHO_PORT)
    r.setsockopt_int(s, "SOL_SOCKET", "SO_RCVTIMEO", RECV_TIMEOUT_MS)
    up = r.record("send", f"{r.sname(s)}, \"abc!\", 4, MSG_OOB",
                  lambda: ctx.ws.send(s, b"abc!", 4, W.MSG_OOB))
    echo, e1 = r.recv(s)
    r.send(s, b"def")
    echo2, e2 = r.recv(s)
    r.closesocket(s)
    ws = ctx.ws
    lst, _ = r.socket()
    r.bind(lst, "0.0.0.0", OOB_PORT)
    r.record("listen", f"{r.sname(lst)}, 1", lambda: ws.listen(lst, 1))
    client: dict[str, Any] = {}
    th = threading.Thread(target=_kernel_oob_client, args=(OOB_PORT, client), name="lab-oob-client",
                          daemon=True)
    th.start()
    r.note("the kernel connects, sends \"xyz!\" with MSG_OOB, then \"more\"")
    a = r.record("accept", f"{r.sname(lst)}, NULL, NULL", lambda: ws.accept(lst, None, None),
                 fail="INVALID_SOCKET")
    acc = a.ret
    r.setsockopt_int(acc, "SOL_SOCKET", "SO_RCVTIMEO", RECV_TIMEOUT_MS)
    normal, n1 = r.recv(acc)
    obuf = bytearray(4)
    o = r.record("recv", f"{r.sname(acc)}, buf, 4, MSG_OOB", lambda: ws.recv(acc, obuf, 4, W.MSG_OOB),
                 detail=lambda n: repr(bytes(obuf[:n])))
    rest = bytearray()
    while len(rest) < 4:
        more, n2 = r.recv(acc)
        if not more:
            break
        rest += more
    r.closesocket(acc)
    r.closesocket(lst)
    th.join(K.IO_TIMEOUT_S)
    ok = (not up.failed and echo == b"abc" and echo2 == b"def" and normal == b"xyz"
          and o.ret == 1 and obuf[:1] == b"!" and bytes(rest) == b"more")
    got = ("Linux echoed \"abc\" (took '!' out of line); our MSG_OOB recv got Linux's '!'" if ok
           else f"unexpected: echo {echo!r} {echo2!r}, normal {normal!r}, oob {bytes(obuf[:1])!r}, "
                f"rest {bytes(rest)!r} {client.get('error', '')}")
    return Outcome(ok, got, r.calls, [up, e1, n1, o])
