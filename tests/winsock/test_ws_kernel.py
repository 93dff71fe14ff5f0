"""Connect outcomes and UDP rules over a real TUN against the Linux kernel, in a private netns.

ustack (198.18.0.2) runs on a TUN whose kernel side is 198.18.0.1/24; the kernel plays the
peer with ordinary sockets and routes. Every wait is bounded; only 198.18.0.0/15 is used.
Under CI=true these tests fail (not skip) when namespaces or TUN are unavailable.
"""

from __future__ import annotations

import socket as pysocket
import threading
import time

import pytest

from ustack.winsock import (
    SO_BROADCAST,
    SO_ERROR,
    SO_RCVTIMEO,
    SO_REUSEADDR,
    SOL_SOCKET,
    WSADATA,
    WSAEACCES,
    WSAEADDRINUSE,
    WSAECONNREFUSED,
    WSAECONNRESET,
    WSAEHOSTUNREACH,
    WSAENETUNREACH,
    WSAETIMEDOUT,
    WSAEWOULDBLOCK,
    Winsock,
)

from .wsutil import (
    bind,
    fail,
    getopt_int,
    name_of,
    peer_of,
    recv_some,
    sa,
    select1,
    send_all,
    sendto,
    set_nonblocking,
    setopt_int,
    tcp,
    udp,
)

pytestmark = pytest.mark.netns

KERNEL = "198.18.0.1"
US = "198.18.0.2"
HOST_UNREACH_DST = "198.18.0.77"
BLACKHOLE_DST = "198.18.0.78"
IFNAME = "wsk0"


@pytest.fixture
def kernel(netns):
    """(host, ws, netns): a ustack Host on a TUN in this test's private namespace, Winsock 2.2 up."""
    import ustack

    host = ustack.Host.open(tun=IFNAME, addr=f"{US}/24", peer=f"{KERNEL}/24", seed=7)
    try:
        netns.sysctl("net.ipv4.ip_forward", "1")
        netns.ip("route", "add", "unreachable", f"{HOST_UNREACH_DST}/32")
        netns.ip("route", "add", "blackhole", f"{BLACKHOLE_DST}/32")
        ws = Winsock(host)
        assert ws.WSAStartup(0x0202, WSADATA()) == 0
        yield host, ws, netns
    finally:
        host.close()


def _connect(ws: Winsock, s: int, addr: str, port: int, limit_s: float = 10.0) -> int:
    """A blocking connect run in a helper thread and bounded in real time; its result, with
    its last error copied to this thread (so `fail` can check it)."""
    out: list[int] = []

    def run() -> None:
        out.append(ws.connect(s, sa(addr, port), 16))
        out.append(ws.WSAGetLastError())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit_s)
    if len(out) < 2:
        pytest.fail(f"blocking connect to {addr}:{port} still running after {limit_s} s")
    ws.WSASetLastError(out[1])
    return out[0]


def _kernel_listener(port: int) -> pysocket.socket:
    k = pysocket.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
    k.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_REUSEADDR, 1)
    k.bind((KERNEL, port))
    k.listen(4)
    k.settimeout(5.0)
    return k


def test_item_23_kernel_connect_success(kernel) -> None:
    """Over TUN: blocking connect to a kernel listener -> 0; names, and data both ways."""
    host, ws, _ = kernel
    with _kernel_listener(7100) as k:
        s = tcp(ws)
        assert setopt_int(ws, s, SOL_SOCKET, SO_RCVTIMEO, 5000) == 0  # bounded waits
        assert _connect(ws, s, KERNEL, 7100) == 0
        conn, addr = k.accept()
        with conn:
            conn.settimeout(5.0)
            assert addr == name_of(ws, s)
            assert peer_of(ws, s) == (KERNEL, 7100)
            send_all(ws, s, b"hello kernel")
            assert conn.recv(100) == b"hello kernel"
            conn.sendall(b"hello ustack")
            assert recv_some(ws, s) == b"hello ustack"
        assert ws.closesocket(s) == 0


def test_item_24_kernel_closed_port_refused(kernel) -> None:
    """Over TUN: a closed kernel port answers RST -> WSAECONNREFUSED (after Windows' SYN retries),
    exceptfds set."""
    host, ws, _ = kernel
    s = tcp(ws)
    tx0, rx0 = host.device.counters.tx_frames, host.device.counters.rx_frames
    t0 = time.monotonic()
    fail(ws, _connect(ws, s, KERNEL, 7101), WSAECONNREFUSED)
    # Windows tries twice more, 1 s apart: three SYNs, three RSTs (never sooner; later under load)
    assert host.device.counters.tx_frames - tx0 == 3 and host.device.counters.rx_frames - rx0 == 3
    assert time.monotonic() - t0 >= 1.9
    assert select1(ws, s) == (False, False, True)


