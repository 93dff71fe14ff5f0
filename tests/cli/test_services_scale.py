"""Connections at scale, in virtual time: 10,000 connections between two Simulator hosts all
echo through the event-driven services (one service task, no task per connection); the work
of the TCP layer's poll/poll_at and of the service thread does not grow with idle connections
(counted in function calls and handler runs, never timed)."""

from __future__ import annotations

import gc
import socket
import sys

import pytest

from ustack import Simulator
from ustack.cli.services import ServiceSet
from ustack.tcp import State

SERVER = "198.18.0.2"
PORT = 7
DST = int.from_bytes(socket.inet_aton(SERVER), "big")


@pytest.fixture
def pair():
    sim = Simulator(seed=11)
    server = sim.add_host(f"{SERVER}/16", name="server")
    client = sim.add_host("198.18.1.1/16", name="client")
    svc = ServiceSet(server, spawn=sim.spawn)
    svc.tcp("echo", PORT)
    yield sim, server, client, svc
    svc.stop()
    sim.close()


def open_many(client, n: int, batch: int = 100) -> list:
    """n client connections, `batch` connects per lock hold (below the default backlog of 200:
    in virtual time a whole batch of handshakes completes before the service task runs)."""
    socks: list = []
    for i in range(0, n, batch):
        k = min(batch, n - i)

        def connect(k=k):
            out = []
            for _ in range(k):
                s = client.stack.tcp.open()
                s.connect(DST, PORT, client.now())
                out.append(s)
            return out
        got = client.call(connect)
        assert client.wait(lambda g=got: all(s.state is not State.SYN_SENT for s in g), 30)
        socks += got
    return socks


def internal_errors(*hosts) -> int:
    return sum(h.stack.counters.get("tcp.internal_error") + h.stack.counters.get("stack.internal_error")
               for h in hosts)


def test_10000_connections_all_echo_with_one_service_task(pair):
    sim, server, client, svc = pair
    n = 10_000
    socks = open_many(client, n)
    assert client.call(lambda: sum(s.state is State.ESTABLISHED for s in socks)) == n
    tasks_before = len(sim.tasks)

    def send_all():
        for i, s in enumerate(socks):
            assert s.send(b"%05d" % i, client.now()) == 5
    client.call(send_all)
    assert client.wait(lambda: all(s.readable_bytes >= 5 for s in socks), 60)
    got = client.call(lambda: [s.recv(5) for s in socks])
    assert got == [b"%05d" % i for i in range(n)]
    assert svc.stats["tcp_accepted"] == n
    server_conns = server.call(lambda: [c.state for c in server.stack.tcp.conns.values()])
    assert server_conns.count(State.ESTABLISHED) == n
    assert len(sim.tasks) == tasks_before  # serving 10,000 connections started no task
    # all close; the server closes each after the client's FIN
    client.call(lambda: [s.close(client.now()) for s in socks])
    assert server.wait(lambda: not server.stack.tcp.conns, 120)
    assert len(svc.handlers) == 1  # the listener's handler only
    assert internal_errors(server, client) == 0


def test_service_work_is_per_ready_socket_not_per_connection(pair):
    """One message on one of 1,000 idle connections runs a handful of handlers, not 1,000."""
    sim, server, client, svc = pair
    socks = open_many(client, 1000)
    client.sleep(1.0)  # every handshake and accept done, delayed ACKs sent
    before = svc.dispatches
    client.call(lambda: socks[500].send(b"ping", client.now()))
    assert client.wait(lambda: socks[500].readable_bytes == 4, 5)
    client.sleep(1.0)
    assert 1 <= svc.dispatches - before <= 3
    before = svc.dispatches
    client.sleep(5.0)  # idle: nothing runs at all
    assert svc.dispatches == before


def _calls_during(fn) -> int:
    """Python and C function calls made while fn() runs (work counted, not timed)."""
    calls = 0

    def prof(_frame, event, _arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1
    gc.collect()  # a collection inside fn would count the finalizers of earlier tests' garbage
    gc.disable()
    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
        gc.enable()
    return calls


@pytest.mark.parametrize("keepalive", [False, True])
def test_poll_cost_does_not_grow_with_idle_connections(keepalive):
    """stack.poll and poll_at on a server with 10 idle connections and with 1,000 do the same
    work: timers live in the layer's heap, nothing scans the connection table. With keepalive
    on (a timer armed on every connection) the polls between deadlines are still flat."""
    def measure(n: int) -> list[int]:
        sim = Simulator(seed=3)
        server = sim.add_host(f"{SERVER}/16", name="server")
        client = sim.add_host("198.18.1.1/16", name="client")
        server.stack.tcp.config.keepalive = keepalive  # read when the listener is opened
        svc = ServiceSet(server, spawn=sim.spawn)
        svc.tcp("echo", PORT)
        try:
            open_many(client, n)
            client.sleep(2.0)  # delayed ACKs and every other short timer done
            stack = server.stack
            armed = [c.timers.keepalive_at is not None for c in stack.tcp.conns.values()]
            assert len(armed) == n and all(armed) == keepalive
            t = server.now()

            def one_poll(at: float) -> None:
                server.call(lambda: (stack.poll(at), stack.poll_at()))
            return [_calls_during(lambda at=t + k * 0.01: one_poll(at)) for k in range(1, 6)]
        finally:
            svc.stop()
            sim.close()
    small, large = measure(10), measure(1000)
    assert small == large, (small, large)


@pytest.mark.internal_error_expected
def test_a_failing_handler_closes_only_its_connection_and_is_logged(monkeypatch, _no_swallowed_exceptions):
    from ustack.cli import services

    real = services.EchoHandler.produce

    def produce(self):
        if self.sock.readable_bytes and self.sock.peek(4) == b"boom":
            raise RuntimeError("handler bug")
        return real(self)
    monkeypatch.setattr(services.EchoHandler, "produce", produce)
    sim = Simulator(seed=4)
    server = sim.add_host(f"{SERVER}/16", name="server")
    client = sim.add_host("198.18.1.1/16", name="client")
    lines: list[str] = []
    svc = ServiceSet(server, log=lines.append, spawn=sim.spawn)
    svc.tcp("echo", PORT)
    try:
        bad, good = open_many(client, 2)
        client.call(lambda: bad.send(b"boom", client.now()))
        assert client.wait(lambda: bad.at_eof or bad.error is not None, 5)  # closed by the server
        client.call(lambda: good.send(b"fine", client.now()))
        assert client.wait(lambda: good.readable_bytes == 4, 5)
        assert client.call(lambda: good.recv(4)) == b"fine"
        assert lines == ["EchoHandler: RuntimeError: handler bug"]
        assert svc.stats["handler_errors"] == 1 and len(_no_swallowed_exceptions) == 1  # the guard saw it
        assert internal_errors(server, client) == 0
    finally:
        svc.stop()
        sim.close()
