"""Data calls: write/send/sendto/sendmsg/writev and read/recv/recvfrom/recvmsg/readv, blocking
or not, with Linux's results (EAGAIN, EPIPE, end of file, a pending error reported once)."""

from __future__ import annotations

from collections.abc import Callable

from ustack.core.errors import UsageError
from ustack.core.reasons import Reason
from ustack.tcp.state import State

from .model import Expr, Unsupported
from .syscall_args import Block, C, Done, Fd, SyscallArgs, fail

MAX_WRITE = 16 << 20  # bytes one write may ask for (the buffer is made of zeros in memory)


class DataCalls(SyscallArgs):
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

