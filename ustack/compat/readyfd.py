"""A real file descriptor that is readable and writable exactly when a ustack socket is.

Programs wait for sockets with select/poll/epoll (selectors, asyncio, socketserver,
urllib3). A ustack socket has no kernel object, so each one gets an AF_UNIX socketpair: the
application end's fd is the socket's `fileno()`, and the other end (ours) steers its
readiness:

- readable: one byte sits in the application end's receive queue (we sent it), else none;
- writable: the application end's send queue has room, else it is filled (MSG_DONTWAIT sends
  until EAGAIN; its SO_SNDBUF is the minimum, so that is a few KB), and draining our end makes
  it writable again.

No data ever crosses the pair: the socket's bytes go through the stack. `set()` changes the
fd only on a transition (a syscall or two), and runs under the host lock so that the stack's
events (network thread) and the application's calls (which consume data, fill the buffer)
never interleave.

The mirroring starts only when the fd is `armed`, i.e. once the program has asked for it
(`fileno()`, which select, poll, epoll, selectors and asyncio all call): a program that only
makes blocking calls never pays for it.
"""

from __future__ import annotations

import _socket
import os

_DONTWAIT = _socket.MSG_DONTWAIT
_FILL = b"\0" * 4096
# Application ends of every live ReadyFd: `patched()` refuses os.sendfile onto them (it would
# write into the pair; asyncio's loop.sendfile then falls back to send()).
APP_FDS: set[int] = set()


class ReadyFd:
    """One socketpair; `fd` is the application end (detached: its owner closes it)."""

    __slots__ = ("fd", "_ours", "readable", "writable", "armed")

    def __init__(self) -> None:
        app, ours = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        app.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, 1)  # the kernel's minimum
        app.setblocking(False)
        ours.setblocking(False)
        self.fd = app.detach()
        APP_FDS.add(self.fd)
        self._ours = ours
        self.readable = False
        self.writable = True
        self.armed = False
        self.set(False, False)

    def set(self, readable: bool, writable: bool) -> None:
        """Make the fd readable/writable as told (call with the host lock held)."""
        if readable != self.readable:
            if readable:
                self._ours.send(b"r", _DONTWAIT)
            else:
                self._drain(self.fd)
            self.readable = readable
        if writable != self.writable:
            if writable:
                while True:
                    try:
                        if not self._ours.recv(65536, _DONTWAIT):
                            break
                    except BlockingIOError:
                        break
            else:
                try:
                    while True:
                        os.write(self.fd, _FILL)
                except BlockingIOError:
                    pass
            self.writable = writable

    @staticmethod
    def _drain(fd: int) -> None:
        try:
            while os.read(fd, 64):
                pass
        except BlockingIOError:
            pass

    def forget(self) -> None:
        """The application end is about to be closed (by its socket object): drop it from
        APP_FDS first, so that a reused fd number is never taken for ours."""
        if self.fd >= 0:
            APP_FDS.discard(self.fd)
            self.fd = -1

    def close(self) -> None:
        """Close our end (and forget the application end)."""
        self.forget()
        self._ours.close()