def test_item_34_kernel_blackhole_times_out(kernel) -> None:
    """Over TUN: a kernel blackhole route -> WSAETIMEDOUT with a short SYN schedule (0.3 s, 1 retry)."""
    host, ws, _ = kernel
    s = tcp(ws)
    sock = ws.stack_socket(s)
    host.call(lambda: (setattr(sock, "syn_rto_s", 0.3), setattr(sock, "syn_retries", 1)))
    tx0 = host.device.counters.tx_frames
    rx0 = host.device.counters.rx_frames
    t0 = time.monotonic()
    fail(ws, _connect(ws, s, BLACKHOLE_DST, 80), WSAETIMEDOUT)
    assert time.monotonic() - t0 >= 0.85  # gave up after its schedule (0.3 + 0.6 s), never sooner
    assert host.device.counters.tx_frames - tx0 == 2  # the SYN and its one retry, both swallowed
    assert host.device.counters.rx_frames == rx0  # the kernel answered nothing


def test_item_34_kernel_icmp_host_unreachable(kernel) -> None:
    """Over TUN: the kernel's ICMP host unreachable (an 'unreachable' route) -> WSAEHOSTUNREACH,
    nonblocking via SO_ERROR."""
    host, ws, _ = kernel
    s = tcp(ws)
    icmp0 = host.call(lambda: host.stack.counters.get("icmp.in"))
    fail(ws, _connect(ws, s, HOST_UNREACH_DST, 80), WSAEHOSTUNREACH)
    assert host.call(lambda: host.stack.counters.get("icmp.in")) > icmp0  # the kernel's ICMP did it
    t = tcp(ws)
    set_nonblocking(ws, t)
    fail(ws, ws.connect(t, sa(HOST_UNREACH_DST, 81), 16), WSAEWOULDBLOCK)
    assert select1(ws, t, timeout=4.0) == (False, False, True)
    assert getopt_int(ws, t, SOL_SOCKET, SO_ERROR) == WSAEHOSTUNREACH


def _kernel_rx_packets(netns) -> int:
    """Packets the kernel side of the TUN has received (i.e. what ustack put on the link)."""
    import json

    out = netns.ip("-j", "-s", "link", "show", IFNAME).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["packets"])


def test_item_34_kernel_no_route_net_unreachable(kernel) -> None:
    """Over TUN: no route on ustack's side -> WSAENETUNREACH at once (blocking and nonblocking), and
    nothing is sent: the TUN device's tx counter and the kernel's rx counter do not move."""
    host, ws, netns = kernel
    dev = host.device
    probe = udp(ws)  # first show the counters do move when something is sent
    tx0, rx0 = dev.counters.tx_frames, _kernel_rx_packets(netns)
    assert sendto(ws, probe, b"counted", KERNEL, 9) == 7
    deadline = time.monotonic() + 3.0
    while _kernel_rx_packets(netns) == rx0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert dev.counters.tx_frames == tx0 + 1 and _kernel_rx_packets(netns) == rx0 + 1
    tx0, rx0 = dev.counters.tx_frames, _kernel_rx_packets(netns)
    fail(ws, _connect(ws, tcp(ws), "198.19.200.1", 80), WSAENETUNREACH)  # no SYN: see the counters
    t = tcp(ws)
    set_nonblocking(ws, t)
    fail(ws, ws.connect(t, sa("198.19.200.1", 81), 16), WSAENETUNREACH)
    time.sleep(0.3)
    assert dev.counters.tx_frames == tx0
    assert _kernel_rx_packets(netns) == rx0


def test_item_12_kernel_address_in_use(kernel) -> None:
    """Over TUN: a second bind of the same addr:port -> WSAEADDRINUSE; a taken 4-tuple to the kernel ->
    WSAEADDRINUSE."""
    host, ws, _ = kernel
    a = udp(ws)
    bind(ws, a, US, 7200)
    fail(ws, ws.bind(udp(ws), sa(US, 7200), 16), WSAEADDRINUSE)
    with _kernel_listener(7102) as k:
        x, y = tcp(ws), tcp(ws)
        for s in (x, y):
            assert setopt_int(ws, s, SOL_SOCKET, SO_REUSEADDR, 1) == 0
            bind(ws, s, US, 7201)
        assert _connect(ws, x, KERNEL, 7102) == 0
        fail(ws, _connect(ws, y, KERNEL, 7102), WSAEADDRINUSE)
        k.accept()[0].close()


def test_item_55_kernel_broadcast_needs_so_broadcast(kernel) -> None:
    """Over TUN: sendto a broadcast address without SO_BROADCAST -> WSAEACCES and nothing is sent;
    with the option the kernel receives it. A UDP connect to the broadcast address needs no option
    and send() then reaches the kernel (Windows, as sock.c test_broadcast shows)."""
    host, ws, _ = kernel
    with pysocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM) as k:
        k.bind(("0.0.0.0", 7300))
        k.settimeout(3.0)
        s = udp(ws)
        tx0 = host.device.counters.tx_frames
        fail(ws, sendto(ws, s, b"bc", "198.18.0.255", 7300), WSAEACCES)
        fail(ws, sendto(ws, s, b"bc", "255.255.255.255", 7300), WSAEACCES)
        c = udp(ws)
        assert ws.connect(c, sa("198.18.0.255", 7300), 16) == 0
        assert host.device.counters.tx_frames == tx0  # refused before anything went out
        assert setopt_int(ws, s, SOL_SOCKET, SO_BROADCAST, 1) == 0
        assert sendto(ws, s, b"broadcast", "198.18.0.255", 7300) == 9
        data, addr = k.recvfrom(100)
        assert data == b"broadcast" and addr[0] == US
        assert ws.send(c, b"connected", 9, 0) == 9
        data, addr = k.recvfrom(100)
        assert data == b"connected" and addr[0] == US


