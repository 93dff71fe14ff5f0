"""The wrapper every Winsock call goes through (prologue checks, a `WsaFail` becomes the last
error and the call's failure value), shared by api.py and the overlapped calls."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ustack.core.errors import UsageError

from . import constants as C
from . import errors as E
from .buffers import WsaFail


def api_call(fail: Any = C.SOCKET_ERROR, *, startup: bool = True, zero: bool = False,
             inprogress: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a Winsock call: prologue checks, WsaFail -> last error + the failure value.

    startup: WSANOTINITIALISED / WSAENETDOWN checks; inprogress: WSAEINPROGRESS while a
    Winsock 1.1 blocking call of this thread is outstanding; zero: success clears the last
    error (item 8).
    """

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kw: Any) -> Any:
            try:
                if startup:
                    self._check_started()
                if inprogress and self._tls_blocking():
                    raise WsaFail(C.WSAEINPROGRESS)
                result = fn(self, *args, **kw)
            except WsaFail as f:
                self._set_error(f.code)
                return fail
            if zero:
                self._set_error(0)
            return result

        return wrapper

    return deco


def usage_fail(e: UsageError) -> WsaFail:
    return WsaFail(E.wsa_code(e.reason))
