"""Classic Winsock application patterns end to end in the Simulator, on a clean and a lossy link:
a select() server, a WSAAsyncSelect message-loop server and a WSAEventSelect server, each
echoing for several blocking clients running as concurrent tasks."""

from __future__ import annotations

import pytest

from ustack.runtime.simulator import Simulator
from ustack.winsock import (
    FD_ACCEPT,
    FD_CLOSE,
    FD_CLOSE_BIT,
    FD_READ,
    FD_SET,
    INVALID_SOCKET,
    SOCKET_ERROR,
    TIMEVAL,
    WSA_WAIT_EVENT_0,
    WSA_WAIT_TIMEOUT,
    WSADATA,
    WSAEWOULDBLOCK,
    WSAGETSELECTERROR,
    WSAGETSELECTEVENT,
    WSANETWORKEVENTS,
    Winsock,
)

from .wsutil import ME, PEER, Net, sa, tcp

CLIENTS = 4
PORT = 8800


def _make(seed: int, lossy: bool) -> Net:
    sim = Simulator(seed)
    faults = "loss=3%,reorder=2%,seed=5" if lossy else None
    me = sim.add_host(f"{ME}/24", name="me", faults=faults)
    peer = sim.add_host(f"{PEER}/24", name="peer", faults=faults)
    ws, pws = Winsock(me), Winsock(peer)
    assert ws.WSAStartup(0x0202, WSADATA()) == 0 and pws.WSAStartup(0x0202, WSADATA()) == 0
    return Net(sim, me, peer, ws, pws)


def _client(net: Net, i: int) -> bytes:
    """A blocking client: connect, send a message in pieces, half-close, read the echo to EOF."""
    ws = net.ws
    s = tcp(ws)
    assert ws.connect(s, sa(PEER, PORT), 16) == 0, ws.WSAGetLastError()
    msg = (b"client %d " % i) * (300 + 500 * i)
    for k in range(0, len(msg), 1000):
        part = msg[k:k + 1000]
        assert ws.send(s, part, len(part), 0) == len(part), ws.WSAGetLastError()
    assert ws.shutdown(s, 1) == 0
    back = bytearray()
    buf = bytearray(8192)
    while (n := ws.recv(s, buf, len(buf), 0)) > 0:
        back += buf[:n]
    assert n == 0, ws.WSAGetLastError()
    assert ws.closesocket(s) == 0
    assert bytes(back) == msg
    return bytes(back)


def _nb_recv(ws: Winsock, s: int) -> bytes | None:
    """Nonblocking recv: data, b"" at EOF, None when it would block."""
    buf = bytearray(65536)
    n = ws.recv(s, buf, len(buf), 0)
    if n == SOCKET_ERROR:
        assert ws.WSAGetLastError() == WSAEWOULDBLOCK, ws.WSAGetLastError()
        return None
    return bytes(buf[:n])


def _nb_send_all(net: Net, s: int, data: bytes) -> None:
    """Send everything on a nonblocking socket (all-or-nothing sends, waiting while full)."""
    ws = net.pws
    while data:
        chunk = data[:4096]
        if ws.send(s, chunk, len(chunk), 0) == SOCKET_ERROR:
            assert ws.WSAGetLastError() == WSAEWOULDBLOCK
            w = FD_SET(s)
            assert ws.select(0, None, w, None, TIMEVAL(30, 0)) == 1
            continue
        data = data[len(chunk):]


def _listener(net: Net) -> int:
    pws = net.pws
    lst = tcp(pws)
    assert pws.bind(lst, sa("0.0.0.0", PORT), 16) == 0
    assert pws.listen(lst, 16) == 0
    return lst


def _select_server(net: Net) -> int:
    pws = net.pws
    lst = _listener(net)
    from .wsutil import set_nonblocking

    set_nonblocking(pws, lst)
    conns: dict[int, bytearray] = {}
    done = 0
    while done < CLIENTS:
        r = FD_SET(lst, *conns)
        n = pws.select(0, r, None, None, TIMEVAL(60, 0))
        assert n > 0, pws.WSAGetLastError()
        if lst in r:
            c = pws.accept(lst, None, None)
            if c != INVALID_SOCKET:
                set_nonblocking(pws, c)
                conns[c] = bytearray()
        for c in [c for c in r if c != lst]:
            data = _nb_recv(pws, c)
            if data is None:
                continue
            if data:
                conns[c] += data
                continue
            _nb_send_all(net, c, bytes(conns.pop(c)))
            assert pws.closesocket(c) == 0
            done += 1
    return done


def _async_server(net: Net) -> int:
    pws = net.pws
    lst = _listener(net)
    win = pws.create_window("server")
    WM = 0x0400 + 1  # noqa: N806
    assert pws.WSAAsyncSelect(lst, win, WM, FD_ACCEPT) == 0
    conns: dict[int, bytearray] = {}
    done = 0
    while done < CLIENTS:
        m = win.GetMessage(timeout_s=60)
        assert m is not None and m.message == WM
        s, ev, err = m.wParam, WSAGETSELECTEVENT(m.lParam), WSAGETSELECTERROR(m.lParam)
        assert err == 0, err
        if ev == FD_ACCEPT:
            c = pws.accept(s, None, None)
            if c != INVALID_SOCKET:
                conns[c] = bytearray()
                assert pws.WSAAsyncSelect(c, win, WM, FD_READ | FD_CLOSE) == 0
        elif ev == FD_READ and s in conns:
            data = _nb_recv(pws, s)
            if data:
                conns[s] += data
        elif ev == FD_CLOSE and s in conns:
            while data := _nb_recv(pws, s):  # FD_CLOSE: read what is left
                conns[s] += data
            assert pws.WSAAsyncSelect(s, win, 0, 0) == 0
            _nb_send_all(net, s, bytes(conns.pop(s)))
            assert pws.closesocket(s) == 0
            done += 1
    return done


