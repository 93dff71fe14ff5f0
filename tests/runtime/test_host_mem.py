"""Host mechanics (network thread, call/wait, errors, shutdown) on in-memory links with fake
stacks: no namespace needed. The real-TUN tests are in test_host_tun.py."""

from __future__ import annotations

import threading
import time

import pytest

from tests.runtime.fakes import FakeStack, PipeDevice
from ustack.drivers import MemLink
from ustack.runtime.host import Host


def net_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ustack-net-")]


@pytest.fixture
def pair():
    a_port, b_port = MemLink.pair("ip")
    a = Host(FakeStack("a"), a_port, name="a")
    b = Host(FakeStack("b", echo=True), b_port, name="b")
    yield a, b
    a.close()
    b.close()


def test_echo_between_two_real_time_hosts(pair):
    a, b = pair
    for i in range(50):
        a.call(a.stack.send, b"m%d" % i)
    assert a.wait(lambda: len(a.stack.inbox) == 50, 5.0)
    assert a.stack.frames() == [b"re:m%d" % i for i in range(50)]
    assert b.stack.frames() == [b"m%d" % i for i in range(50)]
    assert a.errors == b.errors == 0


def test_wait_times_out_in_real_time(pair):
    a, _ = pair
    t0 = time.monotonic()
    assert a.wait(lambda: False, 0.2) is False
    assert time.monotonic() - t0 >= 0.19  # it waited (how much longer depends on the machine's load)


def test_timers_fire_from_the_network_thread(pair):
    a, b = pair
    t0 = a.now()
    a.call(a.stack.timers.append, t0 + 0.1)  # a new, earlier deadline must wake the thread
    assert b.wait(lambda: any(f.startswith(b"tick@") for f in b.stack.frames()), 2.0)
    (t_rx, _), = b.stack.inbox
    assert t_rx - t0 >= 0.099


def test_wait_is_woken_by_another_application_thread(pair):
    a, _ = pair
    flag = []
    th = a.spawn(lambda: (time.sleep(0.05), a.call(flag.append, 1)))
    assert a.wait(lambda: bool(flag), 5.0)
    th.join(1)


@pytest.mark.internal_error_expected
def test_processing_errors_are_counted_and_the_thread_survives():
    a_port, b_port = MemLink.pair("ip")
    a = Host(FakeStack("a"), a_port, name="a")
    b = Host(FakeStack("b", echo=True, explode_on=b"bad"), b_port, name="b")
    try:
        for f in (b"bad1", b"ok1", b"bad2", b"ok2"):
            a.call(a.stack.send, f)
        assert a.wait(lambda: a.stack.frames() == [b"re:ok1", b"re:ok2"], 5)
        assert b.errors == 2 and b.running
        assert b.stack.counters.get("runtime.errors") == 2
        assert "boom" in b.error_log[0]
    finally:
        a.close()
        b.close()


def test_close_stops_the_thread_and_is_idempotent():
    before = set(net_threads())
    a_port, _ = MemLink.pair("ip")
    h = Host(FakeStack(), a_port, name="closing")
    assert h.running
    released = []
    th = threading.Thread(target=lambda: released.append(h.wait(lambda: False, None)))
    th.start()
    time.sleep(0.05)
    h.close()
    h.close()
    th.join(2)
    assert released == [False]  # a waiter without a deadline is released, not left hanging
    assert not h.running and h.down and h.closed
    assert set(net_threads()) <= before
    with Host(FakeStack(), MemLink.pair("ip")[0], name="ctx") as h2:
        assert h2.running
    assert not h2.running


def test_wait_from_the_network_thread_is_refused():
    a_port, b_port = MemLink.pair("ip")
    errors = []

    class Reentrant(FakeStack):
        def receive(self, frame, now):
            try:
                hb.wait(lambda: True, 1)
            except RuntimeError as e:
                errors.append(e)

    ha = Host(FakeStack(), a_port, name="a")
    hb = Host(Reentrant(), b_port, name="b")
    try:
        ha.call(ha.stack.send, b"x")
        deadline = time.monotonic() + 2  # errors is filled by b's thread: a's waits see no event
        while not errors and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(errors) == 1 and hb.running
    finally:
        ha.close()
        hb.close()


