"""Out-of-band data (issue 14, item 3) in the Simulator: send(MSG_OOB) as TCP urgent data
(RFC 6093: the urgent pointer points after the urgent byte), recv(MSG_OOB), SO_OOBINLINE,
SIOCATMARK, FD_OOB, select's exceptfds and WSAPoll's POLLRDBAND. Each test names the sock.c
function (run on real Windows) or the Microsoft page it checks; the code is ours."""

from __future__ import annotations

import ctypes

import dpkt

from ustack.runtime.simulator import Simulator
from ustack.winsock import (
    FD_OOB,
    FD_READ,
    MSG_OOB,
    POLLRDBAND,
    POLLRDNORM,
    POLLWRNORM,
    SIOCATMARK,
    SO_OOBINLINE,
    SOL_SOCKET,
    WSADATA,
    WSAEINVAL,
    WSAEWOULDBLOCK,
    WSANETWORKEVENTS,
    WSAPOLLFD,
    Winsock,
)

from .wsutil import ME, PEER, Net, fail, listener, recv_some, sa, select1, setopt_int, tcp, tcp_socketpair


def _poll(ws, s, events=POLLRDNORM | POLLRDBAND | POLLWRNORM):
    fd = WSAPOLLFD(fd=s, events=events, revents=0)
    ws.WSAPoll([fd], 1, 0)
    return fd.revents


def _atmark(ws, s):
    v = ctypes.c_ulong(0xDEAD)
    assert ws.ioctlsocket(s, SIOCATMARK, v) == 0
    return v.value


def _recv(ws, s, n=64, flags=0):
    buf = bytearray(n)
    r = ws.recv(s, buf, n, flags)
    return r, bytes(buf[:max(r, 0)])


def test_item_108_oob_byte_out_of_line(net: Net) -> None:
    """sock.c test_WSAPoll (OOB part): after send(MSG_OOB) the receiver polls POLLRDBAND (not
    POLLRDNORM) and recv(MSG_OOB) returns the byte, after which only POLLWRNORM is left.
    Microsoft (select, ioctlsocket): exceptfds holds the socket and SIOCATMARK is FALSE until
    the byte is read; a normal recv has nothing to return."""
    ws = net.ws
    c, a = tcp_socketpair(ws, nonblocking=True)
    assert _atmark(ws, a) == 1
    assert ws.send(c, b"A", 1, MSG_OOB) == 1
    net.sim.run_for(0.05)
    assert _poll(ws, c) == POLLWRNORM
    assert _poll(ws, a, POLLRDNORM | POLLRDBAND) == POLLRDBAND
    assert _poll(ws, a) == POLLWRNORM | POLLRDBAND
    assert select1(ws, a) == (False, True, True)
    assert _atmark(ws, a) == 0
    fail(ws, _recv(ws, a)[0], WSAEWOULDBLOCK)
    assert _recv(ws, a, flags=MSG_OOB) == (1, b"A")
    assert _poll(ws, a) == POLLWRNORM and _atmark(ws, a) == 1
    assert select1(ws, a) == (False, True, False)
    fail(ws, _recv(ws, a, flags=MSG_OOB)[0], WSAEWOULDBLOCK)


def test_item_108_oob_inline(net: Net) -> None:
    """sock.c test_WSAPoll: with SO_OOBINLINE the urgent byte is normal data (POLLRDNORM, a
    normal recv gets it); Microsoft (recv): MSG_OOB on such a socket is WSAEINVAL."""
    ws = net.ws
    c, a = tcp_socketpair(ws, nonblocking=True)
    assert setopt_int(ws, a, SOL_SOCKET, SO_OOBINLINE, 1) == 0
    assert ws.send(c, b"A", 1, MSG_OOB) == 1
    net.sim.run_for(0.05)
    assert _poll(ws, a, POLLRDNORM | POLLRDBAND) == POLLRDNORM
    assert _poll(ws, a) == POLLWRNORM | POLLRDNORM
    assert _atmark(ws, a) == 0  # the urgent byte is still ahead in the stream
    fail(ws, _recv(ws, a, flags=MSG_OOB)[0], WSAEINVAL)
    assert _recv(ws, a) == (1, b"A")
    assert _poll(ws, a) == POLLWRNORM and _atmark(ws, a) == 1


def test_item_108_mark_in_the_stream(net: Net) -> None:
    """The urgent byte is the last byte of the MSG_OOB send, the one before the urgent pointer
    (RFC 6093). A normal recv stops in front of it, MSG_OOB takes it, the next normal recv
    continues behind it; read past without MSG_OOB, the byte is still there for MSG_OOB."""
    ws = net.ws
    for oob_first in (True, False):
        c, a = tcp_socketpair(ws, nonblocking=True)
        for data, flags in ((b"abc", 0), (b"XYZ!", MSG_OOB), (b"tail", 0)):
            assert ws.send(c, data, len(data), flags) == len(data)
        net.sim.run_for(0.05)
        assert _recv(ws, a) == (6, b"abcXYZ")  # up to the mark
        if oob_first:
            assert _recv(ws, a, flags=MSG_OOB) == (1, b"!")
            assert _recv(ws, a) == (4, b"tail")
        else:
            assert _recv(ws, a) == (4, b"tail")
            assert _atmark(ws, a) == 0
            assert _recv(ws, a, flags=MSG_OOB) == (1, b"!")
        assert _atmark(ws, a) == 1
        fail(ws, _recv(ws, a)[0], WSAEWOULDBLOCK)


