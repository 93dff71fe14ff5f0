"""Simulator: several hosts on in-memory links, in virtual time, deterministic for a seed.

Network: each host is a Stack on a MemSegment port (one shared link per simulator unless a
host names another), optionally behind a FaultInjector, a PcapWriter and a Tracer. A link may
have faults of its own and a pcap of the wire. Frames and timers are processed at virtual
instants; the clock jumps straight to the next instant at which something is due.

Application threads: tests and Winsock code block in `host.wait(...)` / `host.sleep(...)`.
Every thread that does so is a *task* of the simulator, and exactly one task runs at a time
(it holds the baton). When the running task blocks, the scheduler hands the baton to the
next runnable task in FIFO order; when none is runnable, it advances the network (deliver
frames, fire the earliest deadline, move the clock) until some waiter's predicate becomes
true or its deadline passes. So a 21-second timeout takes milliseconds of wall time, and the
same seed gives the same run, frame for frame.

- `sim.spawn(fn, *args)` starts a task (it first runs when the current holder blocks, as in
  asyncio); `task.join()` / `task.result()` wait for it in virtual time and re-raise its
  exception. The thread that creates the Simulator holds the baton from the start; any other
  thread is adopted at its first wait/sleep and then queues for the baton.
- Busy-polling (nonblocking calls in a loop) works: after `spin_limit` non-blocking calls in a
  row the running task yields and the clock moves to the next event.
- Deadlock: if every task waits without a deadline and the network is idle, the waiters get
  `SimulationDeadlock` (a task in `sim.run()` only if nobody else is waiting).
- Safety: one scheduling phase (no task running) is bounded by `wall_limit_s` of real time
  and, when no waiter has a deadline, by `stall_limit_s` of virtual time; virtual time as a
  whole by `time_limit_s`. Past a limit, the waiters get `SimulationTimeout`. A holder that
  stays away from the simulator for `lease_s` of wall time (blocked in a real Thread.join)
  loses the baton so the others are not stuck; determinism is then lost, not liveness.
- Processing errors never propagate: they are counted per host (`errors`, `last_error`) and
  in `sim.errors`.
"""

from __future__ import annotations

import math
import random
import threading
import time
from bisect import insort
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from .base import ErrorLog, run_network_tasks
from .base import earliest as _earliest
from .clock import VirtualClock
from .host import build_stack, fault_scenario

T = TypeVar("T")

NEW, RUNNABLE, RUNNING, WAITING, DONE = "new", "runnable", "running", "waiting", "done"
_PARK_CHECK_S = 0.05  # a parked thread checks this often whether the baton holder died
_MAX_ROUNDS = 100_000  # host-processing rounds at one instant before calling it a livelock
_BATCH = 256


class SimulationError(RuntimeError):
    """The simulation cannot go on as asked."""


class SimulationDeadlock(SimulationError):
    """Every task waits with no deadline and the network is idle: nothing can ever happen."""


class SimulationTimeout(SimulationError):
    """A safety limit (wall-clock time of one scheduling phase, or virtual time) was hit."""


class SimulationClosed(SimulationError):
    """The simulator was closed while this thread was blocked in it."""


class Task:
    """An application thread under the simulator's control."""

    def __init__(self, sim: Simulator, name: str, index: int, fn: Callable[..., Any] | None = None,
                 args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
                 adopted: bool = False) -> None:
        self.sim = sim
        self.name = name
        self.index = index
        self.adopted = adopted
        self.thread: threading.Thread | None = None
        self.state = NEW
        self._fn, self._args, self._kwargs = fn, args, kwargs or {}
        self._cv = threading.Condition(sim._lock)
        self._predicate: Callable[[], bool] | None = None
        self._deadline: float | None = None
        self._outcome: Any = None
        self._in_run = False
        self._value: Any = None
        self._exc: BaseException | None = None
        self._reported = False

    @property
    def done(self) -> bool:
        return self.state == DONE

    @property
    def exception(self) -> BaseException | None:
        return self._exc

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait (virtual time) for the task to finish: True if it did. Re-raises its exception."""
        if self.sim._task_of_current_thread() is self:
            raise RuntimeError(f"task {self.name} cannot join itself")
        self.sim._block(lambda: self.state == DONE, timeout_s)
        if self.state != DONE:
            return False
        if self._exc is not None:
            self._reported = True
            raise self._exc
        return True

    def result(self, timeout_s: float | None = None) -> Any:
        """The task's return value; re-raises its exception; TimeoutError if still running."""
        if not self.join(timeout_s):
            raise TimeoutError(f"task {self.name} still running after {timeout_s} s of virtual time")
        return self._value

    def __lt__(self, other: Task) -> bool:  # waiters are kept sorted by creation order
        return self.index < other.index

    def __repr__(self) -> str:
        return f"Task({self.name!r}, {self.state})"


