"""UDP scenarios: echo, closed port, connected filtering, broadcast, and a DNS lookup over UDP."""

from __future__ import annotations

import time

from ustack import winsock as W

from .. import labkernel as K
from ..wscalls import WsRecorder
from .context import RECV_TIMEOUT_MS, UDP_TRIES, LabContext, Outcome


def _udp_socket(r: WsRecorder) -> int:
    s, call = r.socket(udp=True)
    if call.failed:
        raise RuntimeError(call.line())
    r.setsockopt_int(s, "SOL_SOCKET", "SO_RCVTIMEO", RECV_TIMEOUT_MS)
    return s



def sc_udp_echo(ctx: LabContext) -> Outcome:
    r = ctx.rec()
    s = _udp_socket(r)
    payload = b"hello from ustack"
    got = None
    for _ in range(UDP_TRIES):
        sent = r.sendto(s, payload, K.KERNEL, K.ECHO_PORT)
        data, frm, rc = r.recvfrom(s)
        if data is not None:
            got = (data, frm, sent, rc)
            break
    r.closesocket(s)
    if got is None:
        return Outcome(False, "no echo", r.calls, r.calls[-3:])
    data, frm, sent, rc = got
    ok = data == payload and frm == (K.KERNEL, K.ECHO_PORT)
    return Outcome(ok, f"echo of {len(data)} bytes from {frm[0]}:{frm[1]}", r.calls, [sent, rc])


def sc_udp_closed(ctx: LabContext) -> Outcome:
    r = ctx.rec()
    s = _udp_socket(r)
    err_call = None
    for _ in range(UDP_TRIES):
        sent = r.sendto(s, b"anyone there?", K.KERNEL, K.CLOSED_UDP_PORT)
        _, _, rc = r.recvfrom(s)
        if rc.failed and rc.error != W.WSAETIMEDOUT:
            err_call = rc
            break
    # The socket stays usable afterwards (item 56): an echo still works.
    ok_after = r.sendto(s, b"still alive", K.KERNEL, K.ECHO_PORT)
    data, _, after = r.recvfrom(s)
    r.closesocket(s)
    if err_call is None:
        return Outcome(False, "no error on recv", r.calls, r.calls[-4:])
    ok = err_call.error == W.WSAECONNRESET and data == b"still alive"
    return Outcome(ok, f"{err_call.error_name}, then the socket still works", r.calls,
                   [sent, err_call, ok_after, after])


def sc_udp_connected(ctx: LabContext) -> Outcome:
    r = ctx.rec()
    assert ctx.kernel is not None
    s = _udp_socket(r)
    c = r.connect(s, K.KERNEL, K.ECHO_PORT)
    name, gs = r.getsockname(s)
    if c.failed or name is None:
        return Outcome(False, "connect/getsockname failed", r.calls, r.calls[-2:])
    port = name[1]
    counters = ctx.host.stack.counters
    before = ctx.counter("udp.connected_filtered")
    filtered = False
    for _ in range(UDP_TRIES):  # (under the user's loss the stranger may be lost on the way)
        ctx.kernel.send_from_other_port(b"stranger", port)
        filtered = ctx.host.wait(lambda: counters.get("udp.connected_filtered") > before, 1.0)
        r.note(f"kernel sends b'stranger' from {K.KERNEL}:{K.OTHER_UDP_PORT} to port {port}: "
               + ("discarded" if filtered else "not discarded within 1 s"))
        stranger = r.calls[-1]
        if filtered:
            break
    payload = b"from the peer?"
    data = None
    for _ in range(UDP_TRIES):
        sent = r.send(s, payload)
        data, rc = r.recv(s)
        if data is not None:
            break
    # Whatever else is queued (a duplicate echo under --duplicate) must be the peer's too.
    others = []
    for _ in range(8):
        n, _fr = r.fionread(s)
        if not n:
            break
        more, _ = r.recv(s)
        others.append(more)
    r.closesocket(s)
    ok = filtered and data == payload and all(x == payload for x in others)
    got = ("stranger discarded (udp.connected_filtered), peer's echo received" if ok
           else f"filtered={filtered}, recv got {data!r}, then {others!r}")
    return Outcome(ok, got, r.calls, [c, stranger, sent, rc])


def sc_udp_broadcast(ctx: LabContext) -> Outcome:
    r = ctx.rec()
    s = _udp_socket(r)
    denied = r.sendto(s, b"to everyone", K.BROADCAST, K.ECHO_PORT)
    opt = r.setsockopt_int(s, "SOL_SOCKET", "SO_BROADCAST", 1)
    data = sent = rc = None
    for _ in range(UDP_TRIES):
        sent = r.sendto(s, b"to everyone", K.BROADCAST, K.ECHO_PORT)
        data, frm, rc = r.recvfrom(s)
        if data is not None:
            break
    r.closesocket(s)
    ok = denied.error == W.WSAEACCES and not opt.failed and sent is not None and not sent.failed \
        and data == b"to everyone"
    return Outcome(ok, f"without SO_BROADCAST {denied.error_name or denied.ret_text}; with it sent and echoed"
                   if ok else "unexpected", r.calls, [denied, opt, sent, rc])


def sc_dns_lookup(ctx: LabContext) -> Outcome:
    from ..labdns import run_dns_lookup

    t0 = time.monotonic()
    ok, got, calls = run_dns_lookup(ctx.host, ctx.ws, ctx.args.ifname, K.KERNEL)
    return Outcome(ok, got, calls, calls, seconds=time.monotonic() - t0)
