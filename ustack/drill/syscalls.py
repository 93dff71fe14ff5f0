"""System-call lines mapped onto ustack's TcpSocket with Linux's results and errno names.

Each call is an *attempt* run under the host lock: it returns a result (`Done`) or says it
would block (`Block(ready)`), in which case a blocking socket waits in virtual time until
`ready()` and tries again. A line with an end time (START...END) runs on a task of its own
(the following packet lines go on meanwhile); any other call must finish at once, as in
packetdrill. docs/drill.md has the mapping table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ustack.core.errors import UsageError
from ustack.core.reasons import Reason
from ustack.tcp.state import State

from .model import Event, Expr, Mismatch, ScriptError, Unsupported
from .posix import CONSTANTS, ERRNO, REASON_ERRNO

if TYPE_CHECKING:
    from .runner import Run

C = CONSTANTS
BLOCK_LIMIT_S = 3600.0  # virtual time a blocking call may wait


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


SETSOCKOPT = {"SO_REUSEADDR", "SO_SNDBUF", "SO_RCVBUF", "SO_KEEPALIVE", "SO_LINGER", "TCP_NODELAY",
              "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_SYNCNT", "TCP_MAXSEG"}
GETSOCKOPT = {"SO_ERROR", "SO_SNDBUF", "SO_RCVBUF", "SO_KEEPALIVE", "TCP_NODELAY", "TCP_MAXSEG"}
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
MAX_WRITE = 16 << 20  # bytes one write may ask for (the buffer is made of zeros in memory)


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


class Syscalls:
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

    # -- sockets -----------------------------------------------------------------------------
    def sys_socket(self, args: list[Expr], retry: bool = False) -> Done:
        if len(args) != 3:
            raise ScriptError("socket() takes 3 arguments")
        domain = self.value(args[0], allow_ellipsis=True)
        if domain not in (None, C["AF_INET"]):
            raise Unsupported("socket domain other than AF_INET")
        typ = self.value(args[1]) or 0
        if typ & 0xF != C["SOCK_STREAM"]:
            raise Unsupported("non-TCP sockets (SOCK_DGRAM, raw)")
        proto = self.value(args[2], allow_ellipsis=True)
        if proto not in (None, 0, C["IPPROTO_TCP"]):
            raise Unsupported(f"socket protocol {proto}")
        sock = self.run.host.stack.tcp.open()
        fd = self.new_fd(sock)
        self.fds[fd].nonblock = bool(typ & C["SOCK_NONBLOCK"])
        return Done(fd)

    def sys_fcntl(self, args: list[Expr], retry: bool = False) -> Done:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        cmd = self.value(args[1])
        if cmd == C["F_GETFL"]:
            return Done(C["O_RDWR"] | (C["O_NONBLOCK"] if f.nonblock else 0))
        if cmd == C["F_SETFL"]:
            f.nonblock = bool((self.value(args[2]) or 0) & C["O_NONBLOCK"])
            return Done(0)
        if cmd in (C["F_GETFD"], C["F_SETFD"]):
            return Done(0)
        raise Unsupported(f"fcntl command {cmd}")

    def sys_bind(self, args: list[Expr], retry: bool = False) -> Done:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        addr, port = self.sockaddr(args[1], 8080, local=True)
        try:
            f.sock.bind(addr, port, reuse=f.reuseaddr)
        except UsageError as e:
            if e.reason is Reason.ACCESS:
                return fail("EADDRINUSE")
            return fail(e.reason)
        return Done(0)

    def sys_listen(self, args: list[Expr], retry: bool = False) -> Done:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        sock = f.sock
        if sock.local is None:  # Linux binds an ephemeral port; packetdrill's scripts bind first
            try:
                sock.bind(0, 0)
            except UsageError as e:
                return fail(e.reason)
        try:
            sock.listen(self.value(args[1]) or 0)
        except UsageError as e:
            return fail(e.reason)
        self.run.listening(sock)
        return Done(0)

    def sys_accept(self, args: list[Expr], retry: bool = False) -> Done | Block:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        sock = f.sock
        if sock.listener is None:
            return fail("EINVAL")
        child = sock.accept()
        if child is None:
            if f.nonblock:
                return fail("EAGAIN")
            return Block(lambda: sock.listener is None or bool(sock.accept_pending))
        fd = self.new_fd(child)
        if f.sndbuf_opt is not None:
            self.fds[fd].sndbuf_opt = f.sndbuf_opt
        self.run.accepted(child)
        return Done(fd)

    sys_accept4 = sys_accept

    def sys_connect(self, args: list[Expr], retry: bool = False) -> Done | Block:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        sock = f.sock
        if retry:  # a blocking connect woke up
            return self._connect_outcome(f)
        addr, port = self.sockaddr(args[1], 8080, local=False)
        c = sock.conn
        if c is not None and c.state in (State.SYN_SENT, State.SYN_RCVD):
            return fail("EALREADY")
        if c is not None and sock.connected_once:
            if c.state is State.CLOSED and c.error is not None and not f.error_reported:
                f.error_reported = True
                return fail(c.error)
            return fail("EISCONN")
        try:
            sock.connect(addr, port, self.now())
        except UsageError as e:
            return fail(e.reason)
        self.run.connecting(sock)
        if f.nonblock:
            return fail("EINPROGRESS")
        return Block(lambda: sock.state is not State.SYN_SENT)

    def _connect_outcome(self, f: Fd) -> Done | Block:
        sock = f.sock
        if sock.state is State.SYN_SENT:
            return Block(lambda: sock.state is not State.SYN_SENT)
        err = sock.error
        if err is not None:
            sock.clear_error()
            return fail(err)
        return Done(0)

    # -- data --------------------------------------------------------------------------------
    def _write(self, f: Fd, n: int, flags: int, retry: bool) -> Done | Block:
        sock = f.sock
        if flags & C["MSG_EOR"]:
            raise Unsupported("send flag MSG_EOR (record boundaries)")
        if flags & ~(C["MSG_DONTWAIT"] | C["MSG_NOSIGNAL"]):
            raise Unsupported(f"send flags {flags:#x}")
        if sock.listener is not None or sock.conn is None:
            return fail("EPIPE")
        err = sock.error
        if err is not None and not f.error_reported:
            f.error_reported = True
            sock.clear_error()
            return fail(err)
        if sock.shut_wr:
            return fail("EPIPE")
        c = sock.conn
        if c.state in (State.SYN_SENT, State.SYN_RCVD):
            if f.nonblock or flags & C["MSG_DONTWAIT"]:
                return fail("EAGAIN")
            return Block(lambda: c.state not in (State.SYN_SENT, State.SYN_RCVD))
        if c.state not in (State.ESTABLISHED, State.CLOSE_WAIT):
            return fail("EPIPE")
        if n == 0:
            return Done(0)
        if not 0 < n <= MAX_WRITE:
            raise Unsupported(f"a write of {n} bytes (drill's limit is {MAX_WRITE})")
        done = f.written
        try:
            took = sock.send(bytes(n - done), self.now())
        except UsageError as e:
            return fail("EPIPE" if e.reason in (Reason.SHUTDOWN, Reason.NOT_CONNECTED) else e.reason)
        done += took
        if done >= n or ((f.nonblock or flags & C["MSG_DONTWAIT"]) and done > 0):
            f.written = 0
            return Done(done)
        if f.nonblock or flags & C["MSG_DONTWAIT"]:
            return fail("EAGAIN")
        f.written = done
        return Block(lambda: sock.writable_bytes > 0 or sock.error is not None
                      or c.state not in (State.ESTABLISHED, State.CLOSE_WAIT))

    @staticmethod
    def bad_buffer(e: Expr) -> bool:
        """A NULL buffer: Linux fails the copy with EFAULT."""
        return (e.kind == "word" and e.value == "NULL") or (e.kind == "int" and e.value == 0)

    def _buffer_call(self, args: list[Expr], with_flags: bool, op: Callable[..., Done | Block],
                     retry: bool) -> Done | Block:
        """read/write/recv/send(fd, buf, len[, flags]): EBADF, then EFAULT, then `op`."""
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        if self.bad_buffer(args[1]):
            return fail("EFAULT")
        return op(f, self.value(args[2]) or 0, (self.value(args[3]) or 0) if with_flags else 0, retry)

    def sys_write(self, args: list[Expr], retry: bool = False) -> Done | Block:
        return self._buffer_call(args, False, self._write, retry)

    def sys_send(self, args: list[Expr], retry: bool = False) -> Done | Block:
        return self._buffer_call(args, True, self._write, retry)

    def sys_sendto(self, args: list[Expr], retry: bool = False) -> Done | Block:
        if len(args) > 4 and args[4].kind != "ellipsis":
            raise Unsupported("sendto with a destination address")
        return self.sys_send(args[:4], retry)

    def iov_total(self, e: Expr) -> int:
        """Bytes of an iovec list [{..., N}, ...] (each entry's last field is its length)."""
        if e.kind != "list":
            raise Unsupported("an iovec that is not a list")
        total = 0
        for iov in e.items:
            if iov.kind != "struct" or not iov.items:
                raise Unsupported("iovec entry form")
            total += self.value(iov.items[-1]) or 0
        return total

    def sys_writev(self, args: list[Expr], retry: bool = False) -> Done | Block:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        return self._write(f, self.iov_total(args[1]), 0, retry)

    def sys_readv(self, args: list[Expr], retry: bool = False) -> Done | Block:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        return self._read(f, self.iov_total(args[1]), 0, retry)

    def sys_sendmsg(self, args: list[Expr], retry: bool = False) -> Done | Block:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        msg = args[1]
        total = 0
        for field in msg.items:
            if field.name == "msg_iov":
                total += self.iov_total(field)
            elif field.name == "msg_control":
                raise Unsupported("sendmsg with control messages")
        return self._write(f, total, self.value(args[2]) or 0, retry)

    def _read(self, f: Fd, n: int, flags: int, retry: bool) -> Done | Block:
        sock = f.sock
        if flags & ~(C["MSG_DONTWAIT"] | C["MSG_PEEK"] | C["MSG_TRUNC"]):
            raise Unsupported(f"recv flags {flags:#x}")
        if sock.listener is not None:
            return fail("ENOTCONN")
        c = sock.conn
        if c is None:
            return fail("ENOTCONN")
        if sock.readable_bytes:
            if sock.shut_rd:  # Linux still hands out data queued after shutdown(SHUT_RD)
                data = c.rcv.buf.peek(n) if flags & C["MSG_PEEK"] else c.read(n)
            else:
                data = sock.peek(n) if flags & C["MSG_PEEK"] else sock.recv(n)
            return Done(len(data))
        if sock.shut_rd:
            return Done(0)  # and with nothing queued, a read after shutdown(SHUT_RD) is end of file
        err = sock.error
        if err is not None and not f.error_reported:
            f.error_reported = True
            sock.clear_error()
            return fail(err)
        if sock.at_eof or c.state is State.CLOSED:
            if c.state is State.CLOSED and not sock.connected_once:
                return fail("ENOTCONN")
            return Done(0)
        if c.state in (State.SYN_SENT, State.SYN_RCVD) and not sock.connected_once and f.nonblock:
            return fail("EAGAIN")
        if f.nonblock or flags & C["MSG_DONTWAIT"]:
            return fail("EAGAIN")
        return Block(lambda: sock.readable or sock.at_eof or c.state is State.CLOSED
                     or sock.error is not None)

    def sys_read(self, args: list[Expr], retry: bool = False) -> Done | Block:
        return self._buffer_call(args, False, self._read, retry)

    def sys_recv(self, args: list[Expr], retry: bool = False) -> Done | Block:
        return self._buffer_call(args, True, self._read, retry)

    def sys_recvfrom(self, args: list[Expr], retry: bool = False) -> Done | Block:
        return self.sys_recv(args[:4], retry)

    def sys_recvmsg(self, args: list[Expr], retry: bool = False) -> Done | Block:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        total = 0
        for field in args[1].items:
            if field.name == "msg_iov":
                total += self.iov_total(field)
            elif field.name == "msg_control" and field.kind != "ellipsis":
                raise Unsupported("recvmsg with control messages")
        return self._read(f, total, self.value(args[2]) or 0, retry)

    # -- closing -----------------------------------------------------------------------------
    def sys_close(self, args: list[Expr], retry: bool = False) -> Done:
        n = self.value(args[0])
        f = self.fds.pop(n if n is not None else -1, None)
        if f is None:
            return Done(-1, "EBADF")
        sock = f.sock
        if f.linger == (1, 0) and sock.conn is not None and sock.listener is None:
            sock.abort(self.now())
        else:
            sock.close(self.now())
        return Done(0)

    def sys_shutdown(self, args: list[Expr], retry: bool = False) -> Done:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        how = self.value(args[1])
        sock = f.sock
        if how not in (0, 1, 2):
            return fail("EINVAL")
        if sock.listener is not None:
            if how in (0, 2):  # Linux: shutting a listener's read side closes it (no error)
                raise Unsupported("shutdown() of a listening socket")
            return fail("ENOTCONN")
        try:
            sock.shutdown(how, self.now())
        except UsageError as e:
            return fail(e.reason)
        return Done(0)

    # -- options -----------------------------------------------------------------------------
    def sys_setsockopt(self, args: list[Expr], retry: bool = False) -> Done:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        level, name = self.value(args[1]), args[2].value if args[2].kind == "word" else None
        sock = f.sock
        if name == "SO_LINGER":
            vals = {fl.name: self.value(fl) for fl in args[3].items}
            onoff = vals.get("onoff", vals.get("l_onoff", 0)) or 0
            f.linger = (onoff, vals.get("linger", vals.get("l_linger", 0)) or 0)
            sock.linger = None if not f.linger[0] else float(f.linger[1])
            return Done(0)
        v = self.value(args[3])
        assert v is not None
        if level == C["SOL_SOCKET"]:
            if name == "SO_REUSEADDR":
                f.reuseaddr = bool(v)
                return Done(0)
            if name == "SO_SNDBUF":  # Linux doubles the value (bookkeeping overhead); ustack counts bytes
                f.sndbuf_opt = max(v, 2304) * 2
                sock.sndbuf = max(v, 2304)
                return Done(0)
            if name == "SO_RCVBUF":
                f.rcvbuf_opt = max(v, 1152) * 2
                sock.rcvbuf = max(v, 1152)
                return Done(0)
            if name == "SO_KEEPALIVE":
                sock.keepalive = bool(v)
                return Done(0)
        elif level == C["IPPROTO_TCP"]:
            if name == "TCP_NODELAY":
                sock.nodelay = bool(v)
                return Done(0)
            if name == "TCP_KEEPIDLE":
                sock.keepalive_idle_s = float(v)
                return Done(0)
            if name == "TCP_KEEPINTVL":
                sock.keepalive_interval_s = float(v)
                return Done(0)
            if name == "TCP_KEEPCNT":
                sock.keepalive_probes = int(v)
                return Done(0)
            if name == "TCP_SYNCNT":
                sock.syn_retries = int(v)
                return Done(0)
            if name == "TCP_MAXSEG":  # Linux: 0 clears, else TCP_MIN_MSS (88) .. MAX_TCP_WINDOW
                if v and not 88 <= v <= 32767:
                    return fail("EINVAL")
                sock.mss = int(v) or None
                return Done(0)
        raise Unsupported(f"setsockopt {name}")

    def sys_getsockopt(self, args: list[Expr], retry: bool = False) -> Done:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        name = args[2].value if args[2].kind == "word" else None
        sock = f.sock
        value: int
        if name == "SO_ERROR":
            err = sock.error
            value = 0
            if err is not None and not f.error_reported:
                value = ERRNO[REASON_ERRNO.get(err, "EINVAL")]
                sock.clear_error()
                f.error_reported = True
        elif name == "SO_SNDBUF":
            value = f.sndbuf_opt if f.sndbuf_opt is not None else sock.sndbuf
        elif name == "SO_RCVBUF":
            value = f.rcvbuf_opt if f.rcvbuf_opt is not None else sock.rcvbuf
        elif name == "TCP_NODELAY":
            value = int(bool(sock.nodelay))
        elif name == "SO_KEEPALIVE":
            value = int(bool(sock.keepalive))
        elif name == "TCP_MAXSEG":
            c = sock.conn
            if c is None or c.state in (State.CLOSED, State.SYN_SENT, State.LISTEN):
                value = sock.mss or 536  # Linux: the clamp, else TCP_MSS_DEFAULT
            else:
                value = c.snd.mss
        else:
            raise Unsupported(f"getsockopt {name}")
        return Done(0, out=[(name, args[3], value)])

    def sys_ioctl(self, args: list[Expr], retry: bool = False) -> Done:
        f = self.fd(args[0])
        if isinstance(f, Done):
            return f
        req = args[1].value if args[1].kind == "word" else None
        sock = f.sock
        if req in ("SIOCINQ", "FIONREAD"):
            return Done(0, out=[(req, args[2], sock.readable_bytes)])
        if req in ("SIOCOUTQ", "TIOCOUTQ"):
            c = sock.conn
            n = c.snd.outstanding() + c.snd.unsent() if c is not None else 0
            return Done(0, out=[(req, args[2], n)])
        raise Unsupported(f"ioctl {req}")

    # -- poll --------------------------------------------------------------------------------
    def revents(self, f: Fd | None, events: int) -> int:
        if f is None:
            return C["POLLNVAL"]
        sock = f.sock
        r = 0
        if sock.listener is not None:
            return C["POLLIN"] & events if sock.accept_pending else 0
        c = sock.conn
        if c is None:
            return C["POLLOUT"] | C["POLLHUP"] if events & C["POLLOUT"] else C["POLLHUP"]
        if sock.readable_bytes or sock.at_eof or sock.shut_rd:
            r |= C["POLLIN"] | C["POLLRDNORM"]
        if sock.at_eof or c.rcv.eof:
            r |= C["POLLRDHUP"]
        if c.state in (State.ESTABLISHED, State.CLOSE_WAIT) and not sock.shut_wr:
            free = sock.writable_bytes
            if free >= max(1, sock.sndbuf // 3):  # Linux: writable with a third of the buffer free
                r |= C["POLLOUT"] | C["POLLWRNORM"]
        if sock.error is not None:
            r |= C["POLLERR"]
        if c.state is State.CLOSED and sock.connected_once or (sock.shut_wr and c.rcv.eof):
            r |= C["POLLHUP"] | C["POLLIN"] | C["POLLRDNORM"]
        if sock.shut_wr and c.state is State.CLOSED:
            r |= C["POLLOUT"] | C["POLLWRNORM"]
        return r & (events | C["POLLERR"] | C["POLLHUP"] | C["POLLNVAL"])

    def sys_poll(self, args: list[Expr], retry: bool = False) -> Done | Block:
        if args[0].kind != "list":
            raise Unsupported("poll() without a pollfd list")
        entries = []
        for item in args[0].items:
            vals = {fl.name: fl for fl in item.items}
            if "fd" not in vals or "events" not in vals:
                raise Unsupported("pollfd without fd or events")
            entries.append((self.value(vals["fd"]), self.value(vals["events"]) or 0, vals.get("revents")))
        timeout = self.value(args[2]) if len(args) > 2 else 0
        start = getattr(self, "_poll_started", None)
        if not retry or start is None:
            start = self._poll_started = self.now()
        results = [(self.revents(self.fds.get(fd), ev), rexp) for fd, ev, rexp in entries]
        ready = sum(1 for r, _ in results if r)
        if ready or timeout == 0 or (timeout is not None and timeout > 0
                                    and self.now() >= start + timeout / 1000 - 1e-9):
            self._poll_started = None
            out = [(f"revents of fd {fd}", rexp, r)
                   for (fd, _, _), (r, rexp) in zip(entries, results, strict=True) if rexp is not None]
            return Done(ready, out=out)
        until = None if timeout is None or timeout < 0 else start + timeout / 1000

        def woke() -> bool:
            if until is not None and self.now() >= until - 1e-9:
                return True
            return any(self.revents(self.fds.get(fd), ev) for fd, ev, _ in entries)

        return Block(woke, until)
