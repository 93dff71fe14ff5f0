"""System-call lines mapped onto ustack's TcpSocket with Linux's results and errno names.

Each call is an *attempt* run under the host lock: it returns a result (`Done`) or says it
would block (`Block(ready)`), in which case a blocking socket waits in virtual time until
`ready()` and tries again. A line with an end time (START...END) runs on a task of its own
(the following packet lines go on meanwhile); any other call must finish at once, as in
packetdrill. docs/drill.md has the mapping table.

This module dispatches and checks results; the calls are mixins by concern: socket_calls.py
(socket, bind, listen, accept, connect, close, shutdown), data_calls.py (write/read families),
option_calls.py (setsockopt, getsockopt, ioctl, poll); syscall_args.py has what they share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .data_calls import DataCalls
from .model import Event, Expr, Mismatch, ScriptError, Unsupported
from .option_calls import GETSOCKOPT, SETSOCKOPT, OptionCalls
from .posix import ERRNO
from .socket_calls import SocketCalls
from .syscall_args import Block, Done, Fd

if TYPE_CHECKING:
    from .runner import Run

BLOCK_LIMIT_S = 3600.0  # virtual time a blocking call may wait
UNSUPPORTED_FLAGS = {"MSG_EOR", "MSG_MORE", "MSG_FASTOPEN", "MSG_ZEROCOPY", "MSG_ERRQUEUE", "MSG_OOB",
                     "MSG_WAITALL"}


def _words(e: Expr) -> list[str]:
    out = [e.value] if e.kind == "word" else []
    for item in e.items:
        if isinstance(item, Expr):
            out += _words(item)
    return out


# argument counts (fewest, most) of the calls the mapping has
ARGC = {"socket": (3, 3), "bind": (3, 3), "listen": (2, 2), "accept": (3, 3), "accept4": (3, 4),
        "connect": (3, 3), "write": (3, 3), "send": (4, 4), "sendto": (4, 6), "sendmsg": (3, 3),
        "read": (3, 3), "recv": (4, 4), "recvfrom": (4, 6), "recvmsg": (3, 3), "close": (1, 1),
        "shutdown": (2, 2), "fcntl": (2, 3), "setsockopt": (5, 5), "getsockopt": (5, 5),
        "ioctl": (3, 3), "poll": (3, 3), "readv": (3, 3), "writev": (3, 3)}


def precheck(ev: Event) -> None:
    """Unsupported, before the run starts, for a call or option the mapping does not have: a
    script that needs one is skipped as a whole, not failed half-way."""
    sc = ev.syscall
    assert sc is not None
    if not hasattr(Syscalls, "sys_" + sc.name):
        raise Unsupported(f"system call {sc.name}", ev.line)
    low, high = ARGC[sc.name]
    if not low <= len(sc.args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise ScriptError(f"{sc.name}() takes {want} arguments, not {len(sc.args)}", ev.line)
    if sc.name in ("setsockopt", "getsockopt") and len(sc.args) > 2:
        name = sc.args[2].value if sc.args[2].kind == "word" else str(sc.args[2].value)
        if name not in (SETSOCKOPT if sc.name == "setsockopt" else GETSOCKOPT):
            raise Unsupported(f"{sc.name} {name}", ev.line)
    for arg in sc.args:
        for w in _words(arg):
            if w in UNSUPPORTED_FLAGS:
                raise Unsupported(f"flag {w}", ev.line)


class Syscalls(SocketCalls, DataCalls, OptionCalls):
    def __init__(self, run: Run) -> None:
        self.run = run
        self.fds: dict[int, Fd] = {}
        self.task: Any = None  # the blocking call in progress: (task, event)
        self.task_event: Event | None = None
        self.expected_fd: int | None = None  # what the running socket()/accept() line expects

    # -- dispatch ----------------------------------------------------------------------------
    def call(self, ev: Event, start: float, blocking_end: float | None) -> None:
        sc = ev.syscall
        assert sc is not None
        handler = getattr(self, "sys_" + sc.name, None)
        if handler is None:
            raise Unsupported(f"system call {sc.name}")
        self.await_idle()
        host = self.run.host
        self.expected_fd = sc.result.value if sc.result.kind == "int" else None
        if blocking_end is None:
            outcome = host.call(handler, sc.args)
            if isinstance(outcome, Block):
                raise Mismatch(f"{sc.name}() blocked, but the script gives it no end time (START...END)")
            self.check(ev, outcome)
            return

        def task() -> tuple[Done, float]:
            outcome = host.call(handler, sc.args)
            deadline = host.now() + BLOCK_LIMIT_S
            while isinstance(outcome, Block):
                until = deadline if outcome.until is None else min(deadline, outcome.until)
                if not host.wait(outcome.ready, max(0.0, until - host.now())) and host.now() >= deadline:
                    return Done(-1, "ETIMEDOUT (drill: blocked for an hour)"), host.now()
                outcome = host.call(handler, sc.args, True)
            return outcome, host.now()

        self.task = host.spawn(task, name=f"{sc.name}@{ev.line}")
        self.task_event = ev
        self.task_times = (start, blocking_end)
        host.sleep(0)  # let it start now
        if self.task.done:
            self.collect()

    def await_idle(self) -> None:
        if self.task is None:
            return
        if not self.task.done:
            self.run.wait_until(lambda: self.task.done, self.run.now + BLOCK_LIMIT_S)
        if not self.task.done:
            raise Mismatch(f"blocking {self.task_event.syscall.name}() never returned", self.task_event.line)
        self.collect()

    def collect(self) -> None:
        task, ev = self.task, self.task_event
        self.task = self.task_event = None
        assert ev is not None
        try:
            outcome, ended = task.result(0)
        except (Mismatch, Unsupported, ScriptError) as e:
            e.line = e.line or ev.line
            raise
        start, end = self.task_times
        try:
            self.check(ev, outcome)
            tol = max(self.run.tolerance_s, self.run.tolerance_percent / 100 * max(0.0, end - start))
            if abs(ended - end) > tol + 1e-9:
                raise Mismatch(f"timing error: expected system call return at {end:.6f} sec but happened "
                               f"at {ended:.6f} sec; tolerance {tol:.6f} sec")
        except Mismatch as e:
            e.line = ev.line
            raise

    def finish(self) -> None:
        if self.task is not None:
            if not self.task.done:
                self.run.host.sleep(0)
            if not self.task.done:
                raise Mismatch("exiting while a blocking system call is in progress", self.task_event.line)
            self.collect()

    # -- result checking ---------------------------------------------------------------------
    def check(self, ev: Event, got: Done) -> None:
        sc = ev.syscall
        assert sc is not None
        want = self.value(sc.result, allow_ellipsis=True)
        if got.errno is not None and got.errno.startswith("!"):
            raise Unsupported(got.errno[1:])
        if want is not None and got.result != want:
            extra = f" ({got.errno})" if got.errno else ""
            raise Mismatch(f"{sc.name}() returned {got.result}{extra}, expected {want}"
                           + (f" {sc.errno}" if sc.errno else ""))
        if sc.errno is not None and got.result == -1:
            if sc.errno not in ERRNO:
                raise Unsupported(f"errno name {sc.errno}")
            if got.errno is None or ERRNO.get(got.errno.split()[0], -1) != ERRNO[sc.errno]:
                raise Mismatch(f"{sc.name}() failed with errno {got.errno}, expected {sc.errno}")
        if got.out is not None:
            for what, expr, value in got.out:
                w = self.value(expr, allow_ellipsis=True)
                if w is not None and w != value:
                    raise Mismatch(f"{sc.name}(): {what} is {value}, expected {w}")
