"""setsockopt, getsockopt, ioctl and poll, with Linux's values (doubled buffer sizes, poll's
revents, a third of the send buffer free for POLLOUT)."""

from __future__ import annotations

from ustack.tcp.state import State

from .model import Expr, Unsupported
from .posix import ERRNO, REASON_ERRNO
from .syscall_args import Block, C, Done, Fd, SyscallArgs, fail

SETSOCKOPT = {"SO_REUSEADDR", "SO_SNDBUF", "SO_RCVBUF", "SO_KEEPALIVE", "SO_LINGER", "TCP_NODELAY",
              "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_SYNCNT", "TCP_MAXSEG"}
GETSOCKOPT = {"SO_ERROR", "SO_SNDBUF", "SO_RCVBUF", "SO_KEEPALIVE", "TCP_NODELAY", "TCP_MAXSEG"}


class OptionCalls(SyscallArgs):
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
