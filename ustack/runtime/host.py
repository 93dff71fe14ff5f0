"""Host: one Stack on one real device, driven by one network thread in real time.

The network thread sleeps in poll() on the device fd and a wake pipe, with the timeout given
by the earliest of `stack.poll_at()` and `device.poll_at()`. When it wakes it reads frames in
batches, feeds them to the stack, fires timers via `stack.poll(now)` and writes the output.

Application threads never touch the stack outside the lock: `call(fn)` runs fn under the lock
and then flushes the output in the caller's thread (the lowest-latency option: no thread hop
before the frame reaches the device); if fn created an earlier deadline than the one the
network thread sleeps until, the thread is kicked through the wake pipe. `wait(predicate)`
blocks on a Condition that the network thread notifies after each batch, only when someone
waits.

Nothing escapes the network thread: an exception from processing is counted (`errors`,
`last_error`, and the stack counter `runtime.errors`) and the loop goes on; a device error
(the interface vanished, a read that fails hard) stops the thread cleanly and is kept in
`device_error`. Threads blocked in `wait` are then released (it returns the predicate's value).

Network tasks (`add_network_task(fn)`): non-blocking work that runs on the network thread itself,
under the lock, right after the frames and timers of a wake-up, and is flushed in the same pass
(e.g. serve's handlers: the echo leaves in the wake-up that brought the request, with no second
thread to wake). `fn(now)` returns when it next wants to run (None: only when woken again by
`wake_network_tasks()`, a deadline at or before now: at once, after the device is read again:
bounded work per pass). A task must never block (`wait` raises there); its exceptions are
counted like any processing error.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import random
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, TypeVar

from .base import ErrorLog, RuntimeClosed, run_network_tasks
from .base import earliest as _earliest

T = TypeVar("T")

BATCH = 64  # frames per device read
MAX_BATCHES = 16  # full batches handled per lock hold before application threads get a turn
_POLLIN = select.POLLIN
_POLL_BAD = select.POLLERR | select.POLLHUP | select.POLLNVAL
_INF = math.inf
_UNTRUSTED = itertools.repeat(0)  # receive_batch's rx value for frames checked in full


class ThreadTask:
    """A plain application thread started by `Host.spawn`; join/result re-raise its exception."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], name: str) -> None:
        self.name = name
        self._fn, self._args = fn, args
        self._value: Any = None
        self._exc: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self._value = self._fn(*self._args)
        except BaseException as e:  # noqa: BLE001 - handed to join()/result()
            self._exc = e

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> bool:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return False
        if self._exc is not None:
            raise self._exc
        return True

    def result(self, timeout_s: float | None = None) -> Any:
        if not self.join(timeout_s):
            raise TimeoutError(f"task {self.name} still running after {timeout_s} s")
        return self._value