def test_device_error_stops_cleanly():
    class Failing(PipeDevice):
        def recv_batch(self, now, limit=64):
            raise OSError(77, "File descriptor in bad state")

    dev = Failing()
    h = Host(FakeStack(), dev, name="failing")
    dev.poke()  # make the fd readable
    deadline = time.monotonic() + 2
    while h.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not h.running
    assert isinstance(h.device_error, OSError) and h.device_error.errno == 77
    assert h.down and not h.closed
    assert h.wait(lambda: False, 5) is False  # returns at once: nothing can change any more
    h.close()


def test_locked_context_flushes(pair):
    a, b = pair
    with a.locked() as stack:
        stack.send(b"via-locked")
    assert a.wait(lambda: a.stack.frames() == [b"re:via-locked"], 2)


def test_call_flushes_in_the_callers_thread():
    a_port, b_port = MemLink.pair("ip")
    h = Host(FakeStack("a"), a_port, name="a")
    try:
        h.call(h.stack.send, b"now")
        # no thread hop: by the time call() returns, the frame is on the link
        assert b_port.pending() == 1 and b_port.recv(h.now()) == b"now"
    finally:
        h.close()


def test_spawned_thread_task_result_and_exception(pair):
    a, _ = pair
    ok = a.spawn(lambda x: x * 2, 21)
    assert ok.result(5) == 42 and ok.done
    bad = a.spawn(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        bad.join(5)


def test_many_app_threads_wait_concurrently(pair):
    a, b = pair
    n = 8
    results: list = []
    lock = threading.Lock()

    def waiter(i: int) -> None:
        got = a.wait(lambda: (b"re:m%d" % i) in a.stack.frames(), 5)
        with lock:
            results.append((i, got))

    tasks = [a.spawn(waiter, i) for i in range(n)]
    for i in range(n):
        a.call(a.stack.send, b"m%d" % i)
    for t in tasks:
        t.join(5)
    assert sorted(results) == [(i, True) for i in range(n)]


class _AlwaysReadable(PipeDevice):
    """A device whose fd is always readable but which never yields a frame (a TUN whose
    reads fail with EIO, swallowed by the driver)."""

    def __init__(self, name: str | None) -> None:
        super().__init__()
        self.poke()
        if name is not None:
            self.name = name
        self.reads = 0

    def recv_batch(self, now, limit=64):
        self.reads += 1
        return []


def test_readable_fd_without_frames_on_a_vanished_interface_stops_the_host():
    dev = _AlwaysReadable("ust-gone-0")
    h = Host(FakeStack(), dev, name="vanished")
    deadline = time.monotonic() + 3
    while h.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not h.running and h.down
    assert "device gone" in str(h.device_error)
    h.close()


def test_readable_fd_without_frames_does_not_spin():
    dev = _AlwaysReadable(None)
    h = Host(FakeStack(), dev, name="noisy")
    try:
        time.sleep(0.3)
        assert h.running
        assert dev.reads < 3000  # about one read per millisecond, not a busy loop
    finally:
        h.close()


@pytest.mark.parametrize("medium", ["ip", "ethernet"])
def test_real_stacks_in_real_time_over_a_memlink(medium):
    from tests.runtime.apps import udp_client, udp_echo
    from ustack.runtime.host import build_stack

    pa, pb = MemLink.pair(medium)
    a = Host(build_stack(addr="198.18.0.1/24", gateway=None, mtu=1500, medium=medium, mac=None, seed=1),
             pa, name="ra")
    b = Host(build_stack(addr="198.18.0.2/24", gateway=None, mtu=1500, medium=medium, mac=None, seed=2),
             pb, name="rb")
    try:
        ready: list = []
        server = b.spawn(udp_echo, b, 7000, 5, 5.0, ready)
        deadline = time.monotonic() + 5
        while not ready and time.monotonic() < deadline:  # real time: wait for the bind
            time.sleep(0.002)
        got = udp_client(a, "198.18.0.2", 7000, [b"%d" % i for i in range(5)], 2.0)
        assert got == [b"%d" % i for i in range(5)]
        assert server.result(5) == 5
        assert a.errors == b.errors == 0
    finally:
        a.close()
        b.close()
