"""The simulator's scheduler and virtual clock, on fake stacks (no dependency on the core)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.runtime.fakes import FakeStack
from ustack.runtime.simulator import (
    SimulationClosed,
    SimulationDeadlock,
    SimulationTimeout,
    Simulator,
)


def two_fake_hosts(sim: Simulator, echo_b: bool = True):
    a = sim.add_host("198.18.0.1/24", name="a", stack=FakeStack("a"))
    b = sim.add_host("198.18.0.2/24", name="b", stack=FakeStack("b", echo=echo_b))
    return a, b


def test_main_thread_wait_drives_the_network():
    sim = Simulator(seed=1)
    a, b = two_fake_hosts(sim)
    a.call(a.stack.send, b"hello")
    assert a.wait(lambda: a.stack.frames() == [b"re:hello"], 1.0)
    assert b.stack.frames() == [b"hello"]
    assert sim.now == 0.0  # zero-latency link: everything happened at t=0
    assert sim.errors == 0


def test_21_second_timeout_runs_in_virtual_time():
    # (how fast that is in real time is a benchmark's business: tools/bench_sim.py)
    sim = Simulator()
    a, _ = two_fake_hosts(sim)
    assert a.wait(lambda: False, 21.0) is False
    assert sim.now == pytest.approx(21.0)
    a.sleep(9.0)
    assert sim.now == pytest.approx(30.0)


def test_timers_fire_at_their_virtual_time():
    sim = Simulator()
    a, b = two_fake_hosts(sim, echo_b=False)
    a.stack.timers = [2.5, 7.0]
    assert b.wait(lambda: len(b.stack.inbox) == 2, 10)
    assert b.stack.inbox == [(2.5, b"tick@2.5"), (7.0, b"tick@7")]
    assert sim.now == 7.0


def test_latency_delays_delivery():
    sim = Simulator(latency_s=0.010)
    a, b = two_fake_hosts(sim)
    a.call(a.stack.send, b"x")
    assert a.wait(lambda: bool(a.stack.inbox), 1)
    assert b.stack.inbox == [(0.010, b"x")]
    assert a.stack.inbox == [(0.020, b"re:x")]


def test_spawned_tasks_interleave_deterministically():
    def scenario() -> list[tuple[float, str]]:
        sim = Simulator(seed=3)
        a, _ = two_fake_hosts(sim)
        log: list[tuple[float, str]] = []

        def worker(name: str, period: float, n: int) -> str:
            for i in range(n):
                log.append((sim.now, f"{name}{i}"))
                a.sleep(period)
            return name

        tasks = [sim.spawn(worker, n, p, 4, name=n) for n, p in (("x", 1.0), ("y", 1.5), ("z", 1.0))]
        sim.run()
        assert [t.result() for t in tasks] == ["x", "y", "z"]
        return log

    first = scenario()
    assert first[:3] == [(0.0, "x0"), (0.0, "y0"), (0.0, "z0")]  # spawn order at equal times
    assert (1.0, "x1") in first and (1.5, "y1") in first
    times = [t for t, _ in first]
    assert times == sorted(times)
    for _ in range(3):
        assert scenario() == first


def test_only_one_task_runs_at_a_time():
    sim = Simulator()
    a, _ = two_fake_hosts(sim)
    inside = [0]
    overlap = []

    def worker() -> None:
        for _ in range(20):
            inside[0] += 1
            if inside[0] != 1:
                overlap.append(inside[0])
            time.sleep(0.0005)  # real time: another free thread would get in here
            inside[0] -= 1
            a.sleep(0.001)

    for _ in range(4):
        sim.spawn(worker)
    sim.run()
    assert overlap == []


def test_tasks_start_only_when_someone_drives():
    sim = Simulator()
    ran = threading.Event()
    t = sim.spawn(ran.set)
    time.sleep(0.15)  # longer than the park check interval
    assert not ran.is_set()
    t.join()
    assert ran.is_set()


def test_task_exceptions_reach_join_result_and_run():
    sim = Simulator()
    a, _ = two_fake_hosts(sim)

    def bad() -> None:
        a.sleep(1)
        raise KeyError("inside task")

    t = sim.spawn(bad)
    with pytest.raises(KeyError, match="inside task"):
        t.result()
    t2 = sim.spawn(bad)
    with pytest.raises(KeyError):
        sim.run()
    assert t2.done and isinstance(t2.exception, KeyError)


def test_join_with_timeout_in_virtual_time():
    sim = Simulator()
    a, _ = two_fake_hosts(sim)
    t = sim.spawn(a.sleep, 100.0)
    assert t.join(5.0) is False
    assert sim.now == pytest.approx(5.0)
    with pytest.raises(TimeoutError):
        t.result(1.0)
    assert t.join() is True
    assert sim.now == pytest.approx(100.0)


def test_waiters_wake_on_network_events_between_tasks():
    sim = Simulator(latency_s=0.005)
    a, b = two_fake_hosts(sim)

    def client() -> float:
        a.call(a.stack.send, b"ping")
        assert a.wait(lambda: any(f == b"re:ping" for f in a.stack.frames()), 1.0)
        return a.now()

    def server() -> float:
        assert b.wait(lambda: b.stack.frames() == [b"ping"], 1.0)
        return b.now()

    ts, tc = sim.spawn(server), sim.spawn(client)
    sim.run()
    assert ts.result() == pytest.approx(0.005)
    assert tc.result() == pytest.approx(0.010)


def test_deadlock_is_reported_not_hung():
    sim = Simulator()
    a, _ = two_fake_hosts(sim)
    with pytest.raises(SimulationDeadlock, match="deadlock"):
        a.wait(lambda: False)  # main thread alone, no deadline, idle network


def test_deadlock_between_tasks_surfaces_in_run():
    sim = Simulator()
    a, _ = two_fake_hosts(sim)
    ev = []

    def stuck(name: str) -> None:
        a.wait(lambda: bool(ev))

    t1, t2 = sim.spawn(stuck, "1"), sim.spawn(stuck, "2")
    with pytest.raises(SimulationDeadlock):  # found at once, not by the wall-clock limit (a timeout)
        sim.run()
    assert isinstance(t1.exception, SimulationDeadlock) and isinstance(t2.exception, SimulationDeadlock)


def test_stall_limit_when_timers_never_stop():
    sim = Simulator(stall_limit_s=50.0)
    a, _ = two_fake_hosts(sim)

    class Periodic(FakeStack):
        def poll_at(self):
            return float(int(sim.now) + 1)  # something due every second, forever

    sim.add_host("198.18.0.3/24", name="p", stack=Periodic())
    with pytest.raises(SimulationTimeout, match="stall"):
        a.wait(lambda: False)
    assert 50.0 <= sim.now <= 52.0


def test_run_until_and_run_for():
    sim = Simulator()
    a, b = two_fake_hosts(sim, echo_b=False)
    a.stack.timers = [1.0, 5.0, 20.0]
    sim.run(until=6.0)
    assert [f for f in b.stack.frames()] == [b"tick@1", b"tick@5"]
    assert sim.now == pytest.approx(5.0)  # idle before 6: stopped at the last event
    sim.run_for(4.0)
    assert sim.now == pytest.approx(9.0)
    sim.run()
    assert sim.now == pytest.approx(20.0) and len(b.stack.inbox) == 3


@pytest.mark.internal_error_expected
def test_processing_errors_are_counted_not_raised():
    sim = Simulator()
    a = sim.add_host("198.18.0.1/24", name="a", stack=FakeStack("a"))
    b = sim.add_host("198.18.0.2/24", name="b", stack=FakeStack("b", echo=True, explode_on=b"bad"))
    a.call(a.stack.send, b"bad1")
    a.call(a.stack.send, b"good")
    assert a.wait(lambda: b"re:good" in a.stack.frames(), 1)
    assert b.errors == 1 and sim.errors == 1
    assert b.stack.counters.get("runtime.errors") == 1
    assert "boom" in str(b.last_error)


def test_wait_in_a_stack_callback_is_refused():
    sim = Simulator()
    errors = []

    class Reentrant(FakeStack):
        def receive(self, frame, now):
            try:
                h.wait(lambda: True, 1)
            except RuntimeError as e:
                errors.append(e)

    a = sim.add_host("198.18.0.1/24", name="a", stack=FakeStack("a"))
    h = sim.add_host("198.18.0.2/24", name="b", stack=Reentrant())
    a.call(a.stack.send, b"x")
    a.sleep(0.1)
    assert len(errors) == 1


def test_close_releases_blocked_tasks():
    sim = Simulator()
    a, _ = two_fake_hosts(sim)
    t = sim.spawn(a.wait, lambda: False)
    a.sleep(1.0)  # t runs and blocks (it has no deadline; our sleep keeps time moving)
    sim.close()
    deadline = time.monotonic() + 2
    while not t.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert t.done and isinstance(t.exception, SimulationClosed)


def test_adopted_foreign_thread_is_scheduled():
    sim = Simulator()
    a, b = two_fake_hosts(sim)
    results = []

    def foreign() -> None:
        results.append(b.wait(lambda: b.stack.frames() == [b"late"], 30))
        results.append(b.now())

    th = threading.Thread(target=foreign)
    th.start()
    time.sleep(0.05)  # it parks: the main thread was adopted first and holds the baton
    a.sleep(2.0)
    a.call(a.stack.send, b"late")
    a.sleep(1.0)
    th.join(5)
    assert results == [True, 2.0]


def test_real_join_does_not_hang_thanks_to_the_lease():
    sim = Simulator(lease_s=0.2)
    _, b = two_fake_hosts(sim)
    out = []

    def server() -> None:
        out.append(b.wait(lambda: False, 5.0))
        out.append(b.now())

    th = threading.Thread(target=server)
    th.start()
    th.join(5)  # a real join: the main thread holds the baton but is away from the simulator
    assert out == [False, 5.0]
    assert sim.lease_revocations >= 1


def test_busy_polling_task_lets_virtual_time_move():
    sim = Simulator(latency_s=0.001)
    a, b = two_fake_hosts(sim, echo_b=False)

    def sender() -> None:
        a.sleep(1.5)
        a.call(a.stack.send, b"late")

    def poller() -> tuple[int, float]:
        polls = 0
        while not b.call(lambda: bool(b.stack.inbox)):  # never blocks: a nonblocking recv loop
            polls += 1
        return polls, b.now()

    sim.spawn(sender)
    p = sim.spawn(poller)
    sim.run()
    polls, t = p.result()
    assert t == pytest.approx(1.501)
    assert polls < 10 * sim.spin_limit and sim.spin_yields >= 1


def test_zero_timeout_waits_count_as_polling():
    sim = Simulator()
    a, b = two_fake_hosts(sim, echo_b=False)
    a.stack.timers = [3.0]
    n = 0
    while not b.wait(lambda: bool(b.stack.inbox), 0):
        n += 1
    assert b.stack.frames() == [b"tick@3"] and sim.now == 3.0


def test_sends_in_a_loop_stay_at_one_instant():
    sim = Simulator()  # zero latency: a long sending loop does not move the clock
    a, b = two_fake_hosts(sim, echo_b=False)
    for i in range(1000):
        a.call(a.stack.send, b"%d" % i)
    assert sim.now == 0.0
    a.sleep(0)
    assert len(b.stack.inbox) == 1000


class _Periodic(FakeStack):
    """Something due every `period` seconds of virtual time, forever."""

    def __init__(self, sim: Simulator, period: float) -> None:
        super().__init__("periodic")
        self.period = period
        self.next_at = period

    def poll(self, now):
        while self.next_at <= now:
            self.next_at += self.period
        return super().poll(now)

    def poll_at(self):
        return self.next_at


def test_wall_clock_limit_bounds_a_phase():
    sim = Simulator(wall_limit_s=0.3, stall_limit_s=1e12)
    a, _ = two_fake_hosts(sim)
    sim.add_host("198.18.0.3/24", name="p", stack=_Periodic(sim, 0.001))
    wall = time.monotonic()
    with pytest.raises(SimulationTimeout, match="wall-clock"):
        a.wait(lambda: False)
    assert time.monotonic() - wall >= 0.3  # not before the limit (how much later depends on load)


def test_virtual_time_limit():
    sim = Simulator(time_limit_s=100.0)
    a, _ = two_fake_hosts(sim)
    assert a.wait(lambda: False, 50) is False
    with pytest.raises(SimulationTimeout, match="virtual time limit"):
        a.sleep(80)
    assert sim.now <= 100.0


def test_a_deadline_stuck_in_the_past_is_a_livelock_error_not_a_hang():
    from ustack.runtime.simulator import SimulationError

    class Stuck(FakeStack):
        def poll_at(self):
            return 0.5  # never cleared by poll()

    sim = Simulator()
    a, _ = two_fake_hosts(sim)
    sim.add_host("198.18.0.3/24", name="s", stack=Stuck())
    with pytest.raises(SimulationError, match="livelock"):  # not the wall-clock limit's timeout
        a.sleep(1.0)


def test_run_on_a_network_that_never_idles_says_so():
    sim = Simulator(stall_limit_s=30.0)
    sim.add_host("198.18.0.3/24", name="p", stack=_Periodic(sim, 1.0))
    with pytest.raises(SimulationTimeout, match="until="):
        sim.run()
    assert sim.run(until=40.0) == 40.0  # with a bound it simply stops there
