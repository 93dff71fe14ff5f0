"""socket, fcntl, bind, listen, accept, connect, close and shutdown, with Linux's results."""

from __future__ import annotations

from ustack.core.errors import UsageError
from ustack.core.reasons import Reason
from ustack.tcp.state import State

from .model import Expr, ScriptError, Unsupported
from .syscall_args import Block, C, Done, Fd, SyscallArgs, fail


class SocketCalls(SyscallArgs):
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