def test_item_108_fd_oob(net: Net) -> None:
    """Microsoft (WSAEventSelect): urgent data out of line is FD_OOB, not FD_READ; the data
    sent before it is FD_READ."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    ev = ws.WSACreateEvent()
    assert ws.WSAEventSelect(a, ev, FD_READ | FD_OOB) == 0
    assert ws.send(c, b"U", 1, MSG_OOB) == 1
    net.sim.run_for(0.05)
    ne = WSANETWORKEVENTS()
    assert ws.WSAEnumNetworkEvents(a, ev, ne) == 0 and ne.lNetworkEvents == FD_OOB
    assert _recv(ws, a, flags=MSG_OOB) == (1, b"U")
    assert ws.send(c, b"n", 1, 0) == 1
    net.sim.run_for(0.05)
    assert ws.WSAEnumNetworkEvents(a, ev, ne) == 0 and ne.lNetworkEvents == FD_READ


def test_item_108_urgent_pointer_on_the_wire(tmp_path) -> None:
    """RFC 6093 on the wire, decoded by dpkt from the link's pcap: the segment carrying a
    MSG_OOB send has URG set and an urgent pointer one past its last byte; segments before it
    have no URG; the peer's Winsock reads the data before the mark and the urgent byte."""
    pcap = tmp_path / "urg.pcap"
    sim = Simulator(7)
    sim.link("wire", pcap=str(pcap))
    me = sim.add_host(f"{ME}/24", name="me", link="wire")
    peer = sim.add_host(f"{PEER}/24", name="peer", link="wire")
    ws, pws = Winsock(me), Winsock(peer)
    assert ws.WSAStartup(0x0202, WSADATA()) == 0 and pws.WSAStartup(0x0202, WSADATA()) == 0
    lst = listener(pws, 6000)
    c = tcp(ws)
    assert ws.connect(c, sa(PEER, 6000), 16) == 0
    a = pws.accept(lst, None, None)
    assert ws.send(c, b"plain", 5, 0) == 5
    sim.run_for(0.2)
    assert ws.send(c, b"urgent!", 7, MSG_OOB) == 7
    sim.run_for(0.2)
    assert recv_some(pws, a) == b"plainurgent"
    buf = bytearray(4)
    assert pws.recv(a, buf, 4, MSG_OOB) == 1 and buf[:1] == b"!"
    sim.close()
    segs = []
    with open(pcap, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        ethernet = reader.datalink() == dpkt.pcap.DLT_EN10MB
        for _ts, frame in reader:
            ip = dpkt.ethernet.Ethernet(frame).data if ethernet else dpkt.ip.IP(frame)
            t = ip.data
            if isinstance(t, dpkt.tcp.TCP) and t.dport == 6000 and t.data:
                segs.append(t)
    plain, urgent = segs[0], segs[-1]
    assert plain.data == b"plain" and not plain.flags & dpkt.tcp.TH_URG
    assert urgent.data == b"urgent!" and urgent.flags & dpkt.tcp.TH_URG
    assert urgent.urp == 7  # seq + 7: the octet after '!', the urgent byte (RFC 6093)


def test_item_108_mark_survives_the_peer_fin(net: Net) -> None:
    """The urgent byte keeps its place after the peer's FIN arrives (the FIN takes a sequence
    number but no stream byte; found against Linux in the lab's tcp-oob scenario)."""
    ws, pws = net.ws, net.pws
    lst = listener(pws, 6001)
    c = tcp(ws)
    assert ws.connect(c, sa(PEER, 6001), 16) == 0
    a = pws.accept(lst, None, None)
    assert ws.send(c, b"xyz!", 4, MSG_OOB) == 4
    net.sim.run_for(0.2)
    assert recv_some(pws, a) == b"xyz"
    assert ws.send(c, b"more", 4, 0) == 4 and ws.shutdown(c, 1) == 0
    net.sim.run_for(0.2)
    assert _recv(pws, a, flags=MSG_OOB) == (1, b"!")
    assert recv_some(pws, a) == b"more"
    assert recv_some(pws, a) == b""


def test_item_108_wsasend_and_wsarecv_oob(net: Net) -> None:
    """WSASend with MSG_OOB (overlapped too) sends urgent data; WSARecv with MSG_OOB and no
    overlapped reads it like recv(MSG_OOB); an overlapped out-of-band WSARecv is WSAEOPNOTSUPP
    (not supported)."""
    from ustack.winsock import WSABUF, WSAEOPNOTSUPP, WSAOVERLAPPED

    ws = net.ws
    c, a = tcp_socketpair(ws, nonblocking=True)
    sent, ov = ctypes.c_ulong(0), WSAOVERLAPPED(ws.WSACreateEvent())
    assert ws.WSASend(c, [WSABUF(3, b"ab!")], 1, sent, MSG_OOB, ov, None) == 0 and sent.value == 3
    net.sim.run_for(0.05)
    buf, n, flags = bytearray(4), ctypes.c_ulong(0), ctypes.c_ulong(MSG_OOB)
    fail(ws, ws.WSARecv(a, [WSABUF(4, buf)], 1, n, flags, WSAOVERLAPPED(), None), WSAEOPNOTSUPP)
    assert ws.WSARecv(a, [WSABUF(4, buf)], 1, n, flags, None, None) == 0
    assert n.value == 1 and buf[:1] == b"!"
    assert _recv(ws, a) == (2, b"ab")