def test_item_54_kernel_connected_udp_filters(kernel) -> None:
    """Over TUN: a connected UDP socket takes datagrams only from its peer; an ICMP port unreachable ->
    WSAECONNRESET."""
    host, ws, _ = kernel
    with pysocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM) as good, \
            pysocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM) as other:
        good.bind((KERNEL, 7400))
        other.bind((KERNEL, 7401))
        s = udp(ws)
        assert setopt_int(ws, s, SOL_SOCKET, SO_RCVTIMEO, 5000) == 0
        bind(ws, s, US, 7402)
        assert ws.connect(s, sa(KERNEL, 7400), 16) == 0
        other.sendto(b"intruder", (US, 7402))
        good.sendto(b"friend", (US, 7402))
        assert recv_some(ws, s) == b"friend"
        set_nonblocking(ws, s)
        time.sleep(0.2)
        fail(ws, ws.recv(s, bytearray(10), 10, 0), WSAEWOULDBLOCK)
        c = udp(ws)
        assert setopt_int(ws, c, SOL_SOCKET, SO_RCVTIMEO, 5000) == 0
        assert ws.connect(c, sa(KERNEL, 7499), 16) == 0  # nobody there: the kernel sends ICMP
        send_all(ws, c, b"ping")
        got = []

        def waiter() -> None:
            got.append(ws.recv(c, bytearray(10), 10, 0))
            got.append(ws.WSAGetLastError())

        t = threading.Thread(target=waiter)
        t.start()
        t.join(5.0)
        assert got == [-1, WSAECONNRESET]
        assert ws.send(c, b"again", 5, 0) == 5  # the socket stays usable (item 56)


def test_item_40_kernel_async_and_event_connect(kernel) -> None:
    """Over TUN, real time: WSAAsyncSelect posts FD_CONNECT then FD_WRITE; WSAEventSelect signals
    FD_CONNECT with the refusal code."""
    from ustack.winsock import (
        FD_CONNECT,
        FD_CONNECT_BIT,
        FD_WRITE,
        WSA_WAIT_EVENT_0,
        WSAGETSELECTERROR,
        WSAGETSELECTEVENT,
        WSANETWORKEVENTS,
    )

    host, ws, _ = kernel
    with _kernel_listener(7500) as k:
        s = tcp(ws)
        win = ws.create_window()
        assert ws.WSAAsyncSelect(s, win, 0x401, FD_CONNECT | FD_WRITE) == 0
        fail(ws, ws.connect(s, sa(KERNEL, 7500), 16), WSAEWOULDBLOCK)
        got = []
        for _ in range(2):
            m = win.GetMessage(timeout_s=5.0)
            assert m is not None
            got.append((WSAGETSELECTEVENT(m.lParam), WSAGETSELECTERROR(m.lParam)))
        assert got == [(FD_CONNECT, 0), (FD_WRITE, 0)]
        k.accept()[0].close()
    t = tcp(ws)
    ev = ws.WSACreateEvent()
    assert ws.WSAEventSelect(t, ev, FD_CONNECT) == 0
    fail(ws, ws.connect(t, sa(KERNEL, 7501), 16), WSAEWOULDBLOCK)
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 5000, False) == WSA_WAIT_EVENT_0
    ne = WSANETWORKEVENTS()
    assert ws.WSAEnumNetworkEvents(t, ev, ne) == 0
    assert ne.lNetworkEvents == FD_CONNECT and ne.iErrorCode[FD_CONNECT_BIT] == WSAECONNREFUSED


def test_pysocket_over_kernel(kernel) -> None:
    """ustack.socket against kernel sockets: a TCP exchange and a refused connect, over TUN."""
    from ustack import socket as us

    host, _, _ = kernel
    with _kernel_listener(7600) as k:
        c = us.create_connection(host, (KERNEL, 7600), timeout=5)
        conn, addr = k.accept()
        with conn, c:
            assert addr == c.getsockname()
            c.sendall(b"x" * 100000)
            got = 0
            conn.settimeout(5)
            while got < 100000:
                got += len(conn.recv(65536))
            conn.sendall(b"done")
            assert c.recv(10) == b"done"
    d = us.socket(host)
    with pytest.raises(ConnectionRefusedError):
        d.connect((KERNEL, 7601))
    d.close()
