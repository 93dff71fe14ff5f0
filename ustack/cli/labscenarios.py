"""The scenarios of `ustack lab`, each a short Winsock program with the result it must give.

Every scenario gets a `LabContext` (the host, its Winsock, the kernel side) and returns an
`Outcome`: passed or not, what it got in a few words, the Winsock calls it made (recorded by
`WsRecorder`, so the view shows them with return values, error names and durations) and the
calls worth showing on its one line.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ustack import winsock as W

from . import labkernel as K
from . import netns
from .wscalls import Call, WsRecorder, format_duration

# The lab's short SYN schedule: first retry after 0.25 s, doubling, 2 retries: gives up at 1.75 s.
# (Windows: 3 s initial RTO, 2 retries, about 21 s; the simulator tests that one.)
LAB_SYN_RTO_S = 0.25
LAB_SYN_RETRIES = 2
RECV_TIMEOUT_MS = 2000
UDP_TRIES = 3  # UDP scenarios retry when the tour runs under the user's loss
CHUNK = 64 * 1024


def syn_schedule(rto: float, retries: int) -> tuple[list[float], float]:
    """Times of each SYN after the first and the moment connect gives up."""
    times, t = [], 0.0
    for i in range(retries):
        t += rto * (2 ** i)
        times.append(t)
    return times, t + rto * (2 ** retries)


def syn_schedule_text(rto: float = LAB_SYN_RTO_S, retries: int = LAB_SYN_RETRIES) -> str:
    times, give_up = syn_schedule(rto, retries)
    shown = ", ".join(f"{t:g} s" for t in [0.0, *times])
    return f"SYNs at {shown}; gives up at {give_up:g} s"


@dataclass
class Outcome:
    passed: bool
    got: str
    calls: list[Call] = field(default_factory=list)
    key: list[Call] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Scenario:
    id: str
    title: str
    expected: str
    fn: Callable[[LabContext], Outcome]


@dataclass
class LabContext:
    args: argparse.Namespace
    host: Any
    sink: Any
    user_faults: Any
    transfer_faults: Any
    transfer_bytes: int
    pcap: str
    kernel: K.KernelSide | None = None
    ws: Any = None
    last_recorder: WsRecorder | None = None
    step: Callable[[str, int, int], None] = lambda name, done, total: None  # long-step progress
    counters: dict[str, int] = field(default_factory=dict)  # the stack's, at the end of the tour
    faults_done: dict[str, int] = field(default_factory=dict)  # what the FaultInjector did

    # -- set-up / teardown ----------------------------------------------------------------------
    def configure_tcp(self) -> None:
        tcp = getattr(self.host.stack, "tcp", None)
        if tcp is None:
            return
        cfg = getattr(tcp, "config", None)

        def short_syn() -> None:
            cfg.syn_rto_s = LAB_SYN_RTO_S
            cfg.syn_retries = LAB_SYN_RETRIES
        if cfg is not None:
            self.host.call(short_syn)

    def start_winsock(self) -> None:
        from ustack.winsock import WSADATA, Winsock

        self.ws = Winsock(self.host)
        if self.ws.WSAStartup(0x0202, WSADATA()) != 0:
            raise RuntimeError("WSAStartup failed")

    def snapshot(self) -> None:
        """Keep the stack's counters and the injector's statistics for the report."""
        try:
            self.counters = dict(self.host.call(self.host.stack.counters.snapshot))
            self.faults_done = self.fault_stats()
        except Exception:  # noqa: BLE001 - a report without counters is still a report
            pass

    def close(self) -> None:
        try:
            if self.ws is not None:
                self.ws.WSACleanup()
        except Exception:  # noqa: BLE001 - teardown goes on whatever happens
            pass
        if self.kernel is not None:
            self.kernel.close()
        try:
            self.host.close()
        finally:
            self.sink.close()

    def describe(self) -> dict[str, Any]:
        a = self.args
        return {"device": "tap" if a.tap else "tun", "ifname": a.ifname, "kernel": f"{K.KERNEL}/{K.PREFIX}",
                "ustack": f"{K.USTACK}/{K.PREFIX}", "mtu": a.mtu,
                "faults": self.user_faults.describe() if self.user_faults is not None else None,
                "syn_schedule": syn_schedule_text()}

    # -- helpers for scenarios ------------------------------------------------------------------
    def rec(self) -> WsRecorder:
        self.last_recorder = WsRecorder(self.ws)
        return self.last_recorder

    def need_tcp(self) -> None:
        if getattr(self.host.stack, "tcp", None) is None:
            raise RuntimeError("this stack has no TCP layer (ustack.tcp.TcpLayer missing)")

    def injector(self) -> Any:
        from ustack.drivers import FaultInjector

        dev = self.host.device
        for _ in range(8):
            if isinstance(dev, FaultInjector):
                return dev
            dev = getattr(dev, "inner", None)
            if dev is None:
                break
        return None

    def fault_stats(self) -> dict[str, int]:
        inj = self.injector()
        return dict(inj.stats) if inj is not None else {}

    def frames_dropped(self) -> int:
        """Frames the fault injector lost so far, every cause."""
        inj = self.injector()
        return self.host.call(lambda: inj.frames_dropped) if inj is not None else 0

    def counter(self, name: str) -> int:
        c = self.host.stack.counters
        return int(self.host.call(lambda: c.get(name)))

    def frames_sent(self) -> int:
        """What the stack itself has emitted so far (IPv4 packets and ARP requests), counted
        before any fault injection, so a dropped frame still counts as sent."""
        snap = self.host.call(self.host.stack.counters.snapshot)
        return int(snap.get("ipv4.out", 0)) + int(snap.get("arp.requests_out", 0))


def _udp_socket(r: WsRecorder) -> int:
    s, call = r.socket(udp=True)
    if call.failed:
        raise RuntimeError(call.line())
    r.setsockopt_int(s, "SOL_SOCKET", "SO_RCVTIMEO", RECV_TIMEOUT_MS)
    return s


# == scenarios ====================================================================================
def sc_ping(ctx: LabContext) -> Outcome:
    t0 = time.monotonic()
    res = K.ping(K.USTACK, count=3, interval_s=0.2, wait_s=2.0)
    dt = time.monotonic() - t0
    rtt = res.rtt_text()
    call = Call("ping", f"{K.USTACK}, {res.sent} echo requests from the kernel", res.received,
                f"{res.received}/{res.sent} replies", seconds=dt,
                detail=f"rtt min/avg/max {rtt}" if rtt else "")
    # Under injected loss a lost echo is expected; one reply still proves the path.
    need = 3 if ctx.user_faults is None else 1
    return Outcome(res.received >= need, f"{res.received}/3 echo replies", [call], [call],
                   {"received": res.received, "rtt": rtt})


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


# -- overlapped I/O and completion ports (docs/winsock-overlapped.md) --------------------------------
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


def sc_dns_lookup(ctx: LabContext) -> Outcome:
    from .labdns import run_dns_lookup

    t0 = time.monotonic()
    ok, got, calls = run_dns_lookup(ctx.host, ctx.ws, ctx.args.ifname, K.KERNEL)
    return Outcome(ok, got, calls, calls, seconds=time.monotonic() - t0)


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


# -- bulk transfer under loss -----------------------------------------------------------------------
def _with_transfer_faults(ctx: LabContext) -> tuple[Any, Any]:
    """Turn on the transfer's loss (unless the whole tour runs under the user's faults)."""
    inj = ctx.injector()
    if inj is None or ctx.user_faults is not None:
        return inj, None
    old = inj.config
    new = replace(old, loss=ctx.transfer_faults.loss)
    ctx.host.call(inj.set_config, new)
    return inj, old


def _restore_faults(ctx: LabContext, inj: Any, old: Any) -> None:
    if inj is not None and old is not None:
        ctx.host.call(inj.set_config, old)


def _tcp_retransmits(ctx: LabContext) -> int:
    """Segments ustack's TCP has retransmitted so far (`tcp.retransmitted_segments`, counted
    like the kernel's RetransSegs, so the upload and download figures compare)."""
    snap = ctx.host.call(ctx.host.stack.counters.snapshot)
    return int(snap.get("tcp.retransmitted_segments", 0))


