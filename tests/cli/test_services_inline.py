"""Where serve's handlers run (ustack/cli/services.py, "the rule"): a handler class that opts
in (`runs_on_network = True`, every built-in one) runs on the network thread, as a network
task of the runtime; one that does not runs on the service thread, where it may block. A real
Host on each end of an in-memory link (real time, bounded waits; no namespace needed) and the
Simulator (virtual time)."""

from __future__ import annotations

import threading

import pytest

from ustack import Simulator
from ustack import socket as us
from ustack.cli import services
from ustack.cli.services import EchoHandler, ServiceSet
from ustack.drivers import MemLink
from ustack.runtime.host import Host, build_stack

SERVER = "198.18.0.2"


def internal_errors(*hosts) -> int:
    return sum(h.stack.counters.get("tcp.internal_error") + h.stack.counters.get("stack.internal_error")
               for h in hosts)


@pytest.fixture
def hosts():
    pa, pb = MemLink.pair("ip")
    client = Host(build_stack(addr="198.18.0.1/24", gateway=None, mtu=1500, medium="ip", mac=None, seed=1),
                  pa, name="client")
    server = Host(build_stack(addr=f"{SERVER}/24", gateway=None, mtu=1500, medium="ip", mac=None, seed=2),
                  pb, name="server")
    yield client, server
    client.close()
    server.close()


def serve(server: Host, handler: type, port: int = 7, **kw) -> ServiceSet:
    svc = ServiceSet(server, **kw)
    services.TCP_HANDLERS["test"] = handler
    try:
        svc.tcp("test", port)
    finally:
        del services.TCP_HANDLERS["test"]
    return svc


def echo_once(client: Host, data: bytes, port: int = 7) -> bytes:
    with us.create_connection(client, (SERVER, port), timeout=5) as s:
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = s.recv(len(data) - len(got))
            if not chunk:
                break
            got += chunk
        return got


def service_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "services"]


class RecordingEcho(EchoHandler):
    __slots__ = ()
    threads: list[str] = []

    def produce(self) -> bytes | None:
        RecordingEcho.threads.append(threading.current_thread().name)
        return super().produce()


def test_an_opted_in_handler_runs_on_the_network_thread(hosts):
    client, server = hosts
    RecordingEcho.threads = []
    svc = serve(server, RecordingEcho)
    try:
        for i in range(5):
            assert echo_once(client, b"ping %d" % i) == b"ping %d" % i
        assert RecordingEcho.threads and set(RecordingEcho.threads) == {"ustack-net-server"}
        assert svc.dispatches == svc.network_dispatches > 0
        assert service_threads() == []  # no service thread was needed
        assert svc.stats["handler_errors"] == 0 and server.errors == 0
        assert internal_errors(client, server) == 0
    finally:
        svc.stop()


def test_inline_false_runs_every_handler_on_the_service_thread(hosts):
    client, server = hosts
    RecordingEcho.threads = []
    svc = serve(server, RecordingEcho, inline=False)
    try:
        assert echo_once(client, b"old way") == b"old way"
        assert set(RecordingEcho.threads) == {"services"}
        assert svc.network_dispatches == 0 < svc.dispatches
    finally:
        svc.stop()
    assert service_threads() == []  # stopped


class WaitingEcho(EchoHandler):
    """Blocks in host.wait before each echo: may not run on the network thread."""

    __slots__ = ()
    runs_on_network = False
    threads: list[str] = []

    def produce(self) -> bytes | None:
        WaitingEcho.threads.append(threading.current_thread().name)
        self.svc.host.wait(lambda: False, 0.01)  # releases the lock while it blocks
        return super().produce()


def test_a_handler_that_may_block_runs_on_the_service_thread(hosts):
    client, server = hosts
    WaitingEcho.threads = []
    svc = serve(server, WaitingEcho)
    try:
        assert service_threads() == ["services"]  # started with the listener
        assert echo_once(client, b"slow") == b"slow"
        assert echo_once(client, b"slower") == b"slower"
        assert WaitingEcho.threads and set(WaitingEcho.threads) == {"services"}
        # the listener's handler (built in) accepted on the network thread
        assert 0 < svc.network_dispatches < svc.dispatches
        assert svc.stats["handler_errors"] == 0 and server.errors == 0
    finally:
        svc.stop()


class BoomEcho(EchoHandler):
    __slots__ = ()

    def produce(self) -> bytes | None:
        if self.sock.readable_bytes and self.sock.peek(4) == b"boom":
            raise RuntimeError("handler bug")
        return super().produce()


