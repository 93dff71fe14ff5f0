"""TCP interop, many connections: 1,000 sequential and 200 concurrent, each direction of opening,
over TUN and TAP; afterwards neither ustack's connection table nor the kernel's (`ss -tan`) holds
anything but TIME_WAIT (on the side that closed first)."""

import selectors
import socket
import time

import pytest

from tests.interop.peer import (
    KERNEL_IP,
    USTACK_IP,
    KernelServer,
    UstackStream,
    echo_handler,
    kernel_tcp_sockets,
    state_name,
    ustack_tcp_connections,
)

pytestmark = [pytest.mark.netns, pytest.mark.timeout(300)]

SEQUENTIAL = 1000
CONCURRENT = 200


def ustack_leftovers(host, allow=("TIME_WAIT",), within=5.0):
    """ustack connections in states other than `allow`, after letting closes finish."""
    end = time.monotonic() + within
    while True:
        left = [c for c in ustack_tcp_connections(host) if state_name(c) not in allow]
        if not left or time.monotonic() > end:
            return [(state_name(c), getattr(c, "local", None), getattr(c, "remote", None)) for c in left]
        time.sleep(0.1)


def kernel_leftovers(port, allow=("TIME-WAIT", "LISTEN"), within=5.0):
    end = time.monotonic() + within
    while True:
        left = [r for r in kernel_tcp_sockets(port) if r[0] not in allow]
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.1)


def test_1000_sequential_ustack_connections_to_kernel(hosts, link):
    host = hosts.open(link)
    srv = KernelServer(7100, echo_handler)
    ports = set()
    try:
        for i in range(SEQUENTIAL):
            s = UstackStream.connect(host, KERNEL_IP, 7100, timeout=5)
            ports.add(host.call(lambda s=s: s.sock.local[1]))
            msg = b"%d" % i
            s.sendall(msg)
            assert s.recv_exact(len(msg), timeout=5) == msg
            s.close()
    finally:
        srv.close()
    assert srv.errors == []
    assert len(ports) == SEQUENTIAL, "an ephemeral port was reused while its 4-tuple was in TIME_WAIT"
    assert all(49152 <= p <= 65535 for p in ports)
    assert ustack_leftovers(host) == []
    assert kernel_leftovers(7100) == []


def test_1000_sequential_kernel_connections_to_ustack(hosts, link):
    from ustack.cli.services import ServiceSet

    host = hosts.open(link)
    services = ServiceSet(host)
    services.tcp("echo", 7)
    try:
        for i in range(SEQUENTIAL):
            with socket.create_connection((USTACK_IP, 7), timeout=5) as k:
                msg = b"%d" % i
                k.sendall(msg)
                assert k.recv(100) == msg
        # The kernel closed first: TIME_WAIT is the kernel's; ustack must hold nothing. (Checked
        # before stopping the service, whose stop would close a connection whose FIN is still
        # in flight and turn it into a simultaneous close.)
        assert ustack_leftovers(host, allow=("LISTEN",)) == []
    finally:
        services.stop()
    assert services.stats["tcp_accepted"] == SEQUENTIAL
    assert kernel_leftovers(7) == []


def test_200_concurrent_ustack_connections_to_kernel(hosts, link):
    from ustack.tcp import State

    host = hosts.open(link)
    srv = KernelServer(7200, echo_handler, backlog=512)
    try:
        def open_all():
            socks = []
            for _ in range(CONCURRENT):
                s = host.stack.tcp.open()
                s.connect(int.from_bytes(socket.inet_aton(KERNEL_IP), "big"), 7200, host.now())
                socks.append(s)
            return socks
        socks = host.call(open_all)
        assert host.wait(lambda: all(s.state == State.ESTABLISHED or s.error for s in socks), 20)
        assert [s.error for s in socks if s.error] == []
        assert len({s.local[1] for s in socks}) == CONCURRENT
        live = [state_name(c) for c in ustack_tcp_connections(host)]
        assert live.count("ESTABLISHED") == CONCURRENT, live  # the leak check below sees real entries
        streams = [UstackStream(host, s) for s in socks]
        for i, st in enumerate(streams):
            st.sendall(b"conn %03d" % i)
        for i, st in enumerate(streams):
            assert st.recv_exact(8, timeout=10) == b"conn %03d" % i
        for st in streams:
            st.close()
    finally:
        srv.close()
    assert srv.errors == []
    assert ustack_leftovers(host) == []
    assert kernel_leftovers(7200) == []


def test_200_concurrent_kernel_connections_to_ustack(hosts, link):
    host = hosts.open(link)

    def listen():
        s = host.stack.tcp.open()
        s.bind(0, 7300)
        s.listen(CONCURRENT + 10)
        return s
    lsock = host.call(listen)
    sel = selectors.DefaultSelector()
    clients = []
    for _ in range(CONCURRENT):
        k = socket.socket()
        k.setblocking(False)
        k.connect_ex((USTACK_IP, 7300))
        sel.register(k, selectors.EVENT_WRITE)
        clients.append(k)
    accepted = []
    end = time.monotonic() + 20
    while len(accepted) < CONCURRENT and time.monotonic() < end:
        host.wait(lambda: lsock.accept_pending, 0.5)
        while (c := host.call(lsock.accept)) is not None:
            accepted.append(c)
    assert len(accepted) == CONCURRENT
    errs = [k.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) for k in clients]
    assert errs == [0] * CONCURRENT
    # Each accepted connection echoes one message from its client, then both close.
    for i, k in enumerate(clients):
        k.setblocking(True)
        k.settimeout(5)
        k.sendall(b"k%03d" % i)
    streams = [UstackStream(host, c) for c in accepted]
    for st in streams:
        st.sendall(st.recv_exact(4, timeout=5))
    for i, k in enumerate(clients):
        assert k.recv(4) == b"k%03d" % i
        k.close()
    for st in streams:
        assert st.recv(timeout=5) == b""
        st.close()
    sel.close()
    host.call(lambda: lsock.close(host.now()))
    assert ustack_leftovers(host) == []
    assert kernel_leftovers(7300) == []


def test_time_wait_entries_expire_after_two_msl(hosts, link):
    """With a short MSL configured, ustack's TIME-WAIT entries from 100 active closes are all
    gone after 2*MSL: nothing is left behind at all."""
    from ustack.tcp.config import TcpConfig

    host = hosts.open(link, tcp=TcpConfig(msl_s=0.25))
    srv = KernelServer(7400, echo_handler)
    try:
        for _ in range(100):
            s = UstackStream.connect(host, KERNEL_IP, 7400, timeout=5)
            s.sendall(b"x")
            assert s.recv_exact(1, timeout=5) == b"x"
            s.close()
        states = [state_name(c) for c in ustack_tcp_connections(host)]
        assert states and set(states) <= {"TIME_WAIT", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSING"}, states
        end = time.monotonic() + 3.0
        while ustack_tcp_connections(host) and time.monotonic() < end:
            time.sleep(0.1)
        assert ustack_tcp_connections(host) == []
    finally:
        srv.close()
