"""Winsock asynchronous notification: WSAAsyncSelect (window messages), WSAEventSelect,
WSAEnumNetworkEvents, the event objects (WSACreateEvent ... WSAWaitForMultipleEvents) and
create_window.

`EventCalls` is a part of the `Winsock` class (api.py), split off by concern: it uses the same
per-host state and helpers (`_get`, `_call`, `_refresh`) as the rest of the class.
"""

from __future__ import annotations

from typing import Any

from . import constants as C
from .buffers import WsaFail as _Fail
from .callwrap import api_call as _api
from .objects import WSAEVENT, Window, is_valid_event
from .structs import WSANETWORKEVENTS


class EventCalls:
    """The event calls of `Winsock` (see the module docstring)."""

    # == WSAAsyncSelect / WSAEventSelect ==========================================================
    def create_window(self, name: str = "") -> Window:
        """A window handle for WSAAsyncSelect: a message queue the application reads."""
        return Window(self.host, name)

    CreateWindow = create_window

    @_api()
    def WSAAsyncSelect(self, s: int, hWnd: Window | None, wMsg: int, lEvent: int) -> int:  # noqa: N802, N803
        ws = self._get(s)
        if lEvent and not isinstance(hWnd, Window):
            raise _Fail(C.WSAEINVAL)

        def do() -> None:
            ws.nonblocking = True  # item 38
            if not lEvent:
                ws.reg_kind, ws.reg_events, ws.hwnd, ws.event = None, 0, None, None
                return
            ws.reg_kind, ws.reg_events, ws.hwnd, ws.wmsg, ws.event = "async", lEvent, hWnd, wMsg, None
            ws.enabled |= ~C.FD_CONNECT & ((1 << C.FD_MAX_EVENTS) - 1)  # item 42: all re-posted
            self._refresh(ws)

        self._call(do)
        return 0

    @_api()
    def WSAEventSelect(self, s: int, hEventObject: WSAEVENT | None, lNetworkEvents: int) -> int:  # noqa: N802, N803
        ws = self._get(s)
        if lNetworkEvents and not is_valid_event(hEventObject):
            raise _Fail(C.WSAEINVAL)

        def do() -> None:
            ws.nonblocking = True  # item 38
            if not lNetworkEvents:
                ws.reg_kind, ws.reg_events, ws.hwnd, ws.event = None, 0, None, None
                return
            # item 42: nothing is re-enabled, so what was already reported is not signalled
            # again, even after a registration with 0 (sock.c test_events); recorded events not
            # yet enumerated signal the event when selected again
            ws.reg_kind, ws.reg_events, ws.event, ws.hwnd = "event", lNetworkEvents, hEventObject, None
            if ws.record & lNetworkEvents and not hEventObject.closed:
                hEventObject.signaled = True
            self._refresh(ws)  # item 48: the event object is never reset here

        self._call(do)
        return 0

    @_api()
    def WSAEnumNetworkEvents(self, s: int, hEventObject: WSAEVENT | None,  # noqa: N802, N803
                             lpNetworkEvents: WSANETWORKEVENTS | None) -> int:  # noqa: N803
        ws = self._get(s)
        if lpNetworkEvents is None:
            raise _Fail(C.WSAEFAULT)
        if hEventObject is not None and not is_valid_event(hEventObject):
            raise _Fail(C.WSAEINVAL)

        def do() -> None:
            self._refresh(ws)
            bits = ws.record & ws.reg_events  # events not selected now stay recorded (sock.c)
            lpNetworkEvents.lNetworkEvents = bits
            for i in range(C.FD_MAX_EVENTS):
                if bits & (1 << i):  # item 47: only the entries of reported events are written
                    lpNetworkEvents.iErrorCode[i] = ws.record_errors[i]
            ws.record &= ~bits
            if hEventObject is not None:
                hEventObject.signaled = False

        self._call(do)
        return 0

    # -- event objects (no WSAStartup needed: they are plain kernel objects) -----------------------
    def WSACreateEvent(self) -> WSAEVENT:  # noqa: N802
        return WSAEVENT()

    def WSACloseEvent(self, hEvent: WSAEVENT) -> bool:  # noqa: N802, N803
        return self._event_op(hEvent, "close")

    def WSASetEvent(self, hEvent: WSAEVENT) -> bool:  # noqa: N802, N803
        return self._event_op(hEvent, "set")

    def WSAResetEvent(self, hEvent: WSAEVENT) -> bool:  # noqa: N802, N803
        return self._event_op(hEvent, "reset")

    def _event_op(self, ev: Any, op: str) -> bool:
        if not is_valid_event(ev):
            self._set_error(C.WSA_INVALID_HANDLE)
            return False

        def do() -> None:
            if op == "close":
                ev.closed = True
            else:
                ev.signaled = op == "set"

        self._call(do)
        return True

    def WSAWaitForMultipleEvents(self, cEvents: int, lphEvents: Any, fWaitAll: bool,  # noqa: N802, N803
                                 dwTimeout: int, fAlertable: bool = False) -> int:  # noqa: N803
        """Lowest signalled index (WSA_WAIT_EVENT_0 + i), WSA_WAIT_TIMEOUT or WSA_WAIT_FAILED."""
        if not 0 < cEvents <= C.WSA_MAXIMUM_WAIT_EVENTS or lphEvents is None:
            self._set_error(C.WSA_INVALID_PARAMETER)
            return C.WSA_WAIT_FAILED
        events = list(lphEvents)[:cEvents]
        if len(events) < cEvents:
            self._set_error(C.WSA_INVALID_PARAMETER)
            return C.WSA_WAIT_FAILED
        if not all(is_valid_event(ev) for ev in events):
            self._set_error(C.WSA_INVALID_HANDLE)
            return C.WSA_WAIT_FAILED
        found: list[int] = []

        def pred() -> bool:
            if fWaitAll:
                if all(ev.signaled for ev in events):
                    found[:] = [0]
            else:
                for i, ev in enumerate(events):
                    if ev.signaled:
                        found[:] = [i]
                        break
            return bool(found)

        timeout_s = None if dwTimeout == C.WSA_INFINITE else dwTimeout / 1000.0
        if fAlertable:  # completion routines of this thread run first (overlapped_calls.py)
            outcome = self._alertable_wait(pred, timeout_s)
            if outcome == "apc":
                return C.WSA_WAIT_IO_COMPLETION
            return C.WSA_WAIT_EVENT_0 + found[0] if outcome == "ready" else C.WSA_WAIT_TIMEOUT
        if self._call(pred):
            return C.WSA_WAIT_EVENT_0 + found[0]
        if timeout_s == 0:
            return C.WSA_WAIT_TIMEOUT
        if self.host.wait(pred, timeout_s):
            return C.WSA_WAIT_EVENT_0 + found[0]
        return C.WSA_WAIT_TIMEOUT