class SimHost(ErrorLog):
    """One simulated host; implements the runtime interface (see ustack.runtime.base)."""

    def __init__(self, sim: Simulator, name: str, stack: Any, device: Any, port: Any, link: str,
                 faults: Any = None, pcap: Any = None) -> None:
        self.sim = sim
        self.name = name
        self.stack = stack
        self.device = device  # the outermost device the stack talks to
        self.port = port  # the MemPort on the link
        self.link = link
        self.faults = faults  # the FaultInjector, if any
        self.pcap = pcap  # the PcapWriter, if any
        self.winsock: Any = None  # this host's shared Winsock (Winsock.for_host), made on first use
        ErrorLog.__init__(self)
        self.closed = False
        self._tasks: list[Callable[[float], float | None]] = []  # network tasks (as Host's)
        self._task_at: float | None = None

    # -- runtime interface -----------------------------------------------------------------------
    @property
    def lock(self) -> threading.RLock:
        return self.sim._lock

    def now(self) -> float:
        return self.sim.clock.t

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        with self.sim._lock:
            self.sim._note_call()
            try:
                return fn(*args)
            finally:
                if not self.closed:
                    self._flush(self.sim.clock.t)

    @contextmanager
    def locked(self) -> Iterator[Any]:
        with self.sim._lock:
            self.sim._note_call()
            try:
                yield self.stack
            finally:
                if not self.closed:
                    self._flush(self.sim.clock.t)

    def wait(self, predicate: Callable[[], bool], timeout_s: float | None = None) -> bool:
        return bool(self.sim._block(predicate, timeout_s))

    def sleep(self, s: float) -> None:
        self.sim._block(None, s)

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str | None = None) -> Task:
        return self.sim.spawn(fn, *args, name=name)

    def add_network_task(self, fn: Callable[[float], float | None]) -> None:
        """As Host's: fn(now) runs in the network phase (no task running; `wait` and `sleep`
        raise there) after this host's frames and timers, while it is due; due at once."""
        self._tasks.append(fn)
        self.wake_network_tasks()

    def remove_network_task(self, fn: Callable[[float], float | None]) -> None:
        if fn in self._tasks:
            self._tasks.remove(fn)

    def wake_network_tasks(self) -> None:
        """Under the lock: the network tasks run at the current instant's network phase."""
        self._task_at = -math.inf

    def close(self) -> None:
        with self.sim._lock:
            if self.closed:
                return
            self.closed = True
            self.sim._detach(self)
            try:
                self.device.close()
            except Exception as e:  # noqa: BLE001
                self._count_error(e)

    @property
    def down(self) -> bool:
        """True once this host or its simulator is closed."""
        return self.closed or self.sim._closed

    def __enter__(self) -> SimHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SimHost({self.name!r}, link={self.link!r})"

    # -- network processing (simulator lock held) ------------------------------------------------
    def _next_at(self) -> float | None:
        try:
            return _earliest(_earliest(self.stack.poll_at(), self.device.poll_at()), self._task_at)
        except Exception as e:  # noqa: BLE001
            self._count_error(e)
            return None

    def _process(self, now: float) -> None:
        dev, receive = self.device, self.stack.receive
        for _ in range(_MAX_ROUNDS):
            try:
                frames = dev.recv_batch(now, _BATCH)
            except Exception as e:  # noqa: BLE001
                self._count_error(e)
                break
            if not frames:
                break
            for frame in frames:
                try:
                    receive(frame, now)
                except Exception as e:  # noqa: BLE001
                    self._count_error(e)
            self._flush(now)
        self._flush(now)
        task_at = self._task_at
        if task_at is not None and task_at <= now:
            self._task_at = None  # a wake during the pass (the tasks' own events) is kept
            self._task_at = _earliest(run_network_tasks(self._tasks, now, self._count_error), self._task_at)
            self._flush(now)

    def _flush(self, now: float) -> None:
        try:
            out = self.stack.poll(now)
        except Exception as e:  # noqa: BLE001
            self._count_error(e)
            return
        send = self.device.send
        for frame in out:
            try:
                send(frame, now)
            except Exception as e:  # noqa: BLE001
                self._count_error(e)

    def _count_error(self, e: BaseException) -> None:
        self.sim.errors += 1
        super()._count_error(e)


