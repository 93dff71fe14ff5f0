"""What every system-call mapping shares: the results (`Done`, `Block`), the script's file
descriptors (`Fd`), `fail` (a ustack Reason as a Linux errno) and `SyscallArgs`, the helpers that
read a call's arguments (values, fds, socket addresses). The calls themselves are mixins on it
(socket_calls, data_calls, option_calls), composed into `syscalls.Syscalls`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ustack.core.reasons import Reason

from .model import Expr, Unsupported
from .posix import CONSTANTS, REASON_ERRNO

if TYPE_CHECKING:
    from .runner import Run

C = CONSTANTS


@dataclass
class Done:
    result: int
    errno: str | None = None
    out: Any = None  # values of output arguments (getsockopt's, poll's revents, ioctl's)


@dataclass
class Block:
    ready: Callable[[], bool]
    until: float | None = None  # wake up at this virtual time even if not ready (poll's timeout)


class Fd:
    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.nonblock = False
        self.sndbuf_opt: int | None = None
        self.rcvbuf_opt: int | None = None
        self.reuseaddr = False
        self.linger: tuple[int, int] | None = None
        self.error_reported = False  # a connection error was returned once (then EPIPE / EOF)
        self.written = 0  # bytes a blocking write has queued so far


def fail(reason: Reason | str) -> Done:
    return Done(-1, REASON_ERRNO.get(reason, "EINVAL") if isinstance(reason, Reason) else reason)


class SyscallArgs:
    run: Run
    fds: dict[int, Fd]
    expected_fd: int | None  # what the running socket()/accept() line expects

    # -- argument helpers --------------------------------------------------------------------
    def value(self, e: Expr, allow_ellipsis: bool = False) -> int | None:
        if e.kind == "int":
            return int(e.value)
        if e.kind == "ellipsis":
            if allow_ellipsis:
                return None
            raise Unsupported("'...' where a value is needed")
        if e.kind == "word":
            if e.value in C:
                return C[e.value]
            raise Unsupported(f"symbol {e.value}")
        if e.kind == "or":
            v = 0
            for item in e.items:
                x = self.value(item)
                v |= x or 0
            return v
        if e.kind == "list" and len(e.items) == 1:
            return self.value(e.items[0], allow_ellipsis)
        if e.kind == "call" and e.name == "htons" and len(e.items) == 1:
            return self.value(e.items[0])
        raise Unsupported(f"argument {e.kind} {e.name or e.value!r}")

    def fd(self, e: Expr) -> Fd | Done:
        n = self.value(e)
        f = self.fds.get(n if n is not None else -1)
        if f is None:
            return Done(-1, "EBADF")
        return f

    def new_fd(self, sock: Any) -> int:
        """packetdrill maps script fds to live ones: a new socket takes the number the script
        expects of the call (socket() = 4 makes it fd 4), else the lowest free from 3."""
        want = self.expected_fd
        n = want if want is not None and want >= 0 and want not in self.fds else 3
        while n in self.fds:
            n += 1
        self.fds[n] = Fd(sock)
        return n

    def sockaddr(self, e: Expr, default_port: int, local: bool) -> tuple[int, int]:
        if e.kind == "ellipsis":
            return (self.run.local_ip if local else self.run.remote_ip), default_port
        if e.kind != "struct":
            raise Unsupported(f"socket address {e.kind}")
        addr, port = None, default_port
        for f in e.items:
            if f.name in ("sin_addr",):
                if f.kind == "call" and f.name == "sin_addr" and False:
                    pass
                if f.kind == "call" and f.items and f.items[0].kind == "str":
                    addr = self.run.script_addr(f.items[0].value)
                elif f.kind == "word" and f.value == "INADDR_ANY":
                    addr = 0
                else:
                    raise Unsupported("sin_addr form")
            elif f.name == "sin_port":
                port = self.value(f) or 0
            elif f.name == "sa_family":
                if self.value(f) != C["AF_INET"]:
                    raise Unsupported("address family other than AF_INET")
        if addr is None:
            raise Unsupported("socket address without sin_addr")
        return addr, port

    def now(self) -> float:
        return self.run.host.now()

    @staticmethod
    def data_len(e: Expr, n: int | None) -> int:
        return n or 0

