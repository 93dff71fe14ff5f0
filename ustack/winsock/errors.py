"""The one table from the stack's reasons to Winsock error codes, with Winsock's quirks.

Everything that turns a core `Reason` or `UsageError` into a WSA code goes through here, so a
quirk (Winsock 1.1 vs 2.2, FD_CLOSE's code for a reset, port exhaustion in connect) is
written once.
"""

from __future__ import annotations

import errno as _errno

from ustack.core.reasons import Reason

from . import constants as C
from . import ioconstants as K

# Reason -> WSA code for a failure reported by a call (recv, send, connect, ...).
REASON_TO_WSA: dict[Reason, int] = {
    Reason.REFUSED: C.WSAECONNREFUSED,
    Reason.RESET: C.WSAECONNRESET,
    Reason.ABORTED: C.WSAECONNABORTED,
    Reason.TIMED_OUT: C.WSAETIMEDOUT,
    Reason.NET_UNREACH: C.WSAENETUNREACH,
    Reason.HOST_UNREACH: C.WSAEHOSTUNREACH,
    Reason.PORT_UNREACH: C.WSAECONNRESET,  # UDP: ICMP port unreachable surfaces on recv (item 56)
    Reason.PROTO_UNREACH: C.WSAECONNRESET,
    Reason.FRAG_NEEDED: C.WSAEMSGSIZE,
    Reason.ADDR_IN_USE: C.WSAEADDRINUSE,
    Reason.ADDR_NOT_AVAIL: C.WSAEADDRNOTAVAIL,
    Reason.MSG_SIZE: C.WSAEMSGSIZE,
    Reason.NO_BUFS: C.WSAENOBUFS,
    Reason.ACCESS: C.WSAEACCES,
    Reason.SHUTDOWN: C.WSAESHUTDOWN,
    Reason.NOT_CONNECTED: C.WSAENOTCONN,
    Reason.IS_CONNECTED: C.WSAEISCONN,
    Reason.ALREADY: C.WSAEALREADY,
    Reason.INVALID: C.WSAEINVAL,
    Reason.WOULD_BLOCK: C.WSAEWOULDBLOCK,
    Reason.OP_NOT_SUPP: C.WSAEOPNOTSUPP,
    # ICMP time exceeded on a datagram socket: recv reports WSAENETRESET ("the time to live
    # has expired", Microsoft's recv page); a parameter problem is reported like the other
    # ICMP errors that break a datagram exchange.
    Reason.TTL_EXPIRED: C.WSAENETRESET,
    Reason.PARAM_PROBLEM: C.WSAECONNRESET,
    # keepalive probes unanswered: "the connection has been broken due to keep-alive activity
    # detecting a failure while the operation was in progress" (Microsoft's recv/send pages)
    Reason.KEEPALIVE_FAILED: C.WSAENETRESET,
}


def wsa_code(reason: Reason) -> int:
    return REASON_TO_WSA.get(reason, C.WSAEINVAL)


def connect_error(reason: Reason, *, version: tuple[int, int], was_bound: bool) -> int:
    """WSA code for a connect failure (immediate UsageError or the attempt's outcome).

    - WSAEALREADY is reported as WSAEINVAL to Winsock 1.1 applications (item 27).
    - ADDR_IN_USE on a socket connect had to bind itself means no ephemeral port was left:
      Windows reports that as WSAENOBUFS ("the socket cannot be connected"); on a socket the
      application bound, it is the 4-tuple clash WSAEADDRINUSE (item 34).
    """
    if reason is Reason.ALREADY and version < (2, 0):
        return C.WSAEINVAL
    if reason is Reason.ADDR_IN_USE and not was_bound:
        return C.WSAENOBUFS
    return wsa_code(reason)


def broken_error(reason: Reason) -> int:
    """WSA code of recv/send on a TCP connection that was established and then died.

    Data retransmissions running out is WSAECONNABORTED on Windows ("aborted by the software
    in your host ... due to a data transmission time-out"), not the WSAETIMEDOUT a connect
    attempt reports. Keepalive failure is WSAENETRESET (REASON_TO_WSA).
    """
    if reason is Reason.TIMED_OUT:
        return C.WSAECONNABORTED
    return wsa_code(reason)


