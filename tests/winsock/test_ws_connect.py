"""Sections 0 and F: TCP connect, its outcomes, and the connect page's error list code by code."""

from __future__ import annotations

import struct

from ustack.core.stack import Stack, StackConfig
from ustack.runtime.host import attach_tcp
from ustack.winsock import (
    FD_SET,
    SO_ERROR,
    SO_REUSEADDR,
    SOCKADDR_IN,
    SOL_SOCKET,
    TIMEVAL,
    WSADATA,
    WSAEADDRINUSE,
    WSAEADDRNOTAVAIL,
    WSAEAFNOSUPPORT,
    WSAEALREADY,
    WSAECONNREFUSED,
    WSAEFAULT,
    WSAEHOSTUNREACH,
    WSAEINPROGRESS,
    WSAEINTR,
    WSAEINVAL,
    WSAEISCONN,
    WSAENETDOWN,
    WSAENETUNREACH,
    WSAENOBUFS,
    WSAENOTCONN,
    WSAENOTSOCK,
    WSAETIMEDOUT,
    WSAEWOULDBLOCK,
    WSANOTINITIALISED,
    Winsock,
)
from ustack.wire.icmp import DEST_UNREACH, HOST_UNREACH, IcmpMessage
from ustack.wire.ipv4 import Ipv4Packet, ip_int

from .wsutil import (
    ME,
    OFFNET,
    PEER,
    SILENT,
    Net,
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
)


def _connect(ws: Winsock, s: int, addr: str, port: int) -> int:
    return ws.connect(s, sa(addr, port), 16)


# -- the connect page's error list, code by code --------------------------------------------------
def test_item_0_connect_error_WSANOTINITIALISED(net) -> None:
    """connect before WSAStartup (or after the last WSACleanup) -> WSANOTINITIALISED."""
    ws = net.ws
    s = tcp(ws)
    assert ws.WSACleanup() == 0
    fail(ws, _connect(ws, s, PEER, 80), WSANOTINITIALISED)
    fresh = Winsock(net.me)
    fail(fresh, _connect(fresh, 0x104, PEER, 80), WSANOTINITIALISED)


def test_item_0_connect_error_WSAENETDOWN(net) -> None:
    """connect after the host went down -> WSAENETDOWN; a blocking connect pending when it goes down ->
    WSAENETDOWN."""
    ws = net.ws
    s = tcp(ws)
    late = tcp(ws)

    def pull_the_plug() -> None:
        net.me.sleep(1.0)
        net.me.close()

    task = net.sim.spawn(pull_the_plug)
    fail(ws, _connect(ws, s, SILENT, 80), WSAENETDOWN)
    task.join()
    fail(ws, _connect(ws, late, PEER, 80), WSAENETDOWN)


def test_item_0_connect_error_WSAEADDRINUSE(net) -> None:
    """connect whose local 4-tuple is already in use -> WSAEADDRINUSE (two SO_REUSEADDR sockets on one
    port, same peer)."""
    ws = net.ws
    lst = listener(net.pws, 8000)
    acc = accept_in_task(net, lst, 1)
    a, b = tcp(ws), tcp(ws)
    for s in (a, b):
        assert setopt_int(ws, s, SOL_SOCKET, SO_REUSEADDR, 1) == 0
        bind(ws, s, ME, 40000)
    assert _connect(ws, a, PEER, 8000) == 0
    fail(ws, _connect(ws, b, PEER, 8000), WSAEADDRINUSE)
    acc.join()


def test_item_0_connect_error_WSAEINTR(net) -> None:
    """A blocking connect fails with WSAEINTR when another thread closes the socket (2.2) ..."""
    ws = net.ws
    s = tcp(ws)

    def closer() -> None:
        net.me.sleep(2.0)
        assert ws.closesocket(s) == 0

    task = net.sim.spawn(closer)
    t0 = net.me.now()
    fail(ws, _connect(ws, s, SILENT, 80), WSAEINTR)
    assert 2.0 <= net.me.now() - t0 < 2.1
    task.join()


def test_item_0_connect_error_WSAEINTR_cancel_blocking_call(net11) -> None:
    """... and, for Winsock 1.1, when WSACancelBlockingCall cancels it."""
    ws = net11.ws
    s = tcp(ws)
    ws.WSASetBlockingHook(lambda: ws.WSACancelBlockingCall() or False)
    fail(ws, _connect(ws, s, SILENT, 80), WSAEINTR)