def sc_transfer(ctx: LabContext) -> Outcome:
    ctx.need_tcp()
    assert ctx.kernel is not None
    n = ctx.transfer_bytes
    expected_sha = K.pattern_sha256(n)
    from .services import http_body_bytes

    inj, old = _with_transfer_faults(ctx)
    drops0 = ctx.frames_dropped()
    r = ctx.rec()
    info: dict[str, Any] = {"bytes": n}
    try:
        # upload: ustack -> kernel sink
        rt0 = _tcp_retransmits(ctx)
        s, _ = r.socket()
        c = r.connect(s, K.KERNEL, K.SINK_PORT)
        if c.failed:
            return Outcome(False, f"upload connect failed: {c.error_name}", r.calls, [c])
        t0 = time.monotonic()
        sent = 0
        block = http_body_bytes(0, CHUNK)
        while sent < n:
            if sent % (16 * CHUNK) == 0:
                ctx.step("upload", sent, n)
            k = min(CHUNK, n - sent)
            chunk = block[:k] if sent % 256 == 0 else http_body_bytes(sent, k)
            rv = ctx.ws.send(s, chunk, k, 0)
            if rv == -1:
                break
            sent += rv
        up_call = Call("send", f"{r.sname(s)}, <{n} bytes in {CHUNK // 1024} KB calls>", sent, str(sent),
                       seconds=time.monotonic() - t0)
        if sent < n:
            err = ctx.ws.WSAGetLastError()
            from ustack.winsock import wsa_name

            up_call.error, up_call.error_name = err, wsa_name(err)
        r.calls.append(up_call)
        r.shutdown(s, "SD_SEND")
        try:
            res = ctx.kernel.sink_results.get(timeout=60)
        except Exception:  # noqa: BLE001
            res = None
        up_s = time.monotonic() - t0
        r.closesocket(s)
        up_rt = _tcp_retransmits(ctx) - rt0
        up_ok = res is not None and res.nbytes == n and res.sha256 == expected_sha
        info["upload"] = {"seconds": round(up_s, 3), "mbps": round(n * 8 / up_s / 1e6, 1),
                          "ustack_retransmits": up_rt, "kernel_got": res.nbytes if res else None,
                          "sha256_ok": bool(res and res.sha256 == expected_sha)}
        # download: kernel source -> ustack
        k_rt0 = netns.snmp_counter("Tcp", "RetransSegs") or 0
        s2, _ = r.socket()
        c2 = r.connect(s2, K.KERNEL, K.SOURCE_PORT)
        if c2.failed:
            return Outcome(False, f"download connect failed: {c2.error_name}", r.calls, [c, c2], info)
        t1 = time.monotonic()
        h = hashlib.sha256()
        got = 0
        deadline = t1 + 120
        while time.monotonic() < deadline:
            data, _ = r.recv(s2, 1 << 18, quiet=True)
            if not data:
                break
            h.update(data)
            got += len(data)
            ctx.step("download", got, n)
        down_s = time.monotonic() - t1
        down_call = Call("recv", f"{r.sname(s2)}, <until 0>", got, f"{got} bytes total", seconds=down_s)
        r.calls.append(down_call)
        r.closesocket(s2)
        k_rt = (netns.snmp_counter("Tcp", "RetransSegs") or 0) - k_rt0
        down_ok = got == n and h.hexdigest() == expected_sha
        info["download"] = {"seconds": round(down_s, 3), "mbps": round(n * 8 / down_s / 1e6, 1),
                            "kernel_retransmits": k_rt, "sha256_ok": h.hexdigest() == expected_sha}
    finally:
        _restore_faults(ctx, inj, old)
    info["frames_dropped_by_faults"] = ctx.frames_dropped() - drops0
    link = ctx.user_faults.link if ctx.user_faults else ctx.transfer_faults
    info["loss"] = link.loss_process().loss_rate()
    u, d = info["upload"], info["download"]
    got_text = (f"{n / 1e6:g} MB up {u['mbps']} Mbit/s ({u['ustack_retransmits']} retransmitted "
                f"segs), down {d['mbps']} Mbit/s ({d['kernel_retransmits']} kernel retransmitted segs), "
                f"{info['frames_dropped_by_faults']} frames dropped at {info['loss']:.0%} loss, sha256 "
                f"{'ok' if up_ok and down_ok else 'MISMATCH'}")
    return Outcome(up_ok and down_ok, got_text, r.calls, [c, up_call, c2, down_call], info)


