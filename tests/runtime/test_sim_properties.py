"""Property checks of the scheduler: random task programs replay identically, sleeps end
exactly on time, the clock never goes back, and runs always terminate."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.runtime.fakes import FakeStack
from ustack.runtime.simulator import SimulationDeadlock, Simulator

op = st.one_of(
    st.tuples(st.just("sleep"), st.sampled_from([0.0, 0.001, 0.25, 1.0, 3.0])),
    st.tuples(st.just("send"), st.integers(0, 2)),
    st.tuples(st.just("wait"), st.integers(1, 4), st.sampled_from([None, 0.0, 0.5, 2.0])),
    st.tuples(st.just("timer"), st.sampled_from([0.1, 0.7, 2.5])),
)
programs = st.lists(st.lists(op, max_size=8), min_size=1, max_size=4)


def execute(progs: list, seed: int) -> list:
    log: list = []
    with Simulator(seed=seed, latency_s=0.01) as sim:
        hosts = [sim.add_host(f"198.18.0.{i + 1}/24", name=f"h{i}", stack=FakeStack(f"h{i}"))
                 for i in range(3)]

        def task(tid: int, prog: list) -> None:
            me = hosts[tid % 3]
            for step in prog:
                kind = step[0]
                if kind == "sleep":
                    t0 = me.now()
                    me.sleep(step[1])
                    assert me.now() == t0 + step[1]  # exactly on time, in virtual seconds
                elif kind == "send":
                    me.call(me.stack.send, b"%d>%d" % (tid, step[1]))
                elif kind == "timer":
                    me.call(me.stack.timers.append, me.now() + step[1])
                else:
                    try:
                        ok = me.wait(lambda n=step[1]: len(me.stack.inbox) >= n, step[2])
                    except SimulationDeadlock:
                        ok = "deadlock"
                    log.append((tid, "wait", ok, me.now()))
                    continue
                log.append((tid, kind, me.now()))

        tasks = [sim.spawn(task, i, p) for i, p in enumerate(progs)]
        sim.run()
        for t in tasks:
            t.join()
        log.append(("end", sim.now, [len(h.stack.inbox) for h in hosts]))
    return log


@settings(max_examples=30, deadline=None)
@given(programs, st.integers(0, 3))
def test_random_programs_replay_identically(progs, seed):
    first = execute(progs, seed)
    assert execute(progs, seed) == first
    times = [e[-1] for e in first[:-1]]
    assert times == sorted(times)  # one task at a time, and the clock never goes back
    assert first[-1][1] >= (times[-1] if times else 0.0)