def test_item_0_connect_error_WSAEINPROGRESS(net11) -> None:
    """connect while a Winsock 1.1 blocking call is in progress in the thread -> WSAEINPROGRESS."""
    ws = net11.ws
    s, other = tcp(ws), tcp(ws)
    seen: list[int] = []

    def hook() -> bool:
        if not seen:
            seen.append(_connect(ws, other, PEER, 81))
            seen.append(ws.WSAGetLastError())
            ws.WSACancelBlockingCall()
        return False

    ws.WSASetBlockingHook(hook)
    fail(ws, _connect(ws, s, SILENT, 80), WSAEINTR)
    assert seen == [-1, WSAEINPROGRESS]


def test_item_0_connect_error_WSAEALREADY(net) -> None:
    """A second connect while a nonblocking one is pending -> WSAEALREADY."""
    ws = net.ws
    s = tcp(ws)
    set_nonblocking(ws, s)
    fail(ws, _connect(ws, s, SILENT, 80), WSAEWOULDBLOCK)
    fail(ws, _connect(ws, s, SILENT, 80), WSAEALREADY)


def test_item_0_connect_error_WSAEADDRNOTAVAIL(net) -> None:
    """connect to the all-zero address -> WSAEADDRNOTAVAIL."""
    ws = net.ws
    fail(ws, _connect(ws, tcp(ws), "0.0.0.0", 80), WSAEADDRNOTAVAIL)


def test_item_0_connect_error_WSAEAFNOSUPPORT(net) -> None:
    """connect with a name of another family -> WSAEAFNOSUPPORT."""
    ws = net.ws
    fail(ws, ws.connect(tcp(ws), SOCKADDR_IN.make(PEER, 80, family=23), 16), WSAEAFNOSUPPORT)


def test_item_0_connect_error_WSAECONNREFUSED(net) -> None:
    """connect to a closed port (RST) -> WSAECONNREFUSED; the same socket may connect again."""
    ws = net.ws
    s = tcp(ws)
    fail(ws, _connect(ws, s, PEER, 8010), WSAECONNREFUSED)
    lst = listener(net.pws, 8010)
    acc = accept_in_task(net, lst)
    assert _connect(ws, s, PEER, 8010) == 0
    acc.join()


def test_item_0_connect_error_WSAEFAULT(net) -> None:
    """connect with a NULL name, a namelen below 16, or a namelen beyond the buffer -> WSAEFAULT."""
    ws = net.ws
    s = tcp(ws)
    fail(ws, ws.connect(s, None, 16), WSAEFAULT)
    fail(ws, ws.connect(s, sa(PEER, 80), 8), WSAEFAULT)
    fail(ws, ws.connect(s, bytes(sa(PEER, 80))[:10], 16), WSAEFAULT)


def test_item_0_connect_error_WSAEINVAL(net) -> None:
    """connect on a listening socket -> WSAEINVAL."""
    ws = net.ws
    fail(ws, _connect(ws, listener(ws, 8020), PEER, 80), WSAEINVAL)


def test_item_0_connect_error_WSAEISCONN(net) -> None:
    """connect on a connected socket -> WSAEISCONN."""
    ws = net.ws
    acc = accept_in_task(net, listener(net.pws, 8030))
    s = tcp(ws)
    assert _connect(ws, s, PEER, 8030) == 0
    fail(ws, _connect(ws, s, PEER, 8030), WSAEISCONN)
    acc.join()


def test_item_0_connect_error_WSAENETUNREACH(net) -> None:
    """connect to a network with no route -> WSAENETUNREACH (nothing is sent); the socket may connect
    again."""
    ws = net.ws
    s = tcp(ws)
    sent = net.me.stack.counters.get("ipv4.out")
    fail(ws, _connect(ws, s, OFFNET, 80), WSAENETUNREACH)
    assert net.me.stack.counters.get("ipv4.out") == sent
    acc = accept_in_task(net, listener(net.pws, 8040))
    assert _connect(ws, s, PEER, 8040) == 0
    acc.join()