class Simulator:
    """Hosts on virtual links in virtual time. See the module docstring."""

    def __init__(self, seed: int = 0, *, start_time: float = 0.0, latency_s: float = 0.0,
                 wall_limit_s: float = 60.0, time_limit_s: float | None = None,
                 stall_limit_s: float = 86400.0, lease_s: float | None = 2.0,
                 spin_limit: int | None = 200) -> None:
        self.seed = seed
        self.clock = VirtualClock(start_time)
        self.latency_s = latency_s  # default for links created implicitly
        self.wall_limit_s = wall_limit_s
        self.time_limit_s = time_limit_s
        self.stall_limit_s = stall_limit_s
        self.lease_s = lease_s
        self.lease_revocations = 0  # times a holder lost the baton by staying away too long
        self.spin_limit = spin_limit
        self.spin_yields = 0  # implicit yields of busy-polling tasks
        self._spins = 0  # calls by the running task since it last blocked
        self.errors = 0  # processing errors over all hosts
        self.hosts: list[SimHost] = []
        self._lock = threading.RLock()
        self._links: dict[str, Any] = {}
        self._sniffers: list[Any] = []  # link pcaps
        self._link_faults: dict[str, Any] = {}
        self._link_engines: dict[str, Any] = {}  # name -> drivers.FaultEngine shared by its ports
        self._host_count = 0
        self._tasks: dict[int, Task] = {}  # thread ident -> task
        self._spawned: list[Task] = []
        self._task_count = 0
        self._runnable: deque[Task] = deque()
        self._waiting: list[Task] = []  # sorted by task index
        self._running: Task | None = None
        self._in_network = False
        self._closed = False
        self._baton_at = time.monotonic()  # when the holder last got the baton or used the sim
        with self._lock:
            self._current_task()  # the creating thread drives: it holds the baton from the start

    # -- topology --------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.clock.t

    def link(self, name: str = "default", medium: str | None = None, mtu: int = 1500, *, faults: Any = None,
             latency_s: float | None = None, queue_limit: int = 4096, pcap: Any = None) -> Any:
        """Create (or return) the named link: a MemSegment. `faults` (a Scenario, FaultConfig,
        dict, spec string or .toml scenario file) apply to every frame sent on it: a tx-side
        FaultInjector on each port, each with its own derived seed, all sharing one engine (a
        rule's nth= counts frames on the whole link; a scheduled change hits every port; times
        count from the link's creation). `pcap` (path or binary file) records the wire: every
        frame that goes on the link, after the senders' faults, stamped with its delivery time
        (pcapng with a comment per fault event when the link has faults)."""
        from ustack.drivers import FaultEngine, MemSegment

        with self._lock:
            seg = self._links.get(name)
            if seg is not None:
                if medium is not None and seg.medium != medium:
                    raise ValueError(f"link {name!r} is {seg.medium}, not {medium}")
                if faults is not None:
                    raise ValueError(f"link {name!r} exists: give its faults when it is created "
                                     "(before the first add_host on it)")
                if pcap is not None:
                    self._sniff(seg, pcap)
                return seg
            if latency_s is None:
                latency_s = self.latency_s
            scenario = fault_scenario(faults, link=True)  # a bad scenario fails before the link exists
            seg = MemSegment(medium or "ip", mtu, latency_s=latency_s, queue_limit=queue_limit, name=name)
            self._links[name] = seg
            self._link_faults[name] = scenario
            if scenario is not None:
                self._link_engines[name] = FaultEngine(scenario, seg.medium, origin=self.clock.t)
            if pcap is not None:
                self._sniff(seg, pcap)
            return seg

    def _sniff(self, seg: Any, pcap: Any) -> None:
        """A passive port that writes every frame on the segment to `pcap` at delivery time."""
        from ustack.drivers import PcapWriter

        engine = self._link_engines.get(seg.name)
        sniffer = PcapWriter(seg.attach(f"{seg.name}.pcap"), pcap, direction="rx",
                             comments=engine is not None)
        sniffer.inner.on_pending = lambda port, due: sniffer.recv_batch(due, 1 << 30)
        if engine is not None:
            engine.add_listener(sniffer.note_fault)
        self._sniffers.append(sniffer)

    def add_host(self, addr: str, name: str | None = None, gateway: str | None = None, mtu: int = 1500,
                 medium: str = "ip", faults: Any = None, link: str | None = None, pcap: Any = None, *,
                 tcp: Any = None, stack: Any = None, mac: bytes | None = None,
                 seed: int | None = None, trace: Any = None) -> SimHost:
        """A new host on `link` (default: the simulator's shared link "default").

        faults: Scenario / FaultConfig / dict / spec string / .toml scenario file for a
        FaultInjector on this host's port (its seed is mixed with the simulator's; scheduled
        times count from the host's creation). pcap: path or binary file recording what this
        stack sends and receives, timestamped in virtual time (pcapng with a comment per fault
        event when the host or its link has faults). stack: a ready stack object
        instead of building Stack(StackConfig(...)). seed: the stack's seed (default: derived
        from the simulator's seed and the host's index). trace: True (stderr), a text stream or
        a callable taking one line: one line per frame, in virtual time.
        """
        from ustack import drivers

        with self._lock:
            if self._closed:
                raise SimulationClosed("simulator is closed")
            index = self._host_count
            name = name or f"h{index}"
            if any(h.name == name for h in self.hosts):
                raise ValueError(f"a host named {name!r} already exists")
            link_name = link or "default"
            scenario = fault_scenario(faults)  # a bad scenario fails before the host exists
            seg = self.link(link_name, medium, mtu)
            port = seg.attach(name)
            dev: Any = port
            engines = []
            link_sc = self._link_faults.get(link_name)
            if link_sc is not None:
                link_cfg = link_sc.link
                direction = "tx" if link_cfg.direction == "both" else link_cfg.direction
                seed = self._derive("link", link_name, name, link_cfg.seed)
                dev = drivers.FaultInjector(dev, scenario=link_sc.with_link(direction=direction, seed=seed),
                                            engine=self._link_engines[link_name], name=name)
                engines.append(dev.engine)
            injector = None
            if scenario is not None:
                injector = dev = drivers.FaultInjector(
                    dev, scenario=scenario.with_seed(self._derive("faults", name, scenario.seed)),
                    origin=self.clock.t)
                engines.append(injector.engine)
            writer = None
            if pcap is not None:
                writer = dev = drivers.PcapWriter(dev, pcap, comments=bool(engines))
                for engine in engines:
                    engine.add_listener(writer.note_fault)
            if trace:
                dev = drivers.Tracer(dev, None if trace is True else trace)
                for engine in engines:
                    engine.add_listener(dev.note_fault)
            if stack is None:
                if medium == "ethernet" and mac is None:
                    mac = bytes((0x02, 0x75, 0x73, 0x00, (index + 1) >> 8 & 0xFF, (index + 1) & 0xFF))
                stack = build_stack(addr=addr, gateway=gateway, mtu=mtu, medium=medium, mac=mac,
                                    seed=self._derive("stack", index) if seed is None else seed, tcp=tcp)
            host = SimHost(self, name, stack, dev, port, link_name, injector, writer)
            self._host_count += 1
            self.hosts.append(host)
            start = getattr(stack, "start", None)
            if start is not None:
                try:
                    start(self.clock.t)
                except Exception as e:  # noqa: BLE001
                    host._count_error(e)
            host._flush(self.clock.t)
            return host

    def host(self, name: str) -> SimHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def _derive(self, *parts: object) -> int:
        # str seeds hash with SHA-512: stable across runs and PYTHONHASHSEED values.
        return random.Random(":".join(map(str, (self.seed, *parts)))).getrandbits(63)

    def _detach(self, host: SimHost) -> None:
        self.hosts = [h for h in self.hosts if h is not host]

    # -- tasks -----------------------------------------------------------------------------------
    def spawn(self, fn: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any) -> Task:
        """Start fn(*args, **kwargs) as a task. It first runs when the running task blocks."""
        with self._lock:
            if self._closed:
                raise SimulationClosed("simulator is closed")
            index = self._task_count
            self._task_count += 1
            task = Task(self, name or f"task{index}", index, fn, args, kwargs)
            th = threading.Thread(target=self._task_main, args=(task,), name=f"sim-{task.name}",
                                  daemon=True)
            task.thread = th
            th.start()  # it parks on the lock we hold until it gets the baton
            self._tasks[th.ident] = task  # type: ignore[index]
            self._spawned.append(task)
            task.state = RUNNABLE
            self._runnable.append(task)
            return task

    def run(self, until: float | None = None, idle: bool = True) -> float:
        """Run until every spawned task has finished and the network is idle (nothing due
        before `until`), or until virtual time `until`. idle=False: run to `until` regardless.
        Re-raises the first exception of a task that failed and was not joined. Returns now."""
        if until is None and not idle:
            raise ValueError("run(idle=False) needs until=")

        def finished() -> bool:
            for t in self._spawned:
                if t.state != DONE and t is not me:
                    return False
            if not idle:
                return False
            nxt = self._network_next_at()
            return nxt is None or (until is not None and nxt > until)

        with self._lock:
            me = self._current_task()
            me._in_run = True
            try:
                timeout = None if until is None else max(0.0, until - self.clock.t)
                self._block(finished, timeout)
            finally:
                me._in_run = False
                for h in self.hosts:
                    if h.pcap is not None:
                        h.pcap.flush()  # readable by tools right after run() returns
                for sniffer in self._sniffers:
                    sniffer.flush()
            failed = [t for t in self._spawned if t.state == DONE and t._exc is not None and not t._reported]
            self._spawned = [t for t in self._spawned if t.state != DONE or t in failed]
            for t in failed:
                t._reported = True
            if failed:
                raise failed[0]._exc  # type: ignore[misc]
            return self.clock.t

    def run_for(self, s: float) -> float:
        """Advance virtual time by s seconds, processing everything due on the way."""
        return self.run(until=self.clock.t + s, idle=False)

    def close(self) -> None:
        """Close every host (flushing pcaps) and release blocked tasks with SimulationClosed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for h in list(self.hosts):
                h.close()
            for sniffer in self._sniffers:
                sniffer.close()
            for t in list(self._tasks.values()):
                t._cv.notify_all()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def tasks(self) -> list[Task]:
        return list(self._spawned)

    # -- scheduling (all under self._lock) -------------------------------------------------------
    def _task_of_current_thread(self) -> Task | None:
        return self._tasks.get(threading.get_ident())

    def _current_task(self) -> Task:
        """The calling thread's task; a new thread is adopted (and waits for the baton)."""
        me = threading.current_thread()
        task = self._tasks.get(me.ident)  # type: ignore[arg-type]
        if task is not None and task.thread is me:
            if self._running is not task:  # its lease was revoked: queue up for the baton again
                self._take_baton(task)
            self._baton_at = time.monotonic()
            return task
        if task is not None:  # a dead thread's ident was reused
            self._forget(task)
        index = self._task_count
        self._task_count += 1
        task = Task(self, me.name, index, adopted=True)
        task.thread = me
        self._tasks[me.ident] = task  # type: ignore[index]
        self._take_baton(task)
        return task

    def _take_baton(self, task: Task) -> None:
        """The calling thread's `task` runs now if nobody holds the baton, else queues and parks."""
        if self._running is None:
            self._running = task
            task.state = RUNNING
        else:
            task.state = RUNNABLE
            self._runnable.append(task)
            self._park(task)

    def _forget(self, task: Task) -> None:
        task.state = DONE
        if self._tasks.get(task.thread.ident if task.thread else -1) is task:  # type: ignore[arg-type]
            del self._tasks[task.thread.ident]  # type: ignore[union-attr,arg-type]
        if task in self._waiting:
            self._waiting.remove(task)
        if task in self._runnable:
            self._runnable.remove(task)
        if self._running is task:
            self._running = None

    def _block(self, predicate: Callable[[], bool] | None, timeout_s: float | None) -> Any:
        """Block the calling thread until predicate() or the timeout (virtual). predicate None:
        a sleep (returns None). Returns True/False for a wait."""
        with self._lock:
            if self._in_network:
                raise RuntimeError("cannot wait or sleep inside network processing (a stack callback)")
            if self._closed:
                raise SimulationClosed("simulator is closed")
            me = self._current_task()
            if predicate is not None and predicate():
                return True
            if timeout_s is not None and timeout_s <= 0:
                if predicate is not None:
                    self._note_call()  # a zero-timeout poll that found nothing: maybe a spin
                    return False
                # sleep(0): deliver what is due now, then let the other runnable tasks go first
                if self._settle():
                    self._wake_ready()
                me.state = RUNNABLE
                self._runnable.append(me)
                self._switch(me)
                return None
            self._spins = 0
            me._predicate = predicate
            me._deadline = None if timeout_s is None else self.clock.t + timeout_s
            me._outcome = None
            me.state = WAITING
            insort(self._waiting, me)
            self._switch(me)
            out, me._outcome, me._predicate = me._outcome, None, None
            if isinstance(out, BaseException):
                raise out
            return out

    def _note_call(self) -> None:
        """Lock held. Count a non-blocking use of the simulator by the running task; after
        `spin_limit` in a row it is busy-polling (a nonblocking recv loop, select with a zero
        timeout): let the simulation move on to its next event, as a real network would
        while the thread spins. Deterministic: it depends only on the number of calls."""
        self._baton_at = time.monotonic()
        limit = self.spin_limit
        if limit is None or self._in_network:
            return
        me = self._tasks.get(threading.get_ident())
        if me is None or self._running is not me:
            return
        self._spins += 1
        if self._spins < limit:
            return
        self._spins = 0
        self.spin_yields += 1
        nxt = _earliest(self._network_next_at(),
                        min((t._deadline for t in self._waiting if t._deadline is not None), default=None))
        dt = 0.0 if nxt is None else max(0.0, nxt - self.clock.t)
        self._block(None, dt)

    def _switch(self, me: Task) -> None:
        """`me` gave up the baton: hand it on (advancing the network if needed), then park."""
        nxt = self._pick_next()
        self._running = nxt
        if nxt is not None and nxt is not me:
            nxt._cv.notify()
        if me.state != DONE:
            self._park(me)

    def _park(self, me: Task) -> None:
        while self._running is not me:
            if self._closed:
                self._forget(me)
                raise SimulationClosed("simulator closed while this thread was blocked in it")
            me._cv.wait(_PARK_CHECK_S)
            if self._running is not me:
                self._check_holder()
        me.state = RUNNING
        self._baton_at = time.monotonic()
        self._spins = 0

    def _check_holder(self) -> None:
        """A parked thread's check that the baton holder is still alive (an adopted thread
        may end while holding it, e.g. a test body that returned)."""
        holder = self._running
        if holder is None:
            return  # nobody drives yet: spawned tasks start when some thread blocks in the sim
        th = holder.thread
        if th is not None and not th.is_alive():
            self._forget(holder)
        elif self.lease_s is not None and time.monotonic() - self._baton_at > self.lease_s:
            # The holder is alive but has not used the simulator for a while: it is blocked
            # outside it (a real Thread.join, a queue...). Let the others go on rather than hang;
            # it queues up for the baton again at its next wait/sleep.
            self.lease_revocations += 1
            holder.state = RUNNABLE
        else:
            return
        self._running = nxt = self._pick_next()
        if nxt is not None:
            nxt._cv.notify()

    def _task_main(self, task: Task) -> None:
        with self._lock:
            try:
                self._park(task)
            except SimulationClosed as e:
                task._exc = e
                return
        try:
            task._value = task._fn(*task._args, **task._kwargs)  # type: ignore[misc]
        except BaseException as e:  # noqa: BLE001 - handed to join()/result()/run()
            task._exc = e
        with self._lock:
            running = self._running is task
            self._forget(task)
            if running and not self._closed:
                self._switch(task)

    def _wake(self, task: Task, outcome: Any) -> None:
        task._outcome = outcome
        self._waiting.remove(task)
        task.state = RUNNABLE
        self._runnable.append(task)

    def _pick_next(self) -> Task | None:
        """The next task to run. With none runnable, advance the network and the clock until
        a waiter wakes; None when no task is left at all."""
        wall0 = time.monotonic()
        steps = 0
        clock = self.clock
        t0 = clock.t
        while True:
            if self._runnable:
                task = self._runnable.popleft()
                task.state = RUNNING
                return task
            if not self._waiting:
                return None
            if not self._settle():
                self._fail_waiters(SimulationError(
                    f"livelock at t={clock.t:.6f}: hosts keep having work due without time passing"),
                    everyone=True)
                continue
            self._wake_ready()
            if self._runnable:
                continue
            t_net = self._network_next_at()
            t_wait = min((t._deadline for t in self._waiting if t._deadline is not None), default=None)
            nxt = _earliest(t_net, t_wait)
            if nxt is None:
                names = ", ".join(t.name for t in self._waiting)
                self._fail_waiters(SimulationDeadlock(
                    f"deadlock at t={clock.t:.6f}: every task waits with no deadline and the network "
                    f"is idle (waiting: {names})"), everyone=False)
                continue
            steps += 1
            if self.time_limit_s is not None and nxt > self.time_limit_s:
                self._fail_waiters(SimulationTimeout(
                    f"virtual time limit {self.time_limit_s} s reached"), everyone=True)
                continue
            if t_wait is None and nxt - t0 > self.stall_limit_s:
                hint = ""
                if any(t._in_run for t in self._waiting):
                    hint = ("; sim.run() without until= waits for the network to go idle, and its "
                            "timers keep firing")
                self._fail_waiters(SimulationTimeout(
                    f"stall: {self.stall_limit_s} s of virtual time passed with every task waiting "
                    f"without a deadline and none waking (t={clock.t:.6f}){hint}"), everyone=True)
                continue
            if steps & 63 == 0 and time.monotonic() - wall0 > self.wall_limit_s:
                self._fail_waiters(SimulationTimeout(
                    f"wall-clock limit {self.wall_limit_s} s hit while advancing the network "
                    f"(virtual t={clock.t:.6f}, next event {nxt:.6f})"), everyone=True)
                continue
            clock.advance_to(nxt)

    def _settle(self) -> bool:
        """Process every host until nothing is due at the current instant. False: livelock."""
        now = self.clock.t
        self._in_network = True
        try:
            for _ in range(_MAX_ROUNDS):
                busy = False
                for h in self.hosts:
                    due = h._next_at()
                    if due is not None and due <= now:
                        h._process(now)
                        busy = True
                if not busy:
                    return True
            return False
        finally:
            self._in_network = False

    def _wake_ready(self) -> None:
        now = self.clock.t
        for task in list(self._waiting):
            pred = task._predicate
            try:
                ok = pred is not None and pred()
            except BaseException as e:  # noqa: BLE001 - raised in the waiting task instead
                self._wake(task, e)
                continue
            if ok:
                self._wake(task, True)
            elif task._deadline is not None and task._deadline <= now:
                self._wake(task, False if pred is not None else None)

    def _fail_waiters(self, error: SimulationError, everyone: bool) -> None:
        targets = list(self._waiting)
        if not everyone:
            others = [t for t in targets if not t._in_run]
            targets = others or targets
        for t in targets:
            self._wake(t, type(error)(*error.args))

    def _network_next_at(self) -> float | None:
        best = None
        for h in self.hosts:
            best = _earliest(best, h._next_at())
        return best


__all__ = ["SimHost", "Simulator", "SimulationClosed", "SimulationDeadlock", "SimulationError",
           "SimulationTimeout", "Task"]