def fd_close_error(reason: Reason | None) -> int:
    """iErrorCode / high word of FD_CLOSE: 0 for a graceful close; a reset is reported as
    WSAECONNABORTED, which is what real Windows posts (the documentation says WSAECONNRESET).
    A keepalive failure is WSAECONNABORTED too: FD_CLOSE's documented codes are WSAENETDOWN,
    WSAECONNRESET and WSAECONNABORTED ("terminated due to a time-out or other failure";
    WSAAsyncSelect / WSAEnumNetworkEvents pages); WSAENETRESET is for recv/send."""
    if reason is None:
        return 0
    if reason in (Reason.RESET, Reason.ABORTED, Reason.KEEPALIVE_FAILED):
        return C.WSAECONNABORTED
    return broken_error(reason)


def fd_connect_error(reason: Reason | None, *, version: tuple[int, int]) -> int:
    if reason is None:
        return 0
    return connect_error(reason, version=version, was_bound=True)


# -- names and POSIX errno equivalents (for messages and the Pythonic layer) -------------------
WSA_NAMES: dict[int, str] = {
    v: k
    for k, v in vars(C).items()
    if (k.startswith("WSAE") or k in ("WSANOTINITIALISED", "WSAVERNOTSUPPORTED", "WSASYSNOTREADY",
                                      "WSATRY_AGAIN", "WSA_IO_PENDING", "WSA_INVALID_HANDLE",
                                      "WSA_INVALID_PARAMETER", "WSA_NOT_ENOUGH_MEMORY"))
    and isinstance(v, int)
}
# the codes of the overlapped calls (ioconstants.py): WSA_ names first, then Win32 ones
for _prefix in ("WSA_", "WAIT_TIMEOUT", "ERROR_"):
    WSA_NAMES.update({v: k for k, v in vars(K).items()
                      if k.startswith(_prefix) and isinstance(v, int) and v and v not in WSA_NAMES})

WSA_MESSAGES: dict[int, str] = {
    C.WSAEINTR: "A blocking operation was interrupted",
    C.WSAEACCES: "Permission denied",
    C.WSAEFAULT: "Bad address",
    C.WSAEINVAL: "Invalid argument",
    C.WSAEMFILE: "Too many open sockets",
    C.WSAEWOULDBLOCK: "Operation would block",
    C.WSAEINPROGRESS: "A blocking operation is in progress",
    C.WSAEALREADY: "Operation already in progress",
    C.WSAENOTSOCK: "Not a socket",
    C.WSAEMSGSIZE: "Message too long",
    C.WSAENOPROTOOPT: "Bad protocol option",
    C.WSAEPROTONOSUPPORT: "Protocol not supported",
    C.WSAESOCKTNOSUPPORT: "Socket type not supported",
    C.WSAEOPNOTSUPP: "Operation not supported",
    C.WSAEAFNOSUPPORT: "Address family not supported",
    C.WSAEADDRINUSE: "Address already in use",
    C.WSAEADDRNOTAVAIL: "Cannot assign requested address",
    C.WSAENETDOWN: "Network is down",
    C.WSAENETUNREACH: "Network is unreachable",
    C.WSAENETRESET: "Network dropped connection on reset",
    C.WSAECONNABORTED: "Connection aborted",
    C.WSAECONNRESET: "Connection reset by peer",
    C.WSAENOBUFS: "No buffer space available",
    C.WSAEISCONN: "Socket is already connected",
    C.WSAENOTCONN: "Socket is not connected",
    C.WSAESHUTDOWN: "Cannot send after socket shutdown",
    C.WSAETIMEDOUT: "Connection timed out",
    C.WSAECONNREFUSED: "Connection refused",
    C.WSAEHOSTUNREACH: "No route to host",
    C.WSANOTINITIALISED: "WSAStartup has not been called",
}