class Host(ErrorLog):
    """Runs `stack` on `device` in one network thread. See the module docstring.

    `errors`, `last_error`, `error_log`: processing errors swallowed (see ErrorLog)."""

    def __init__(self, stack: Any, device: Any, clock: Callable[[], float] = time.monotonic, *,
                 name: str = "host", start: bool = True) -> None:
        self.stack = stack
        self.device = device
        self.clock = clock
        self.name = name
        self.winsock: Any = None  # this host's shared Winsock (Winsock.for_host), made on first use
        self.lock = threading.RLock()
        self._cond = threading.Condition(self.lock)
        self._waiters = 0
        ErrorLog.__init__(self)
        self.device_error: BaseException | None = None  # why the network thread stopped
        self.batches = 0  # non-empty device reads handled (visibility for benchmarks)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_sent = False
        self._sleep_until = _INF  # when the network thread will next look at timers
        self._stop = False
        self._closed = False
        self._running = False
        self._thread: threading.Thread | None = None
        self._started = False
        self._hooked: Any = None  # the in-memory port whose on_pending kicks us
        self._tasks: list[Callable[[float], float | None]] = []  # network tasks (see the module doc)
        self._task_at: float | None = None  # when they next want to run (None: when woken)
        self._trusted_read = _trusted_reader(stack, device)
        if self._trusted_read is not None and hasattr(stack, "gso_max"):
            # transmit offload (TSO) on a bare device that takes super-segments; never through
            # middleware, which must see every frame as the wire carries it
            stack.gso_max = getattr(device, "gso_max", 0)
        if device.fileno() is None:
            self._hooked = _hook_in_memory_device(device, self._kick)
        if start:
            self.start()

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> Host:
        """Start the network thread (once); runs `stack.start(now)` first."""
        with self.lock:
            if self._started or self._closed:
                return self
            self._started = True
            start = getattr(self.stack, "start", None)
            if start is not None:
                try:
                    start(self.clock())
                except Exception as e:  # noqa: BLE001 - counted like any processing error
                    self._count_error(e)
            self._flush()
            self._running = True
            self._thread = threading.Thread(target=self._run, name=f"ustack-net-{self.name}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the network thread, close the device, release waiters. Idempotent."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            self._stop = True
            self._kick()
            self._cond.notify_all()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(10.0)
        try:
            self.device.close()
        except Exception as e:  # noqa: BLE001 - closing must not fail half-way
            self._count_error(e)
        if self._hooked is not None:
            self._hooked.on_pending = None  # no more kicks from the peer's thread
        # Invalidate before closing: a late kick must never write into a reused fd number.
        fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    @property
    def offload(self) -> bool:
        """True when the network thread takes (frame, checksum_trusted) batches from a bare
        offloading device (TunDevice(offload=True)) and the stack skips checksums the kernel
        vouched for. Never through middleware: a fault injector's corruption is always seen."""
        return self._trusted_read is not None

    @property
    def running(self) -> bool:
        """True while the network thread runs."""
        return self._running

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def down(self) -> bool:
        """True when the network is unusable: closed, or the network thread stopped (device
        error: see `device_error`). Blocking calls should then fail (WSAENETDOWN)."""
        return self._closed or (self._started and not self._running)

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._running else "stopped"
        return f"Host({self.name!r}, {state}, device={self.device!r})"

    # -- the runtime interface -------------------------------------------------------------------
    def now(self) -> float:
        return self.clock()

    def sleep(self, s: float) -> None:
        if s > 0:
            time.sleep(s)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) under the stack lock; then the stack's output goes to the device at once."""
        with self.lock:
            try:
                return fn(*args)
            finally:
                self._after_app()

    @contextmanager
    def locked(self) -> Iterator[Any]:
        """`with host.locked() as stack:` — the lock for a block; output flushed on exit."""
        with self.lock:
            try:
                yield self.stack
            finally:
                self._after_app()

    def wait(self, predicate: Callable[[], bool], timeout_s: float | None = None) -> bool:
        """Block until predicate() (run under the lock) is true, or timeout_s passes."""
        if self._thread is not None and threading.current_thread() is self._thread:
            raise RuntimeError("host.wait() called from the network thread would deadlock")
        clock = self.clock
        deadline = None if timeout_s is None else clock() + timeout_s
        with self._cond:
            while True:
                if predicate():
                    return True
                if not self._running:
                    return False  # nothing will ever change it now
                if deadline is None:
                    left = None
                else:
                    left = deadline - clock()
                    if left <= 0:
                        return False
                self._waiters += 1
                try:
                    self._cond.wait(left)
                finally:
                    self._waiters -= 1

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str | None = None) -> ThreadTask:
        """Start fn(*args) in a plain application thread."""
        return ThreadTask(fn, args, name or f"{self.name}-task")

    def add_network_task(self, fn: Callable[[float], float | None]) -> None:
        """Run fn(now) on the network thread, under the lock, after each wake-up's input and
        timers while it is due (see the module docstring); due at once. Call under the lock."""
        self._tasks.append(fn)
        self.wake_network_tasks()

    def remove_network_task(self, fn: Callable[[float], float | None]) -> None:
        """Stop running fn (no error if it is not registered). Call under the lock."""
        if fn in self._tasks:
            self._tasks.remove(fn)

    def wake_network_tasks(self) -> None:
        """Under the lock: the network tasks run in the network thread's next pass (at the end
        of the current one when called from the network thread: no system call there; an
        application thread's call or locked block kicks the thread when it ends)."""
        self._task_at = -_INF

    # -- internals: application side -------------------------------------------------------------
    def _after_app(self) -> None:
        """Lock held: flush output, kick the network thread if it sleeps past a new deadline,
        and wake waiters (an application's action may satisfy another's predicate)."""
        if self._closed:
            return
        self._flush()
        try:
            due = _earliest(_earliest(self.stack.poll_at(), self.device.poll_at()), self._task_at)
        except Exception as e:  # noqa: BLE001
            self._count_error(e)
            due = None
        if due is not None and due < self._sleep_until:
            self._kick()
        if self._waiters:
            self._cond.notify_all()

    def _kick(self) -> None:
        if not self._wake_sent:
            self._wake_sent = True
            fd = self._wake_w
            if fd < 0:
                return
            try:
                os.write(fd, b"\0")
            except (BlockingIOError, OSError):
                pass

    def _flush(self) -> None:
        """Lock held: fire due timers and send everything the stack has queued."""
        now = self.clock()
        try:
            out = self.stack.poll(now)
        except Exception as e:  # noqa: BLE001
            self._count_error(e)
            return
        if out:
            send = self.device.send
            for frame in out:
                try:
                    send(frame, now)
                except OSError as e:
                    self._device_failed(e)
                    return
                except Exception as e:  # noqa: BLE001
                    self._count_error(e)

    def _device_failed(self, e: BaseException) -> None:
        if self.device_error is None:
            self.device_error = e
        self._stop = True
        self._kick()

    # -- internals: the network thread -----------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - nothing escapes the network thread
            with self.lock:
                self._count_error(e)
                if self.device_error is None:
                    self.device_error = e
        finally:
            with self.lock:
                self._running = False
                self._sleep_until = _INF
                self._cond.notify_all()

    def _loop(self) -> None:
        dev, stack, lock, clock = self.device, self.stack, self.lock, self.clock
        fd = dev.fileno()
        poller = select.poll()
        if fd is not None:
            poller.register(fd, _POLLIN)
        wake_r = self._wake_r
        poller.register(wake_r, _POLLIN)
        idle_spins = 0
        empty_reads = 0  # fd readable, yet no frame: EIO swallowed by the driver, link gone?
        while not self._stop:
            with lock:
                try:
                    due = _earliest(_earliest(stack.poll_at(), dev.poll_at()), self._task_at)
                except Exception as e:  # noqa: BLE001
                    self._count_error(e)
                    due = None
                self._sleep_until = _INF if due is None else due
            if due is None:
                timeout_ms = -1
            else:
                left = due - clock()  # -inf when a network task is due at once
                timeout_ms = math.ceil(left * 1000.0) if left > 0 else 0
                if timeout_ms == 0 and idle_spins > 100:
                    timeout_ms = 1  # a deadline that stays in the past must not spin the CPU
            events = poller.poll(timeout_ms)
            readable = False
            for efd, ev in events:
                if efd == wake_r:
                    self._drain_wake()
                elif ev & _POLL_BAD and not ev & _POLLIN:
                    self._device_failed(OSError(errno.ENODEV, f"device gone (poll events {ev:#x}: "
                                                "POLLERR/POLLHUP/POLLNVAL)"))
                else:
                    readable = True
            if self._stop:
                break
            got = self._service(readable)
            idle_spins = 0 if got or timeout_ms != 0 else idle_spins + 1
            if readable and not got:
                empty_reads += 1
                if empty_reads >= 100:
                    if empty_reads % 100 == 0 and self._device_vanished():
                        self._device_failed(OSError(errno.ENODEV, "device gone: readable but no frames"))
                        break
                    time.sleep(0.001)  # never spin the CPU on a fd that stays readable
            else:
                empty_reads = 0

    def _device_vanished(self) -> bool:
        name = getattr(self.device, "name", None)
        if not isinstance(name, str):
            return False
        from ustack.drivers import interface_exists

        return not interface_exists(name)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except (BlockingIOError, OSError):
            pass
        self._wake_sent = False

    def _service(self, readable: bool) -> int:
        """One lock hold: read up to MAX_BATCHES batches, feed them, flush, notify."""
        dev, stack = self.device, self.stack
        receive = stack.receive
        trusted_read = self._trusted_read
        read = dev.recv_batch if trusted_read is None else trusted_read
        batch_entry = getattr(stack, "receive_batch", None)  # a stack without one: frame by frame
        got = 0
        with self.lock:
            now = self.clock()
            for _ in range(MAX_BATCHES):
                try:
                    frames = read(now, BATCH)
                except OSError as e:
                    self._device_failed(e)
                    break
                except Exception as e:  # noqa: BLE001 - middleware bug: count, keep going
                    self._count_error(e)
                    break
                if not frames:
                    break
                got += len(frames)
                self.batches += 1
                if trusted_read is not None:  # (frame, trusted) pairs: one call per batch
                    try:
                        stack.receive_batch(frames, now)
                    except Exception as e:  # noqa: BLE001
                        self._count_error(e)
                elif batch_entry is not None:  # the same entry, every frame verified
                    try:
                        batch_entry(zip(frames, _UNTRUSTED, strict=False), now)
                    except Exception as e:  # noqa: BLE001
                        self._count_error(e)
                else:
                    for frame in frames:
                        try:
                            receive(frame, now)
                        except Exception as e:  # noqa: BLE001
                            self._count_error(e)
                if len(frames) < BATCH:
                    break
                self._flush()  # ACK what we have before reading more
                now = self.clock()
            task_at = self._task_at
            if task_at is not None and task_at <= now:
                self._run_tasks(self.clock())  # before the flush: one flush, ACKs ride on answers
            self._flush()
            if self._waiters:
                self._cond.notify_all()
        return got

    def _run_tasks(self, now: float) -> None:
        """Lock held, network thread: run the network tasks once each; keep their next time
        (a wake during the pass, e.g. from a task's own sends, makes them due again at once)."""
        self._task_at = None
        self._task_at = _earliest(run_network_tasks(self._tasks, now, self._count_error), self._task_at)

    # -- construction from a device name ---------------------------------------------------------
    @classmethod
    def open(cls, tun: str | None = None, tap: str | None = None, addr: str = "198.18.0.2/24",
             peer: str | None = None, gateway: str | None = None, mtu: int = 1500,
             pcap: str | os.PathLike[str] | BinaryIO | None = None, faults: Any = None,
             trace: Any = None, seed: int | None = None, tcp: Any = None,
             mac: bytes | None = None, name: str | None = None, start: bool = True,
             offload: str | bool | None = "auto", peer6: str | None = None,
             config: dict[str, Any] | None = None) -> Host:
        """Open (create) a TUN or TAP device, configure its kernel side (`peer` address, link
        up), wrap middleware and run a new Stack on it. Returns a started Host.

        peer: the kernel side's address with prefix ("198.18.0.1/24"); None: link up only.
        faults: a Scenario, a FaultConfig, a dict of FaultConfig fields, a spec string
        ("loss=2%,delay=10ms,seed=3") or a scenario file (a path ending in .toml); applied
        between the device and the pcap/trace. With faults, a pcap is written as pcapng and
        every fault that fires is a comment in it (and a line in the trace).
        pcap: a path or binary file; records what the stack sends and receives (wall-clock
        timestamps). trace: True (stderr), a text stream or a callable taking one line.
        tcp: None (attach ustack.tcp.TcpLayer when available), False (no TCP), True (must
        attach), a TcpConfig, or a callable `tcp(stack)` that builds the layer.
        seed: the stack's seed (None: a fresh random one; ISNs must not be predictable).
        mac: the stack's MAC on a TAP (None: derived from the seed).
        start: False returns the host without its network thread (call `start()`).
        offload: "auto" (default; None is the same), "csum" (True is the same) or "none"
        (False). "csum": receive checksum offload (TunDevice/TapDevice `offload`): the
        kernel's own TCP/UDP packets are not checksummed again; with middleware the device is
        opened with offload but the frames go through the middleware fully checksummed and are
        verified. "auto": on a TUN without faults, pcap or trace, checksum offload plus GRO
        (`gso=True`: the kernel hands TCP super-segments of up to 64 KB, taken as one segment
        each); otherwise "none" (middleware must see every frame as the wire carries it, per
        segment; a corrupting fault injector can never be bypassed). "none": every frame per
        segment, every checksum verified. "tso": as "auto" on a bare TUN, also with a pcap, which
        then records the super-segments the device was given and delivered (pcapng, a comment
        says so); faults and trace refuse it (ValueError): they act per frame.
        peer6: the kernel side's IPv6 address ("2001:2::1/64"; IPv6 stays off on the kernel
        side without it). config: more StackConfig fields ({"addr6": "2001:2::2/64", "slaac":
        True}, docs/ipv6.md).
        The device is closed again if anything here fails.
        """
        from ustack import drivers

        if (tun is None) == (tap is None):
            raise ValueError("give exactly one of tun=NAME or tap=NAME")
        faults = fault_scenario(faults)  # a bad scenario fails before the device is opened
        ifname = tun if tun is not None else tap
        dev_cls = drivers.TunDevice if tun is not None else drivers.TapDevice
        mode = offload_mode(offload)
        bare = tun is not None and faults is None and pcap is None and not trace
        if mode == "tso":
            if tun is None or faults is not None or trace:
                raise ValueError("offload 'tso' is for a TUN without faults or trace (they act per "
                                 "frame); with a pcap it records the super-segments")
            mode = "gso"
        elif mode == "auto":
            mode = "gso" if bare else "none"
        raw = dev_cls(ifname, mtu=mtu, offload=mode != "none", gso=mode == "gso")
        device: Any = raw
        try:
            drivers.kernel_side_up(raw.name, peer, mtu, addr6_cidr=peer6)
            clock = time.monotonic
            t0 = clock()
            device = wrap_device(device, faults=faults, pcap=pcap, trace=trace,
                                 pcap_ts_offset=time.time() - t0, trace_origin=t0, fault_origin=t0,
                                 pcap_offload=raw.gso)
            if seed is None:
                seed = random.SystemRandom().getrandbits(63)
            stack = build_stack(addr=addr, gateway=gateway, mtu=mtu, medium=raw.medium, mac=mac,
                                seed=seed, tcp=tcp, **(config or {}))
        except BaseException:
            device.close()
            raise
        return cls(stack, device, clock, name=name or raw.name, start=start)


