"""The runtime interface: what Winsock (and any application code) may use to drive a stack.

Two implementations: `ustack.runtime.host.Host` (a network thread on a real device, real time)
and `ustack.runtime.simulator.SimHost` (hosts on virtual links, virtual time, deterministic).
Code written only against `Runtime` runs unchanged on both.

Rules of use:
- Touch `runtime.stack` and its sockets only inside `call(fn)` / `with locked():` (or in a
  `wait` predicate, which runs under the lock). Leaving either flushes the stack's output,
  so a send issued by an application thread goes out at once.
- Block only through `wait` / `sleep` (never `time.sleep` or your own locks): in the
  simulator, virtual time advances only while every application thread is blocked there.
- Start helper threads with `spawn` (not `threading.Thread`): in the simulator they then run
  one at a time under its scheduler; on a real Host they are ordinary threads.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@runtime_checkable
class TaskHandle(Protocol):
    name: str

    @property
    def done(self) -> bool: ...

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the task; True if it finished. Re-raises the task's exception."""

    def result(self, timeout_s: float | None = None) -> Any:
        """The task's return value (re-raises its exception; TimeoutError if not finished)."""


@runtime_checkable
class Runtime(Protocol):
    stack: Any  # ustack.core.stack.Stack

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) under the stack lock, then flush the stack's output to the device."""

    def locked(self) -> AbstractContextManager[Any]:
        """`with rt.locked() as stack:` — the lock held for a block; output flushed on exit."""

    def wait(self, predicate: Callable[[], bool], timeout_s: float | None = None) -> bool:
        """Block until predicate() (evaluated under the lock) is true: True; or until
        timeout_s passes (None: no limit): False. Virtual time in the simulator."""

    def now(self) -> float:
        """The host clock in seconds (virtual in the simulator)."""

    def sleep(self, s: float) -> None:
        """Block for s seconds of the host clock."""

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str | None = None) -> TaskHandle:
        """Run fn(*args) in an application thread the runtime knows about."""

    def add_network_task(self, fn: Callable[[float], float | None]) -> None:
        """Run fn(now) on the network side (Host: the network thread; Simulator: its network
        phase), under the lock, after a pass's frames and timers, its output flushed in the
        same pass. fn returns when it next wants to run: None (only after
        `wake_network_tasks()`), a time, or a time at or before now (again at once, after the
        device is read: bounded work per pass). fn must never block (`wait`/`sleep` raise
        there); its exceptions are counted, never raised. Call under the lock."""

    def remove_network_task(self, fn: Callable[[float], float | None]) -> None:
        """Stop running fn (no error if it is not registered). Call under the lock."""

    def wake_network_tasks(self) -> None:
        """Under the lock (e.g. in a socket watcher): the network tasks are due at once."""

    @property
    def down(self) -> bool:
        """True once the network is unusable (closed, or the device failed)."""

    def close(self) -> None:
        """Stop the host and release its device. Idempotent."""


class RuntimeClosed(RuntimeError):
    """The runtime was closed while a thread was blocked in it."""


def earliest(a: float | None, b: float | None) -> float | None:
    """The earlier of two deadlines, None meaning "never" (a two-argument hot-path helper)."""
    if a is None:
        return b
    if b is None or a <= b:
        return a
    return b


def run_network_tasks(tasks: list[Callable[[float], float | None]], now: float,
                      count_error: Callable[[BaseException], None]) -> float | None:
    """Run each network task once (lock held, network side); the earliest time one asks to
    run again (None: only when woken). A task's exception is counted, never raised."""
    at = None
    for fn in list(tasks):
        try:
            nxt = fn(now)
        except Exception as e:  # noqa: BLE001 - nothing escapes the network side
            count_error(e)
            continue
        if nxt is not None:
            at = earliest(at, nxt)
    return at


ERROR_LOG_LEN = 20


class ErrorLog:
    """Processing errors a runtime swallowed (nothing escapes the network side): counted in
    `errors` and in the stack's "runtime.errors" counter, the newest in `last_error`, the first
    ERROR_LOG_LEN as "Type: message" lines in `error_log`."""

    stack: Any

    def __init__(self) -> None:
        self.errors = 0
        self.last_error: BaseException | None = None
        self.error_log: list[str] = []

    def _count_error(self, e: BaseException) -> None:
        self.errors += 1
        self.last_error = e
        if len(self.error_log) < ERROR_LOG_LEN:
            self.error_log.append(f"{type(e).__name__}: {e}")
        counters = getattr(self.stack, "counters", None)
        inc = getattr(counters, "inc", None)
        if inc is not None:
            try:
                inc("runtime.errors")
            except Exception:  # noqa: BLE001, S110 - counting must never fail the caller
                pass
