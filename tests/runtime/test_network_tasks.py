"""Network tasks (`add_network_task`): non-blocking work the runtime runs on its network side,
under the lock, after a pass's frames and timers. On a real Host (in-memory link, fake stacks,
real time: bounded waits only) and a simulated host (virtual time)."""

from __future__ import annotations

import threading

import pytest

from tests.runtime.fakes import FakeStack
from ustack.drivers import MemLink
from ustack.runtime import Simulator
from ustack.runtime.host import Host


class WakingStack(FakeStack):
    """A FakeStack whose received frames wake the host's network tasks, as a socket watcher
    does for a real stack (receive runs on the network thread, lock held)."""

    host: Host | None = None

    def receive(self, frame: bytes, now: float) -> None:
        super().receive(frame, now)
        if self.host is not None:
            self.host.wake_network_tasks()


@pytest.fixture
def pair():
    a_port, b_port = MemLink.pair("ip")
    stack_b = WakingStack("b")
    a = Host(FakeStack("a"), a_port, name="a")
    b = Host(stack_b, b_port, name="b")
    stack_b.host = b
    yield a, b
    a.close()
    b.close()


def test_a_task_answers_a_frame_from_the_network_thread(pair):
    a, b = pair
    threads: list[str] = []
    seen = 0

    def answer(now: float) -> float | None:
        nonlocal seen
        threads.append(threading.current_thread().name)
        for frame in b.stack.frames()[seen:]:
            b.stack.send(b"task:" + frame)  # flushed by the same pass
        seen = len(b.stack.frames())
        return None  # until the next frame wakes us

    b.call(b.add_network_task, answer)
    for i in range(20):
        a.call(a.stack.send, b"m%d" % i)
    assert a.wait(lambda: len(a.stack.inbox) == 20, 5.0)
    assert a.stack.frames() == [b"task:m%d" % i for i in range(20)]
    assert set(threads) == {"ustack-net-b"}
    assert a.errors == b.errors == 0


def test_a_task_with_more_work_runs_again_without_a_wake_a_bounded_step_each_pass(pair):
    _, b = pair
    todo = list(range(50))
    done: list[int] = []

    def step(now: float) -> float | None:
        done.append(todo.pop(0))  # one item per pass
        return now if todo else None

    b.call(b.add_network_task, step)
    assert b.wait(lambda: not todo, 5.0)
    assert done == list(range(50))
    assert b.errors == 0


def test_a_task_runs_again_at_the_time_it_asks_for(pair):
    _, b = pair
    runs: list[float] = []
    t0 = b.now()

    def later(now: float) -> float | None:
        runs.append(now)
        return t0 + 0.1 if len(runs) == 1 else None

    b.call(b.add_network_task, later)
    assert b.wait(lambda: len(runs) == 2, 5.0)
    assert runs[1] - t0 >= 0.099


def test_an_application_thread_wakes_the_tasks_and_remove_stops_them(pair):
    _, b = pair
    runs: list[str] = []

    def task(now: float) -> float | None:
        runs.append(threading.current_thread().name)
        return None

    b.call(b.add_network_task, task)
    assert b.wait(lambda: len(runs) == 1, 5.0)
    b.call(b.wake_network_tasks)  # from the test's thread: the network thread is kicked
    assert b.wait(lambda: len(runs) == 2, 5.0)
    assert runs == ["ustack-net-b"] * 2
    b.call(b.remove_network_task, task)
    b.call(b.remove_network_task, task)  # not registered any more: no error
    b.call(b.wake_network_tasks)
    b.wait(lambda: False, 0.1)
    assert len(runs) == 2


@pytest.mark.internal_error_expected
def test_a_task_that_raises_or_blocks_is_counted_and_the_network_thread_goes_on(pair):
    a, b = pair
    calls: list[str] = []

    def broken(now: float) -> float | None:
        calls.append("broken")
        raise ValueError("task bug")

    def blocking(now: float) -> float | None:
        calls.append("blocking")
        b.wait(lambda: False, 1.0)  # must not block the network thread: raises at once
        return None

    b.call(lambda: (b.add_network_task(broken), b.add_network_task(blocking)))
    assert b.wait(lambda: b.errors >= 2, 5.0)
    assert b.running and calls[:2] == ["broken", "blocking"]
    assert isinstance(b.last_error, RuntimeError)
    assert b.error_log[:2] == ["ValueError: task bug",
                               "RuntimeError: host.wait() called from the network thread would deadlock"]
    assert b.stack.counters.get("runtime.errors") == b.errors
    b.call(lambda: (b.remove_network_task(broken), b.remove_network_task(blocking)))
    a.call(a.stack.send, b"still")  # the network thread still serves frames
    assert b.wait(lambda: b.stack.frames() == [b"still"], 5.0)


# -- the Simulator -----------------------------------------------------------------------------

def test_simulated_host_runs_tasks_in_its_network_phase_in_virtual_time():
    sim = Simulator(seed=1)
    try:
        h = sim.add_host("198.18.0.1/24", name="a", stack=FakeStack())
        runs: list[float] = []
        t0 = h.now()

        def task(now: float) -> float | None:
            runs.append(now)
            if len(runs) < 3:
                return now  # more at once: the same instant, another round
            return t0 + 30.0 if len(runs) == 3 else None

        h.call(h.add_network_task, task)
        h.sleep(60.0)
        assert runs == [t0, t0, t0, t0 + 30.0]
        h.call(h.wake_network_tasks)
        h.sleep(0.0)
        assert runs[-1] == t0 + 60.0 and len(runs) == 5
    finally:
        sim.close()


@pytest.mark.internal_error_expected
def test_simulated_host_task_may_not_block_and_its_errors_are_counted():
    sim = Simulator(seed=1)
    try:
        h = sim.add_host("198.18.0.1/24", name="a", stack=FakeStack())

        def blocking(now: float) -> float | None:
            h.sleep(1.0)
            return None

        h.call(h.add_network_task, blocking)
        h.sleep(1.0)
        assert h.errors == 1 and sim.errors == 1
        assert h.error_log == ["RuntimeError: cannot wait or sleep inside network processing "
                               "(a stack callback)"]
    finally:
        sim.close()