OFFLOAD_MODES = ("auto", "csum", "none", "tso")


def offload_mode(offload: str | bool | None) -> str:
    """"auto", "csum", "none" or "tso" from Host.open's `offload` (None = "auto", True =
    "csum", False = "none"); ValueError for anything else."""
    if offload is None:
        return "auto"
    if offload is True or offload is False:
        return "csum" if offload else "none"
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"offload must be one of {', '.join(OFFLOAD_MODES)}, not {offload!r}")
    return offload


def _trusted_reader(stack: Any, device: Any) -> Callable[..., Any] | None:
    """`device.recv_batch_trusted` when the device itself (not middleware: looked up on the
    type, never through Middleware.__getattr__) offloads receive checksums and the stack takes
    (frame, trusted) batches; else None."""
    if not getattr(type(device), "recv_batch_trusted", None) or not getattr(device, "offload", False):
        return None
    if not callable(getattr(stack, "receive_batch", None)):
        return None
    return device.recv_batch_trusted


def _hook_in_memory_device(device: Any, kick: Callable[[], None]) -> Any:
    """An in-memory device (a MemLink port) has no fd: have it kick our network thread when
    another thread queues a frame for us (found through the middleware's `inner` chain).
    Returns the hooked device, or None."""
    d = device
    for _ in range(16):
        if hasattr(type(d), "on_pending") or "on_pending" in getattr(d, "__dict__", {}):
            d.on_pending = lambda _port, _due: kick()
            return d
        d = getattr(d, "inner", None)
        if d is None:
            return None
    return None