def test_item_0_connect_error_WSAENOBUFS() -> None:
    """connect on an unbound socket when no ephemeral port is left -> WSAENOBUFS."""
    from ustack.runtime.simulator import Simulator

    sim = Simulator(5)
    try:
        stack = Stack(StackConfig(addr=f"{ME}/24", seed=5, ephemeral_low=50000, ephemeral_high=50001))
        attach_tcp(stack, True)
        me = sim.add_host(f"{ME}/24", name="me", stack=stack)
        peer = sim.add_host(f"{PEER}/24", name="peer")
        ws, pws = Winsock(me), Winsock(peer)
        assert ws.WSAStartup(0x0202, WSADATA()) == 0 and pws.WSAStartup(0x0202, WSADATA()) == 0
        net = Net(sim, me, peer, ws, pws)
        acc = accept_in_task(net, listener(pws, 8050), 2)
        for _ in range(2):
            assert _connect(ws, tcp(ws), PEER, 8050) == 0
        acc.join()
        fail(ws, _connect(ws, tcp(ws), PEER, 8050), WSAENOBUFS)
    finally:
        sim.close()


def test_item_0_connect_error_WSAENOTSOCK(net) -> None:
    """connect on something that is not a socket -> WSAENOTSOCK."""
    ws = net.ws
    fail(ws, _connect(ws, 0x5678, PEER, 80), WSAENOTSOCK)


def test_item_0_connect_error_WSAETIMEDOUT(net) -> None:
    """connect to a silent address -> WSAETIMEDOUT after SYN + 2 retries (3 s doubling: 21 s of virtual
    time)."""
    ws = net.ws
    s = tcp(ws)
    t0 = net.me.now()
    fail(ws, _connect(ws, s, SILENT, 80), WSAETIMEDOUT)
    assert abs(net.me.now() - t0 - 21.0) < 0.01
    acc = accept_in_task(net, listener(net.pws, 8060))
    assert _connect(ws, s, PEER, 8060) == 0  # the page: after WSAETIMEDOUT the socket may connect again
    acc.join()


def test_item_0_connect_error_WSAEWOULDBLOCK(net) -> None:
    """connect on a nonblocking socket -> WSAEWOULDBLOCK."""
    ws = net.ws
    s = tcp(ws)
    set_nonblocking(ws, s)
    fail(ws, _connect(ws, s, PEER, 80), WSAEWOULDBLOCK)


# -- section F ----------------------------------------------------------------------------------
def test_item_23_blocking_connect_success(net) -> None:
    """Blocking connect -> 0; getsockname shows the ephemeral port, getpeername the target."""
    ws = net.ws
    acc = accept_in_task(net, listener(net.pws, 8100))
    s = tcp(ws)
    assert _connect(ws, s, PEER, 8100) == 0
    addr, port = name_of(ws, s)
    assert addr == ME and 49152 <= port <= 65535
    assert peer_of(ws, s) == (PEER, 8100)
    (c,) = acc.result()
    assert peer_of(net.pws, c) == (ME, port)


def test_item_24_refused_sets_exceptfds(net) -> None:
    """Refused -> WSAECONNREFUSED; select with zero timeout then lists the socket in exceptfds."""
    ws = net.ws
    s = tcp(ws)
    fail(ws, _connect(ws, s, PEER, 8110), WSAECONNREFUSED)
    assert select1(ws, s) == (False, False, True)


def test_item_25_syn_retried_after_rst(net) -> None:
    """≠L: the SYN is repeated twice, 1 s apart, after a RST before WSAECONNREFUSED (~2 s, as the
    reference measures on Windows' loopback)."""
    ws = net.ws
    s = tcp(ws)
    t0 = net.me.now()
    fail(ws, _connect(ws, s, PEER, 8120), WSAECONNREFUSED)
    assert abs(net.me.now() - t0 - 2.0) < 0.01
    assert net.me.stack.counters.get("tcp.syn_rst_retry") == 2


