"""Sections E (listen, accept) and G (getsockname, getpeername)."""

from __future__ import annotations

import ctypes

from ustack.winsock import (
    FD_ACCEPT,
    FD_READ,
    FD_WRITE,
    INVALID_SOCKET,
    IPPROTO_TCP,
    SO_ACCEPTCONN,
    SO_KEEPALIVE,
    SO_RCVBUF,
    SOCKADDR_IN,
    SOCKET_ERROR,
    SOL_SOCKET,
    SOMAXCONN,
    TCP_NODELAY,
    WSAECONNREFUSED,
    WSAEFAULT,
    WSAEINVAL,
    WSAEISCONN,
    WSAENOTCONN,
    WSAEOPNOTSUPP,
    WSAEWOULDBLOCK,
    WSAGETSELECTEVENT,
)

from .wsutil import (
    ME,
    PEER,
    accept_in_task,
    bind,
    fail,
    getopt_int,
    listener,
    name_of,
    peer_of,
    sa,
    select1,
    set_nonblocking,
    setopt_int,
    tcp,
    udp,
)


def test_item_17_listen_checks(net) -> None:
    """listen on UDP -> WSAEOPNOTSUPP; unbound TCP -> WSAEINVAL (≠L: no auto-bind); again -> 0; connected
    -> WSAEISCONN."""
    ws = net.ws
    u = udp(ws)
    bind(ws, u)
    fail(ws, ws.listen(u, 5), WSAEOPNOTSUPP)
    t = tcp(ws)
    fail(ws, ws.listen(t, 5), WSAEINVAL)
    bind(ws, t, ME, 8200)
    assert ws.listen(t, 5) == 0
    assert ws.listen(t, SOMAXCONN) == 0
    assert getopt_int(ws, t, SOL_SOCKET, SO_ACCEPTCONN) == 1
    acc = accept_in_task(net, listener(net.pws, 8201))
    c = tcp(ws)
    assert ws.connect(c, sa(PEER, 8201), 16) == 0
    fail(ws, ws.listen(c, 5), WSAEISCONN)
    assert getopt_int(ws, c, SOL_SOCKET, SO_ACCEPTCONN) == 0
    acc.join()


def test_item_18_full_backlog_refuses(net) -> None:
    """≠L: when the accept queue is full, a further client gets WSAECONNREFUSED (RST), not a silent drop."""
    ws, pws = net.ws, net.pws
    lst = listener(pws, 8210, backlog=1)
    a = tcp(ws)
    assert ws.connect(a, sa(PEER, 8210), 16) == 0  # completes into the queue (nobody accepts)
    b = tcp(ws)
    t0 = net.me.now()
    fail(ws, ws.connect(b, sa(PEER, 8210), 16), WSAECONNREFUSED)
    assert net.me.now() - t0 < 3.0  # refused (with Windows' SYN retries), not timed out
    c = pws.accept(lst, None, None)
    assert c != INVALID_SOCKET
    d = tcp(ws)
    acc = accept_in_task(net, lst)
    assert ws.connect(d, sa(PEER, 8210), 16) == 0  # room again
    acc.join()


def test_item_20_accept_checks(net) -> None:
    """accept on a non-listening socket -> WSAEINVAL; nonblocking with none pending -> WSAEWOULDBLOCK;
    on UDP -> WSAEOPNOTSUPP; *addrlen too small -> WSAEFAULT."""
    ws = net.ws
    t = tcp(ws)
    bind(ws, t)
    fail(ws, ws.accept(t, None, None), WSAEINVAL)
    u = udp(ws)
    bind(ws, u)
    fail(ws, ws.accept(u, None, None), WSAEOPNOTSUPP)
    lst = listener(ws, 8220)
    set_nonblocking(ws, lst)
    fail(ws, ws.accept(lst, None, None), WSAEWOULDBLOCK)
    fail(ws, ws.accept(lst, SOCKADDR_IN(), ctypes.c_int(8)), WSAEFAULT)
    c = tcp(net.pws)
    assert net.pws.connect(c, sa(ME, 8220), 16) == 0
    out, n = SOCKADDR_IN(), ctypes.c_int(16)
    a = ws.accept(lst, out, n)
    assert a != INVALID_SOCKET and n.value == 16
    assert (out.addr, out.port) == (PEER, name_of(net.pws, c)[1])


