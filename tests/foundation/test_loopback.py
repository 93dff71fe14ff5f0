"""Loopback: 127.0.0.0/8 and the host's own address are delivered inside the stack, never on the
device, so local clients and servers work -- UDP and, with the TCP layer registered, TCP.
(The core unit tests cover UDP over loopback packet by packet; here whole applications.)"""

from __future__ import annotations

import pytest

from tests.runtime.apps import tcp_echo_server, tcp_exchange, udp_client, udp_echo
from ustack.core import Stack, StackConfig
from ustack.runtime.simulator import Simulator
from ustack.wire.ipv4 import ip_int

ME = "198.18.0.2"
DESTS = ["127.0.0.1", "127.4.5.6", ME]


def blob(n: int) -> bytes:
    return bytes((i * 31 + 7) & 0xFF for i in range(n))


@pytest.mark.parametrize("medium", ["ip", "ethernet"])
@pytest.mark.parametrize("dst", DESTS)
def test_tcp_echo_over_loopback_in_the_simulator(medium, dst):
    with Simulator(seed=5) as sim:
        h = sim.add_host(f"{ME}/24", name="h", medium=medium)
        before = h.port.counters.tx_frames  # a TAP host announces itself (gratuitous ARP)
        data = blob(300_000)
        server = sim.spawn(tcp_echo_server, h, 8000)
        client = sim.spawn(tcp_exchange, h, dst, 8000, data)
        sim.run()
        assert client.result() == data
        assert server.result() == len(data)
        assert h.port.counters.tx_frames == before  # nothing went on the link
        c = h.stack.counters
        assert c.get("ipv4.loopback_out") > 0 and c.get("ipv4.out") == 0
        assert sim.errors == 0 and c.get("stack.internal_error") == 0


@pytest.mark.parametrize("dst", DESTS)
def test_udp_echo_over_loopback_in_the_simulator(dst):
    with Simulator(seed=6) as sim:
        h = sim.add_host(f"{ME}/24", name="h")
        server = sim.spawn(udp_echo, h, 7, 3)
        client = sim.spawn(udp_client, h, dst, 7, [b"one", b"two", blob(9000)])
        sim.run()
        assert client.result() == [b"one", b"two", blob(9000)]
        assert server.result() == 3
        assert h.port.counters.tx_frames == 0


def test_tcp_echo_over_loopback_on_a_bare_stack():
    """No runtime at all: the application drives `poll` itself and never moves a frame."""
    from ustack.tcp import State

    stack = Stack.with_defaults(StackConfig(addr=f"{ME}/24", seed=3))
    assert stack.tcp is not None
    now = 0.0
    lsock = stack.tcp.open()
    lsock.bind(0, 9000)
    lsock.listen(1)
    client = stack.tcp.open()
    client.connect(ip_int("127.0.0.1"), 9000, now)
    frames = []
    for _ in range(100):
        frames += stack.poll(now)
        if lsock.accept_pending and client.state is State.ESTABLISHED:
            break
    server = lsock.accept()
    assert server is not None and client.state is State.ESTABLISHED
    assert server.remote == client.local and server.local == (ip_int("127.0.0.1"), 9000)
    data = blob(200_000)
    sent, got, echoed, pending = 0, bytearray(), 0, b""
    for _ in range(10_000):
        if sent < len(data):
            sent += client.send(data[sent:], now)
        pending += server.recv(1 << 20)
        if pending:
            n = server.send(pending, now)
            echoed += n
            pending = pending[n:]
        got += client.recv(1 << 20)
        frames += stack.poll(now)
        if len(got) == len(data):
            break
        at = stack.poll_at()
        now = max(now, at) if at is not None else now + 0.01
    assert bytes(got) == data and echoed == len(data)
    assert frames == []  # nothing ever left for the device
    assert stack.counters.get("ipv4.out") == 0 and stack.counters.get("stack.internal_error") == 0