def _event_server(net: Net) -> int:
    pws = net.pws
    lst = _listener(net)
    events = [pws.WSACreateEvent()]
    socks = [lst]
    assert pws.WSAEventSelect(lst, events[0], FD_ACCEPT) == 0
    buffers: dict[int, bytearray] = {}
    done = 0
    while done < CLIENTS:
        i = pws.WSAWaitForMultipleEvents(len(events), events, False, 60000, False)
        assert i != WSA_WAIT_TIMEOUT
        i -= WSA_WAIT_EVENT_0
        s, ev = socks[i], events[i]
        ne = WSANETWORKEVENTS()
        assert pws.WSAEnumNetworkEvents(s, ev, ne) == 0
        if ne.lNetworkEvents & FD_ACCEPT:
            c = pws.accept(s, None, None)
            if c != INVALID_SOCKET:
                e = pws.WSACreateEvent()
                assert pws.WSAEventSelect(c, e, FD_READ | FD_CLOSE) == 0
                socks.append(c)
                events.append(e)
                buffers[c] = bytearray()
        if ne.lNetworkEvents & FD_READ:
            data = _nb_recv(pws, s)
            if data:
                buffers[s] += data
        if ne.lNetworkEvents & FD_CLOSE:
            assert ne.iErrorCode[FD_CLOSE_BIT] == 0
            while data := _nb_recv(pws, s):
                buffers[s] += data
            assert pws.WSAEventSelect(s, None, 0) == 0
            _nb_send_all(net, s, bytes(buffers.pop(s)))
            assert pws.closesocket(s) == 0
            assert pws.WSACloseEvent(ev)
            del socks[i], events[i]
            done += 1
    return done


@pytest.mark.parametrize("lossy", [False, True], ids=["clean", "lossy"])
@pytest.mark.parametrize("server", [_select_server, _async_server, _event_server],
                         ids=["select", "asyncselect", "eventselect"])
def test_echo_server_patterns(server, lossy) -> None:
    """A Winsock server pattern echoes for concurrent blocking clients, byte for byte."""
    net = _make(seed=11, lossy=lossy)
    try:
        srv = net.sim.spawn(server, net, name="server")
        clients = [net.sim.spawn(_client, net, i, name=f"client{i}") for i in range(CLIENTS)]
        for c in clients:
            c.result(timeout_s=600)
        assert srv.result(timeout_s=600) == CLIENTS
        assert net.ws.callback_errors == [] and net.pws.callback_errors == []
        assert net.me.errors == 0 and net.peer.errors == 0
    finally:
        net.close()


def _fd_write_sender(net: Net, payload: bytes, chunk: int) -> int:
    """A WSAAsyncSelect bulk sender: on FD_WRITE, send chunks until WSAEWOULDBLOCK, then wait for the
    next FD_WRITE (the classic pattern; it relies on item 43's re-enabling rule)."""
    from ustack.winsock import FD_WRITE, SO_SNDBUF, SOL_SOCKET

    from .wsutil import setopt_int

    ws = net.ws
    s = tcp(ws)
    assert ws.connect(s, sa(PEER, PORT), 16) == 0
    assert setopt_int(ws, s, SOL_SOCKET, SO_SNDBUF, 16384) == 0
    win = ws.create_window("sender")
    assert ws.WSAAsyncSelect(s, win, 0x401, FD_WRITE) == 0
    off = 0
    messages = 0
    while off < len(payload):
        m = win.GetMessage(timeout_s=120)
        assert m is not None and WSAGETSELECTEVENT(m.lParam) == FD_WRITE, m
        messages += 1
        while off < len(payload):
            part = payload[off:off + chunk]
            r = ws.send(s, part, len(part), 0)
            if r == SOCKET_ERROR:
                assert ws.WSAGetLastError() == WSAEWOULDBLOCK
                break
            assert r == len(part)  # all or nothing (item 70)
            off += r
    assert ws.shutdown(s, 1) == 0
    assert ws.WSAAsyncSelect(s, win, 0, 0) == 0
    assert ws.closesocket(s) == 0
    return messages


@pytest.mark.parametrize("lossy", [False, True], ids=["clean", "lossy"])
def test_fd_write_driven_bulk_sender(lossy) -> None:
    """A sender driven by FD_WRITE pushes 1 MB in chunks larger than its SO_SNDBUF to a blocking
    reader: every byte arrives in order, and FD_WRITE came back after each WSAEWOULDBLOCK (no busy loop:
    far fewer messages than chunks)."""
    net = _make(seed=12, lossy=lossy)
    try:
        payload = bytes(range(251)) * 4178  # ~1 MB, a pattern that shows reordering
        lst = _listener(net)
        pws = net.pws

        def reader() -> bytes:
            c = pws.accept(lst, None, None)
            assert c != INVALID_SOCKET
            got = bytearray()
            buf = bytearray(65536)
            while (n := pws.recv(c, buf, len(buf), 0)) > 0:
                got += buf[:n]
            assert n == 0, pws.WSAGetLastError()
            return bytes(got)

        r = net.sim.spawn(reader, name="reader")
        msgs = net.sim.spawn(_fd_write_sender, net, payload, 60000, name="sender").result(timeout_s=600)
        assert r.result(timeout_s=600) == payload
        assert 1 < msgs < len(payload) // 60000 + 2
    finally:
        net.close()