class LyingEcho(EchoHandler):
    """Claims not to block (inherited runs_on_network = True), then blocks."""

    __slots__ = ()

    def produce(self) -> bytes | None:
        if self.sock.readable_bytes and self.sock.peek(4) == b"boom":
            self.svc.host.wait(lambda: False, 1.0)
        return super().produce()


def read_all(s: us.socket) -> bytes:
    out = b""
    try:
        while chunk := s.recv(100):
            out += chunk
    except OSError:  # reset
        pass
    return out


@pytest.mark.internal_error_expected
@pytest.mark.parametrize("handler, error", [
    (BoomEcho, "BoomEcho: RuntimeError: handler bug"),
    (LyingEcho, "LyingEcho: RuntimeError: host.wait() called from the network thread would deadlock")])
def test_a_failing_handler_on_the_network_thread_is_counted_and_only_its_connection_closed(
        hosts, handler, error, _no_swallowed_exceptions):
    client, server = hosts
    lines: list[str] = []
    svc = serve(server, handler, log=lines.append)
    try:
        good = us.create_connection(client, (SERVER, 7), timeout=5)
        with us.create_connection(client, (SERVER, 7), timeout=5) as bad:
            bad.sendall(b"boom")
            assert read_all(bad) == b""  # closed by the server, nothing echoed
        with good:
            good.sendall(b"fine")
            assert good.recv(4) == b"fine"
        assert lines == [error]
        assert svc.stats["handler_errors"] == 1 and len(_no_swallowed_exceptions) == 1  # the guard saw it
        assert server.errors == 0 and server.running  # nothing escaped to the network thread
        assert echo_once(client, b"after") == b"after"
        assert internal_errors(client, server) == 0
    finally:
        svc.stop()


def test_handlers_on_the_network_side_run_a_bounded_batch_per_pass(monkeypatch):
    """Simulator: 10 connections ready at once, DISPATCH_BATCH 3: the network task runs at most
    3 handlers per pass and asks to run again at once until all are done."""
    monkeypatch.setattr(services, "DISPATCH_BATCH", 3)
    sim = Simulator(seed=2)
    server = sim.add_host(f"{SERVER}/24", name="server")
    client = sim.add_host("198.18.0.1/24", name="client")
    per_pass: list[int] = []
    register = server.add_network_task

    def spy(fn):
        def counted(now):
            before = svc.dispatches
            try:
                return fn(now)
            finally:
                per_pass.append(svc.dispatches - before)
        register(counted)
    monkeypatch.setattr(server, "add_network_task", spy)
    svc = ServiceSet(server, spawn=sim.spawn)
    svc.tcp("echo", 7)
    try:
        socks = [us.create_connection(client, (SERVER, 7), timeout=5) for _ in range(10)]
        client.sleep(1.0)
        per_pass.clear()

        def send_all():
            for i, s in enumerate(socks):
                s.sendall(b"%d" % i)
        send_all()
        assert [s.recv(1) for s in socks] == [b"%d" % i for i in range(10)]
        assert max(per_pass) == 3 and sum(per_pass) >= 10
        assert svc.network_dispatches == svc.dispatches
        assert sim.tasks == []  # no service task in the Simulator either
        for s in socks:
            s.close()
    finally:
        svc.stop()
        sim.close()


def test_a_blocking_user_thread_on_the_same_host_still_works(hosts):
    """Winsock/Pythonic blocking calls on the serving host (accept, recv, sendall in a plain
    thread) next to handlers on that host's network thread."""
    client, server = hosts
    svc = serve(server, EchoHandler)
    try:
        ls = us.socket(server, us.AF_INET, us.SOCK_STREAM)
        ls.bind(("0.0.0.0", 8))
        ls.listen(1)
        ls.settimeout(5)

        def upper_once() -> bytes:
            c, _ = ls.accept()  # blocks in host.wait
            with c:
                c.settimeout(5)
                data = c.recv(100)
                c.sendall(data.upper())
                return data
        task = server.spawn(upper_once)
        assert echo_once(client, b"inline") == b"inline"
        assert echo_once(client, b"blocking", port=8) == b"BLOCKING"
        assert task.result(5) == b"blocking"
        assert echo_once(client, b"again") == b"again"
        ls.close()
        assert svc.network_dispatches > 0 and svc.stats["handler_errors"] == 0
        assert server.errors == 0 and internal_errors(client, server) == 0
    finally:
        svc.stop()