SCENARIOS: list[Scenario] = [
    Scenario("ping", "kernel ping -> ustack", "3/3 echo replies", sc_ping),
    Scenario("udp-echo", "UDP echo", "the datagram comes back", sc_udp_echo),
    Scenario("udp-closed-port", "UDP to a closed port", "WSAECONNRESET on the next recv", sc_udp_closed),
    Scenario("udp-connected-filter", "connected UDP filters other sources", "only the peer's datagram",
             sc_udp_connected),
    Scenario("udp-broadcast", "UDP broadcast without / with SO_BROADCAST", "WSAEACCES, then sent",
             sc_udp_broadcast),
    Scenario("tcp-connect", "TCP connect", "0, ephemeral port 49152-65535", sc_tcp_connect),
    Scenario("tcp-refused", "TCP connect to a closed port", "WSAECONNREFUSED", sc_tcp_refused),
    Scenario("tcp-timeout", "TCP connect into a blackhole", "WSAETIMEDOUT", sc_tcp_timeout),
    Scenario("tcp-host-unreachable", "TCP connect, ICMP host unreachable", "WSAEHOSTUNREACH",
             sc_tcp_host_unreach),
    Scenario("tcp-net-unreachable", "TCP connect with no route", "WSAENETUNREACH, nothing sent",
             sc_tcp_net_unreach),
    Scenario("nonblocking-select", "nonblocking connect + select", "WSAEWOULDBLOCK, then writable",
             sc_nb_select),
    Scenario("nonblocking-async", "nonblocking connect + WSAAsyncSelect", "FD_CONNECT message, error 0",
             sc_nb_async),
    Scenario("nonblocking-event", "nonblocking connect + WSAEventSelect", "event signalled, FD_CONNECT",
             sc_nb_event),
    Scenario("tcp-oob", "urgent data both ways with Linux", "the byte before the urgent pointer, out of line",
             sc_tcp_oob),
    Scenario("overlapped", "ConnectEx + overlapped WSARecv", "pending, then the echo via events",
             sc_overlapped),
    Scenario("iocp-echo", "echo server on a completion port (AcceptEx)", "every byte echoed",
             sc_iocp_echo),
    Scenario("dns-lookup", "gethostbyname over ustack's UDP (dnsmasq on the kernel side)",
             "the address; WSAHOST_NOT_FOUND for an unknown name", sc_dns_lookup),
    Scenario("transfer", "bulk transfer both ways under loss", "every byte, in order (SHA-256)", sc_transfer),
]