def test_item_25_interval_per_winsock() -> None:
    """Winsock(syn_rst_retry_s=0.5) sets the wait before each repeated SYN on its sockets: refusal after
    ~1 s; other hosts' Winsocks keep the default 1 s (refusal after ~2 s)."""
    from .wsutil import make_net

    n = make_net(seed=6, syn_rst_retry_s=0.5)
    try:
        s = tcp(n.ws)
        t0 = n.me.now()
        fail(n.ws, _connect(n.ws, s, PEER, 8122), WSAECONNREFUSED)
        assert abs(n.me.now() - t0 - 1.0) < 0.01
        assert n.me.stack.counters.get("tcp.syn_rst_retry") == 2
        p = tcp(n.pws)
        t0 = n.peer.now()
        fail(n.pws, _connect(n.pws, p, ME, 8123), WSAECONNREFUSED)
        assert abs(n.peer.now() - t0 - 2.0) < 0.01
    finally:
        n.close()


def test_item_25_no_retry_when_configured_off() -> None:
    """With syn_rst_retries=0 (Linux-like), refusal is reported at once."""
    from .wsutil import make_net

    n = make_net(seed=4, syn_rst_retries=0)
    try:
        s = tcp(n.ws)
        t0 = n.me.now()
        fail(n.ws, _connect(n.ws, s, PEER, 8121), WSAECONNREFUSED)
        assert n.me.now() - t0 < 0.01
    finally:
        n.close()


def test_item_26_nonblocking_connect_would_block_even_locally(net) -> None:
    """Nonblocking connect -> WSAEWOULDBLOCK, even to a listener on the same host."""
    ws = net.ws
    lst = listener(ws, 8130, addr=ME)
    s = tcp(ws)
    set_nonblocking(ws, s)
    fail(ws, _connect(ws, s, ME, 8130), WSAEWOULDBLOCK)
    assert select1(ws, s, timeout=5.0) == (False, True, False)
    a = ws.accept(lst, None, None)
    assert a != -1 and peer_of(ws, a) == name_of(ws, s)


def test_item_27_second_connect_while_pending(net, net11) -> None:
    """Second connect while pending -> WSAEALREADY; Winsock 1.1 applications get WSAEINVAL."""
    for n, code in ((net, WSAEALREADY), (net11, WSAEINVAL)):
        ws = n.ws
        s = tcp(ws)
        set_nonblocking(ws, s)
        fail(ws, _connect(ws, s, SILENT, 80), WSAEWOULDBLOCK)
        fail(ws, _connect(ws, s, SILENT, 80), code)


def test_item_28_pending_connect_state(net) -> None:
    """While pending: getsockname succeeds with a nonzero port; send/recv -> WSAENOTCONN;
    getpeername already names the target (sock.c test_connecting_socket)."""
    ws = net.ws
    s = tcp(ws)
    set_nonblocking(ws, s)
    fail(ws, _connect(ws, s, SILENT, 80), WSAEWOULDBLOCK)
    addr, port = name_of(ws, s)
    assert addr == ME and port != 0
    fail(ws, ws.send(s, b"x", 1, 0), WSAENOTCONN)
    fail(ws, ws.recv(s, bytearray(4), 4, 0), WSAENOTCONN)
    assert peer_of(ws, s) == (SILENT, 80)


def test_item_29_nonblocking_outcome_success(net) -> None:
    """Nonblocking success -> writefds (not exceptfds), SO_ERROR 0."""
    ws = net.ws
    acc = accept_in_task(net, listener(net.pws, 8140))
    s = tcp(ws)
    set_nonblocking(ws, s)
    fail(ws, _connect(ws, s, PEER, 8140), WSAEWOULDBLOCK)
    w, x = FD_SET(s), FD_SET(s)
    assert ws.select(0, None, w, x, TIMEVAL(5, 0)) == 1
    assert s in w and s not in x
    assert getopt_int(ws, s, SOL_SOCKET, SO_ERROR) == 0
    acc.join()


def test_item_29_nonblocking_outcome_failure(net) -> None:
    """≠L: failure -> exceptfds only, repeatedly; SO_ERROR is the code and reading it does not clear it."""
    ws = net.ws
    s = tcp(ws)
    set_nonblocking(ws, s)
    fail(ws, _connect(ws, s, PEER, 8150), WSAEWOULDBLOCK)
    r, w, x = FD_SET(s), FD_SET(s), FD_SET(s)
    assert ws.select(0, r, w, x, TIMEVAL(5, 0)) == 1
    assert (s in r, s in w, s in x) == (False, False, True)
    for _ in range(3):
        assert select1(ws, s) == (False, False, True)
        assert getopt_int(ws, s, SOL_SOCKET, SO_ERROR) == WSAECONNREFUSED