def test_item_21_accepted_socket_inherits(net) -> None:
    """An accepted socket inherits the listener's options and its WSAAsyncSelect registration."""
    ws = net.ws
    lst = listener(ws, 8230)
    assert setopt_int(ws, lst, IPPROTO_TCP, TCP_NODELAY, 1) == 0
    assert setopt_int(ws, lst, SOL_SOCKET, SO_KEEPALIVE, 1) == 0
    assert setopt_int(ws, lst, SOL_SOCKET, SO_RCVBUF, 12345) == 0
    win = ws.create_window()
    assert ws.WSAAsyncSelect(lst, win, 0x500, FD_ACCEPT | FD_READ | FD_WRITE) == 0
    c = tcp(net.pws)
    assert net.pws.connect(c, sa(ME, 8230), 16) == 0
    msg = win.GetMessage(timeout_s=1.0)
    assert msg.wParam == lst and WSAGETSELECTEVENT(msg.lParam) == FD_ACCEPT
    a = ws.accept(lst, None, None)
    assert a != INVALID_SOCKET
    assert getopt_int(ws, a, IPPROTO_TCP, TCP_NODELAY) == 1
    assert getopt_int(ws, a, SOL_SOCKET, SO_KEEPALIVE) == 1
    assert getopt_int(ws, a, SOL_SOCKET, SO_RCVBUF) == 12345
    assert ws.stack_socket(a).nodelay is True and ws.stack_socket(a).keepalive is True
    msg = win.GetMessage(timeout_s=1.0)  # the new socket is registered: FD_WRITE for it
    assert msg.wParam == a and WSAGETSELECTEVENT(msg.lParam) == FD_WRITE
    assert net.pws.send(c, b"data", 4, 0) == 4
    msg = win.GetMessage(timeout_s=1.0)
    assert msg.wParam == a and WSAGETSELECTEVENT(msg.lParam) == FD_READ
    fail(ws, ws.ioctlsocket(a, 0x8004667E, ctypes.c_ulong(0)), WSAEINVAL)  # nonblocking, registered


def test_item_36_getsockname_checks(net) -> None:
    """≠L: getsockname on an unbound socket -> WSAEINVAL; a short namelen -> WSAEFAULT."""
    ws = net.ws
    for s in (tcp(ws), udp(ws)):
        fail(ws, ws.getsockname(s, SOCKADDR_IN(), ctypes.c_int(16)), WSAEINVAL)
        bind(ws, s, ME, 0)
        fail(ws, ws.getsockname(s, SOCKADDR_IN(), ctypes.c_int(15)), WSAEFAULT)
        fail(ws, ws.getsockname(s, None, ctypes.c_int(16)), WSAEFAULT)
        n = ctypes.c_int(32)
        out = (ctypes.c_char * 32)()
        assert ws.getsockname(s, out, n) == 0 and n.value == 16


def test_item_37_getpeername_checks(net) -> None:
    """getpeername when not connected -> WSAENOTCONN; namelen 0 -> WSAEFAULT."""
    ws = net.ws
    s = tcp(ws)
    fail(ws, ws.getpeername(s, SOCKADDR_IN(), ctypes.c_int(16)), WSAENOTCONN)
    fail(ws, ws.getpeername(s, None, None), WSAENOTCONN)  # the state is checked first
    fail(ws, ws.getpeername(s, SOCKADDR_IN(), ctypes.c_int(0)), WSAENOTCONN)
    acc = accept_in_task(net, listener(net.pws, 8240))
    assert ws.connect(s, sa(PEER, 8240), 16) == 0
    fail(ws, ws.getpeername(s, SOCKADDR_IN(), ctypes.c_int(0)), WSAEFAULT)
    fail(ws, ws.getpeername(s, SOCKADDR_IN(), ctypes.c_int(15)), WSAEFAULT)
    fail(ws, ws.getpeername(s, None, None), WSAEFAULT)
    fail(ws, ws.getpeername(listener(ws, 8241), SOCKADDR_IN(), ctypes.c_int(16)), WSAENOTCONN)
    assert peer_of(ws, s) == (PEER, 8240)
    acc.join()


def test_item_66_listener_with_pending_connection_is_readable(net) -> None:
    """A listener with a pending connection is readable in select."""
    ws = net.ws
    lst = listener(ws, 8250)
    assert select1(ws, lst) == (False, False, False)
    c = tcp(net.pws)
    assert net.pws.connect(c, sa(ME, 8250), 16) == 0
    assert select1(ws, lst) == (True, False, False)
    assert ws.accept(lst, None, None) != SOCKET_ERROR
    assert select1(ws, lst) == (False, False, False)


def test_item_21_accepted_socket_inherits_event_select(net) -> None:
    """An accepted socket inherits the listener's WSAEventSelect registration (same event object)."""
    from ustack.winsock import WSA_WAIT_EVENT_0, WSANETWORKEVENTS

    ws = net.ws
    lst = listener(ws, 8260)
    ev = ws.WSACreateEvent()
    assert ws.WSAEventSelect(lst, ev, FD_ACCEPT | FD_READ) == 0
    c = tcp(net.pws)
    assert net.pws.connect(c, sa(ME, 8260), 16) == 0
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 1000, False) == WSA_WAIT_EVENT_0
    ne = WSANETWORKEVENTS()
    assert ws.WSAEnumNetworkEvents(lst, ev, ne) == 0 and ne.lNetworkEvents == FD_ACCEPT
    a = ws.accept(lst, None, None)
    assert a != INVALID_SOCKET
    assert net.pws.send(c, b"hi", 2, 0) == 2
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 1000, False) == WSA_WAIT_EVENT_0
    assert ws.WSAEnumNetworkEvents(a, ev, ne) == 0 and ne.lNetworkEvents == FD_READ
