"""Winsock failures as the exceptions a Linux program gets from CPython's socket module.

The sockets of this package run on ustack's Winsock layer, whose failures carry a WSA code
(`WinsockError.winerror`). A Linux program expects `OSError(errno, strerror)` with the Linux
errno and message (`[Errno 111] Connection refused`, a ConnectionRefusedError), `TimeoutError
("timed out")` when a socket timeout expires and `BlockingIOError` on a nonblocking socket.
`linux_error` builds exactly that and keeps the WSA code on the exception (`.winerror`,
`.wsa_name`) for whoever wants Windows' view.

The errno comes from the Winsock layer's own table (`ustack.winsock.errors.posix_errno`); the
few places where Linux reports a different errno for the same event are listed in `Op` below.
"""

from __future__ import annotations

import errno as E
import os
from enum import Enum

from ustack.winsock import constants as C
from ustack.winsock.errors import WinsockError, posix_errno, wsa_name


class Op(Enum):
    """What was being done: a few WSA codes mean a different errno on Linux depending on it."""

    OTHER = "other"
    CONNECT = "connect"  # nonblocking: WSAEWOULDBLOCK is EINPROGRESS
    SEND = "send"  # after shutdown(SHUT_WR): EPIPE
    UDP_SEND = "udp-send"  # send on an unconnected datagram socket: EDESTADDRREQ
    UDP_RECV = "udp-recv"  # ICMP port unreachable on a connected datagram socket: ECONNREFUSED
    TIMED = "timed"  # a socket timeout (settimeout) expired: TimeoutError("timed out")


_BY_OP: dict[tuple[Op, int], int] = {
    (Op.CONNECT, C.WSAEWOULDBLOCK): E.EINPROGRESS,
    (Op.SEND, C.WSAESHUTDOWN): E.EPIPE,
    (Op.UDP_SEND, C.WSAESHUTDOWN): E.EPIPE,
    (Op.UDP_SEND, C.WSAENOTCONN): E.EDESTADDRREQ,
    (Op.UDP_RECV, C.WSAECONNRESET): E.ECONNREFUSED,
}
# Codes whose Linux errno does not depend on the call.
_ALWAYS: dict[int, int] = {
    C.WSAEINTR: E.EBADF,  # the socket was closed by another thread while this call blocked
    C.WSAENOTSOCK: E.EBADF,  # a closed socket
}


def errno_for(code: int, op: Op = Op.OTHER) -> int:
    """The errno a Linux program sees for WSA `code` during `op`."""
    return _BY_OP.get((op, code)) or _ALWAYS.get(code) or posix_errno(code)


def linux_error(code: int, op: Op = Op.OTHER) -> OSError:
    """An OSError (the subclass CPython picks for the errno) carrying `.winerror` and `.wsa_name`."""
    if op is Op.TIMED and code == C.WSAETIMEDOUT:
        err: OSError = TimeoutError("timed out")  # what CPython raises when settimeout expires
    else:
        n = errno_for(code, op)
        err = OSError(n, os.strerror(n))
    err.winerror = code  # type: ignore[attr-defined]
    err.wsa_name = wsa_name(code)  # type: ignore[attr-defined]
    return err


def from_winsock(e: OSError, op: Op = Op.OTHER) -> OSError:
    """Translate an exception of the Winsock layer (a WinsockError); others pass unchanged."""
    if not isinstance(e, WinsockError):
        return e
    return linux_error(e.winerror, op)


def timed_out() -> OSError:
    return linux_error(C.WSAETIMEDOUT, Op.TIMED)


def plain(n: int, detail: str = "") -> OSError:
    """An OSError for a rule of this layer (no Winsock code behind it)."""
    return OSError(n, os.strerror(n) + (f": {detail}" if detail else ""))