# -- helpers shared with the simulator -------------------------------------------------------------
def wrap_device(device: Any, *, faults: Any = None, pcap: Any = None, trace: Any = None,
                pcap_ts_offset: float = 0.0, trace_origin: float = 0.0, fault_origin: float | None = None,
                fault_seed: int | None = None, pcap_offload: bool = False) -> Any:
    """device -> FaultInjector -> PcapWriter -> Tracer (the pcap and trace show what the stack
    itself sent and received, before tx faults and after rx faults). With faults, the pcap is
    pcapng and the injector's fault events become its comments and trace lines.
    `fault_origin`: when scheduled faults count from; `fault_seed`: replaces the scenario's seed.
    `pcap_offload`: the pcap lets the device's offloads through and records super-segments
    (PcapWriter `offload`; Host.open's offload "tso")."""
    from ustack import drivers

    scenario = fault_scenario(faults)
    injector = None
    if scenario is not None:
        if fault_seed is not None:
            scenario = scenario.with_seed(fault_seed)
        injector = device = drivers.FaultInjector(device, scenario=scenario, origin=fault_origin)
    if pcap is not None:
        device = drivers.PcapWriter(device, pcap, ts_offset=pcap_ts_offset, comments=injector is not None,
                                    offload=pcap_offload)
        if injector is not None:
            injector.add_listener(device.note_fault)
    if trace:
        out = None if trace is True else trace
        device = drivers.Tracer(device, out, clock_origin=trace_origin)
        if injector is not None:
            injector.add_listener(device.note_fault)
    return device