def test_item_30_connect_again_after_failed_nonblocking(net) -> None:
    """connect again after a failed nonblocking attempt -> WSAEWOULDBLOCK and a new attempt (which can
    succeed)."""
    ws = net.ws
    s = tcp(ws)
    set_nonblocking(ws, s)
    fail(ws, _connect(ws, s, PEER, 8160), WSAEWOULDBLOCK)
    assert select1(ws, s, timeout=5.0) == (False, False, True)
    acc = accept_in_task(net, listener(net.pws, 8160))
    fail(ws, _connect(ws, s, PEER, 8160), WSAEWOULDBLOCK)
    assert select1(ws, s, timeout=5.0) == (False, True, False)
    assert getopt_int(ws, s, SOL_SOCKET, SO_ERROR) == 0
    acc.join()


def test_item_31_connect_on_connected_or_accepted(net) -> None:
    """connect on a connected or accepted socket -> WSAEISCONN, even after shutdown."""
    ws, pws = net.ws, net.pws
    acc = accept_in_task(net, listener(pws, 8170))
    s = tcp(ws)
    assert _connect(ws, s, PEER, 8170) == 0
    (c,) = acc.result()
    assert ws.shutdown(s, 2) == 0
    fail(ws, _connect(ws, s, PEER, 8170), WSAEISCONN)
    fail(pws, _connect(pws, c, ME, 9), WSAEISCONN)
    assert pws.shutdown(c, 2) == 0
    fail(pws, _connect(pws, c, ME, 9), WSAEISCONN)
    net.me.sleep(1.0)  # both FINs exchanged: the connections are gone, the sockets still connected
    fail(ws, _connect(ws, s, PEER, 8170), WSAEISCONN)
    fail(pws, _connect(pws, c, ME, 9), WSAEISCONN)


def test_item_32_connect_on_listening_socket(net) -> None:
    """connect on a listening socket -> WSAEINVAL."""
    ws = net.ws
    fail(ws, _connect(ws, listener(ws, 8180), PEER, 8180), WSAEINVAL)


def test_item_33_zero_destination(net) -> None:
    """Destination 0.0.0.0 -> WSAEADDRNOTAVAIL; destination port 0 -> WSAEADDRNOTAVAIL (uncertain in the
    reference)."""
    ws = net.ws
    fail(ws, _connect(ws, tcp(ws), "0.0.0.0", 80), WSAEADDRNOTAVAIL)
    fail(ws, _connect(ws, tcp(ws), PEER, 0), WSAEADDRNOTAVAIL)


def test_item_34_name_checks(net) -> None:
    """namelen too small -> WSAEFAULT; wrong family -> WSAEAFNOSUPPORT."""
    ws = net.ws
    fail(ws, ws.connect(tcp(ws), sa(PEER, 80), 15), WSAEFAULT)
    fail(ws, ws.connect(tcp(ws), SOCKADDR_IN.make(PEER, 80, family=1), 16), WSAEAFNOSUPPORT)


def test_item_34_timeout_is_configurable(net) -> None:
    """SYN retries exhausted -> WSAETIMEDOUT; the schedule follows the stack socket's
    syn_rto_s/syn_retries."""
    ws = net.ws
    s = tcp(ws)
    sock = ws.stack_socket(s)
    net.me.call(lambda: (setattr(sock, "syn_rto_s", 0.5), setattr(sock, "syn_retries", 1)))
    t0 = net.me.now()
    fail(ws, _connect(ws, s, SILENT, 80), WSAETIMEDOUT)
    assert abs(net.me.now() - t0 - 1.5) < 0.01  # 0.5 + 1.0


def test_item_34_no_route(net) -> None:
    """No route -> WSAENETUNREACH (blocking and nonblocking)."""
    ws = net.ws
    fail(ws, _connect(ws, tcp(ws), OFFNET, 80), WSAENETUNREACH)
    s = tcp(ws)
    set_nonblocking(ws, s)
    fail(ws, _connect(ws, s, OFFNET, 80), WSAENETUNREACH)


def test_item_34_arp_failure_is_host_unreachable(net_eth) -> None:
    """On ethernet, ARP failure for the destination -> WSAEHOSTUNREACH."""
    ws = net_eth.ws
    t0 = net_eth.me.now()
    fail(ws, _connect(ws, tcp(ws), SILENT, 80), WSAEHOSTUNREACH)
    assert net_eth.me.now() - t0 < 21.0


