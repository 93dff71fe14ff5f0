"""Winsock readiness polling: select and WSAPoll (the rules themselves are in readiness.py).

`SelectCalls` is a part of the `Winsock` class (api.py), split off by concern: it uses the same
per-host state and helpers (`_get`, `_call`, `_block`, `_refresh`) as the rest of the class.
"""

from __future__ import annotations

from typing import Any

from . import constants as C
from . import readiness as R
from .buffers import WsaFail as _Fail
from .callwrap import api_call as _api
from .structs import FD_SET, TIMEVAL, WSAPOLLFD
from .wsocket import WSocket


class SelectCalls:
    """The select calls of `Winsock` (see the module docstring)."""

    # == select ===================================================================================
    @_api()
    def select(self, nfds: int, readfds: FD_SET | None, writefds: FD_SET | None,
               exceptfds: FD_SET | None, timeout: TIMEVAL | None) -> int:
        """nfds is ignored. Sets are rewritten in place. The result counts the entries written:
        a socket listed twice in a set appears once, and one FD_SET passed as two of the sets
        holds (and counts) each ready socket once (sock.c test_select). A socket closed by
        another thread during the wait wakes select: listed in readfds it is reported there;
        if nothing is reported, select fails with WSAENOTSOCK and empties the sets."""
        sets = (readfds, writefds, exceptfds)
        if all(fs is None or len(fs) == 0 for fs in sets):
            raise _Fail(C.WSAEINVAL)  # ≠L
        members = [[self._get(h) for h in fs.fd_array] if fs is not None else [] for fs in sets]
        if timeout is None:
            wait_s: float | None = None
        else:
            if timeout.tv_sec < 0 or timeout.tv_usec < 0:
                raise _Fail(C.WSAEINVAL)
            wait_s = timeout.tv_sec + timeout.tv_usec / 1e6
        checks = (R.readable, R.writable, R.excepted)
        result: list[list[int]] = [[], [], []]

        def scan() -> bool:
            for group in members:
                for ws in group:
                    self._refresh(ws)
            result[:] = [[ws.handle for ws in group if not ws.closed and check(ws)]
                         for group, check in zip(members, checks, strict=True)]
            return any(result) or any(ws.closed for group in members for ws in group)

        if not self._call(scan) and wait_s != 0:
            outcome = self._block(None, scan, wait_s)
            if outcome in ("cancelled", "down"):
                raise self._blocked_fail(outcome)
        result[0] += [ws.handle for ws in members[0] if ws.closed]
        written: dict[int, tuple[FD_SET, list[int]]] = {}
        for fs, ready in zip(sets, result, strict=True):
            if fs is not None:
                out = written.setdefault(id(fs), (fs, []))[1]
                for h in ready:
                    if h not in out:
                        out.append(h)
        if not any(out for _fs, out in written.values()) and any(
                ws.closed for group in members for ws in group):
            for fs, _out in written.values():
                fs.fd_array[:] = []
            raise _Fail(C.WSAENOTSOCK)
        for fs, out in written.values():
            fs.fd_array[:] = out
        return sum(len(out) for _fs, out in written.values())

    # == WSAPoll =================================================================================
    @_api(zero=True)
    def WSAPoll(self, fdArray: Any, fds: int, timeout: int) -> int:  # noqa: N802, N803
        """poll(): fills each entry's revents; returns how many entries have events, 0 on
        timeout (milliseconds; negative waits forever). As sock.c test_WSAPoll shows: no array
        -> WSAEINVAL for 0 entries, WSAEFAULT otherwise; `events` may hold only POLLRDNORM,
        POLLRDBAND and POLLWRNORM (anything else -> WSAEINVAL, checked for every entry but
        INVALID_SOCKET ones); a handle that is not a socket gets POLLNVAL and is not counted,
        unless every entry is one (-> WSAENOTSOCK); a socket closed by another thread during the
        wait gets POLLNVAL and is counted."""
        if fds <= 0:
            raise _Fail(C.WSAEINVAL)
        try:
            entries = list(fdArray)[:fds] if fdArray is not None else []
        except TypeError:
            raise _Fail(C.WSAEFAULT) from None
        if len(entries) < fds or not all(isinstance(e, WSAPOLLFD) for e in entries):
            raise _Fail(C.WSAEFAULT)
        socks: list[WSocket | None] = []
        for e in entries:
            e.revents = 0
            ws = self._sockets.get(int(e.fd))
            socks.append(None if ws is None or ws.closed else ws)
        if all(ws is None for ws in socks):
            for e in entries:
                e.revents = C.POLLNVAL
            raise _Fail(C.WSAENOTSOCK)
        for e in entries:
            if int(e.fd) != C.INVALID_SOCKET and e.events & 0xFFFF & ~C.POLL_EVENTS:
                raise _Fail(C.WSAEINVAL)
        found: list[int] = [0] * len(entries)

        def scan() -> bool:
            for i, (e, ws) in enumerate(zip(entries, socks, strict=True)):
                if ws is None:
                    found[i] = 0
                elif ws.closed:
                    found[i] = C.POLLNVAL
                else:
                    self._refresh(ws)
                    found[i] = R.poll_revents(ws, e.events & 0xFFFF)
            return any(found)

        if not self._call(scan) and timeout != 0:
            wait_s = None if timeout < 0 else timeout / 1000.0
            outcome = self._block(None, scan, wait_s)
            if outcome in ("cancelled", "down"):
                raise self._blocked_fail(outcome)
        for e, ws, got in zip(entries, socks, found, strict=True):
            e.revents = C.POLLNVAL if ws is None else got
        return sum(1 for got in found if got)