_POSIX: dict[int, int] = {
    C.WSAEINTR: _errno.EINTR,
    C.WSAEBADF: _errno.EBADF,
    C.WSAEACCES: _errno.EACCES,
    C.WSAEFAULT: _errno.EFAULT,
    C.WSAEINVAL: _errno.EINVAL,
    C.WSAEMFILE: _errno.EMFILE,
    C.WSAEWOULDBLOCK: _errno.EWOULDBLOCK,
    C.WSAEINPROGRESS: _errno.EINPROGRESS,
    C.WSAEALREADY: _errno.EALREADY,
    C.WSAENOTSOCK: _errno.ENOTSOCK,
    C.WSAEDESTADDRREQ: _errno.EDESTADDRREQ,
    C.WSAEMSGSIZE: _errno.EMSGSIZE,
    C.WSAEPROTOTYPE: _errno.EPROTOTYPE,
    C.WSAENOPROTOOPT: _errno.ENOPROTOOPT,
    C.WSAEPROTONOSUPPORT: _errno.EPROTONOSUPPORT,
    C.WSAESOCKTNOSUPPORT: _errno.ESOCKTNOSUPPORT,
    C.WSAEOPNOTSUPP: _errno.EOPNOTSUPP,
    C.WSAEPFNOSUPPORT: _errno.EPFNOSUPPORT,
    C.WSAEAFNOSUPPORT: _errno.EAFNOSUPPORT,
    C.WSAEADDRINUSE: _errno.EADDRINUSE,
    C.WSAEADDRNOTAVAIL: _errno.EADDRNOTAVAIL,
    C.WSAENETDOWN: _errno.ENETDOWN,
    C.WSAENETUNREACH: _errno.ENETUNREACH,
    C.WSAENETRESET: _errno.ENETRESET,
    C.WSAECONNABORTED: _errno.ECONNABORTED,
    C.WSAECONNRESET: _errno.ECONNRESET,
    C.WSAENOBUFS: _errno.ENOBUFS,
    C.WSAEISCONN: _errno.EISCONN,
    C.WSAENOTCONN: _errno.ENOTCONN,
    C.WSAESHUTDOWN: _errno.ESHUTDOWN,
    C.WSAETIMEDOUT: _errno.ETIMEDOUT,
    C.WSAECONNREFUSED: _errno.ECONNREFUSED,
    C.WSAEHOSTDOWN: _errno.EHOSTDOWN,
    C.WSAETOOMANYREFS: _errno.ETOOMANYREFS,
    C.WSAELOOP: _errno.ELOOP,
    C.WSAENAMETOOLONG: _errno.ENAMETOOLONG,
    C.WSAEDISCON: _errno.ESHUTDOWN,
    C.WSAEHOSTUNREACH: _errno.EHOSTUNREACH,
    C.WSANOTINITIALISED: _errno.EINVAL,
}


def wsa_name(code: int) -> str:
    return WSA_NAMES.get(code, f"WSA error {code}")


def posix_errno(code: int) -> int:
    """The closest POSIX errno for a WSA code (EIO when none is close)."""
    return _POSIX.get(code, _errno.EIO)


def _message(code: int, detail: str) -> str:
    name = wsa_name(code)
    return f"{name}: {WSA_MESSAGES.get(code, name)}" + (f" ({detail})" if detail else "")


class WinsockError(OSError):
    """A Winsock failure as a Python exception: `.winerror` is the WSA code, `.wsa_name` its
    name, `.errno` the closest POSIX errno (so `except ConnectionRefusedError` works)."""

    def __new__(cls, winerror: int, detail: str = ""):  # type: ignore[no-untyped-def]
        sub = _SUBCLASS.get(winerror, cls) if cls is WinsockError else cls
        return OSError.__new__(sub, posix_errno(winerror), _message(winerror, detail))

    def __init__(self, winerror: int, detail: str = "") -> None:
        super().__init__(posix_errno(winerror), _message(winerror, detail))
        self.winerror = winerror
        self.wsa_name = wsa_name(winerror)

    def __str__(self) -> str:
        return f"[WinError {self.winerror}] {self.strerror}"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (WinsockError, (self.winerror,))


class WinsockConnectionRefused(WinsockError, ConnectionRefusedError):
    pass


class WinsockConnectionReset(WinsockError, ConnectionResetError):
    pass


class WinsockConnectionAborted(WinsockError, ConnectionAbortedError):
    pass


class WinsockTimeout(WinsockError, TimeoutError):
    pass


class WinsockBlockingIO(WinsockError, BlockingIOError):
    pass


class WinsockInterrupted(WinsockError, InterruptedError):
    pass


_SUBCLASS: dict[int, type[WinsockError]] = {
    C.WSAECONNREFUSED: WinsockConnectionRefused,
    C.WSAECONNRESET: WinsockConnectionReset,
    C.WSAECONNABORTED: WinsockConnectionAborted,
    C.WSAETIMEDOUT: WinsockTimeout,
    C.WSAEWOULDBLOCK: WinsockBlockingIO,
    C.WSAEINTR: WinsockInterrupted,
}