def test_item_34_icmp_host_unreachable(net) -> None:
    """ICMP host unreachable for the SYN -> WSAEHOSTUNREACH (a router's ICMP, injected from the peer)."""
    ws = net.ws
    s = tcp(ws)
    set_nonblocking(ws, s)
    fail(ws, _connect(ws, s, SILENT, 80), WSAEWOULDBLOCK)
    _, sport = name_of(ws, s)
    iss = net.me.call(lambda: ws.stack_socket(s).conn.iss)
    syn = Ipv4Packet(ip_int(ME), ip_int(SILENT), 6, struct.pack("!HHI", sport, 80, iss) + bytes(12)).emit()
    icmp = IcmpMessage.error(DEST_UNREACH, HOST_UNREACH, syn).emit()
    peer = net.peer
    assert peer.call(lambda: peer.stack.send_ip(ip_int(ME), 1, icmp, peer.now())) is None
    assert select1(ws, s, timeout=1.0) == (False, False, True)
    assert getopt_int(ws, s, SOL_SOCKET, SO_ERROR) == WSAEHOSTUNREACH


def test_item_34_four_tuple_in_use(net) -> None:
    """Local 4-tuple already in use -> WSAEADDRINUSE."""
    test_item_0_connect_error_WSAEADDRINUSE(net)


def test_item_35_wsaconnect(net) -> None:
    """WSAConnect behaves like connect; non-NULL QoS -> WSAEINVAL."""
    ws = net.ws
    acc = accept_in_task(net, listener(net.pws, 8190))
    s = tcp(ws)
    fail(ws, ws.WSAConnect(s, sa(PEER, 8190), 16, None, None, object(), None), WSAEINVAL)
    fail(ws, ws.WSAConnect(s, sa(PEER, 8190), 16, None, None, None, object()), WSAEINVAL)
    assert ws.WSAConnect(s, sa(PEER, 8190), 16, None, None, None, None) == 0
    fail(ws, ws.WSAConnect(s, sa(PEER, 8190), 16), WSAEISCONN)
    fail(ws, ws.WSAConnect(tcp(ws), sa(PEER, 8191), 16), WSAECONNREFUSED)
    acc.join()


def test_item_0_connect_binds_unbound_socket(net) -> None:
    """An unbound socket gets a unique local association on connect and is then bound (bind -> WSAEINVAL)."""
    ws = net.ws
    acc = accept_in_task(net, listener(net.pws, 8200), 2)
    a, b = tcp(ws), tcp(ws)
    assert _connect(ws, a, PEER, 8200) == 0 and _connect(ws, b, PEER, 8200) == 0
    assert name_of(ws, a)[0] == ME and name_of(ws, a)[1] != name_of(ws, b)[1]
    fail(ws, ws.bind(a, sa("0.0.0.0", 0), 16), WSAEINVAL)
    acc.join()


def test_item_0_nonblocking_completion_three_ways(net) -> None:
    """Nonblocking completion is seen by select writability, a WSAAsyncSelect FD_CONNECT and a
    WSAEventSelect event."""
    from ustack.winsock import FD_CONNECT, WSA_WAIT_EVENT_0, WSAGETSELECTERROR, WSAGETSELECTEVENT

    ws = net.ws
    acc = accept_in_task(net, listener(net.pws, 8210), 3)
    s1, s2, s3 = tcp(ws), tcp(ws), tcp(ws)
    set_nonblocking(ws, s1)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(s2, win, 0x401, FD_CONNECT) == 0
    ev = ws.WSACreateEvent()
    assert ws.WSAEventSelect(s3, ev, FD_CONNECT) == 0
    for s in (s1, s2, s3):
        fail(ws, _connect(ws, s, PEER, 8210), WSAEWOULDBLOCK)
    assert select1(ws, s1, timeout=5.0) == (False, True, False)
    m = win.GetMessage(timeout_s=5.0)
    assert (m.wParam, WSAGETSELECTEVENT(m.lParam), WSAGETSELECTERROR(m.lParam)) == (s2, FD_CONNECT, 0)
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 5000, False) == WSA_WAIT_EVENT_0
    acc.join()