def fault_scenario(faults: Any, *, link: bool = False) -> Any:
    """A drivers.Scenario from None / Scenario / FaultConfig / dict / spec string / .toml path
    (None when no faults). Raises ScenarioError (a ValueError) for a bad scenario file."""
    from ustack import drivers

    return drivers.scenario_from(faults, link=link)


def build_stack(*, addr: str, gateway: str | None, mtu: int, medium: str, mac: bytes | None,
                seed: int, tcp: Any = None, **extra: Any) -> Any:
    """Stack(StackConfig(...)) plus the TCP layer (see Host.open for `tcp`)."""
    from ustack.core.stack import Stack, StackConfig

    stack = Stack(StackConfig(addr=addr, gateway=gateway, mtu=mtu, medium=medium, mac=mac, seed=seed,
                              **extra))
    attach_tcp(stack, tcp)
    return stack


def attach_tcp(stack: Any, tcp: Any) -> None:
    """tcp: None (attach ustack.tcp.TcpLayer when importable), True (must attach), False (no
    TCP), a callable `tcp(stack)` that builds the layer, or a TcpConfig for the layer."""
    if tcp is False or getattr(stack, "tcp", None) is not None:
        return
    if callable(tcp) and not isinstance(tcp, bool):
        tcp(stack)
        return
    try:
        from ustack.tcp import TcpLayer
    except ImportError:
        if tcp is True:
            raise
        return
    layer = TcpLayer(stack) if tcp is None or tcp is True else TcpLayer(stack, tcp)
    if getattr(stack, "tcp", None) is None:  # a layer that does not register itself
        stack.register(layer)
        stack.tcp = layer


__all__ = ["Host", "RuntimeClosed", "ThreadTask", "attach_tcp", "build_stack", "fault_scenario",
           "wrap_device"]
