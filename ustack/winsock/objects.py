"""Kernel objects the Winsock notification calls use: event objects and message windows.

Both are changed only under the host's lock (through `host.call`), so a thread blocked in
`host.wait` sees the change. Waiting goes through `host.wait` and so runs in virtual time in
the Simulator.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple


class WSAEVENT:
    """A manual-reset event object (WSACreateEvent). Starts non-signalled."""

    __slots__ = ("signaled", "closed", "name")
    _count = 0

    def __init__(self) -> None:
        WSAEVENT._count += 1
        self.name = f"event{WSAEVENT._count}"
        self.signaled = False
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("signaled" if self.signaled else "nonsignaled")
        return f"<WSAEVENT {self.name} {state}>"


def is_valid_event(ev: object) -> bool:
    return isinstance(ev, WSAEVENT) and not ev.closed


class MSG(NamedTuple):
    hwnd: Window
    message: int
    wParam: int  # noqa: N815 - Windows name
    lParam: int  # noqa: N815


class Window:
    """A window handle as WSAAsyncSelect sees it: a queue of posted messages.

    PostMessage semantics: posting appends and never blocks; the application reads with
    `GetMessage` (blocking, bounded by an optional timeout) or `PeekMessage`.
    """

    def __init__(self, host: object, name: str = "") -> None:
        self._host = host
        self.name = name
        self.queue: deque[MSG] = deque()
        self.destroyed = False

    def post(self, message: int, wparam: int, lparam: int) -> bool:
        """PostMessage: False when the window is gone (the message is dropped, as on Windows)."""
        if self.destroyed:
            return False
        self.queue.append(MSG(self, message, wparam, lparam))
        return True

    def PostMessage(self, message: int, wparam: int, lparam: int) -> bool:  # noqa: N802
        return self._host.call(self.post, message, wparam, lparam)  # type: ignore[attr-defined]

    def PeekMessage(self, remove: bool = True) -> MSG | None:  # noqa: N802
        """The first queued message (removed unless remove=False), or None."""

        def peek() -> MSG | None:
            if not self.queue:
                return None
            return self.queue.popleft() if remove else self.queue[0]

        return self._host.call(peek)  # type: ignore[attr-defined]

    def GetMessage(self, timeout_s: float | None = None) -> MSG | None:  # noqa: N802
        """Wait for a message; None if `timeout_s` passes first (Windows would wait forever)."""
        host = self._host
        if not host.wait(lambda: bool(self.queue), timeout_s):  # type: ignore[attr-defined]
            return None
        return self.PeekMessage()

    def drain(self) -> list[MSG]:
        """Every queued message, oldest first, removing them."""

        def take() -> list[MSG]:
            out = list(self.queue)
            self.queue.clear()
            return out

        return self._host.call(take)  # type: ignore[attr-defined]

    def DestroyWindow(self) -> None:  # noqa: N802
        def destroy() -> None:
            self.destroyed = True
            self.queue.clear()

        self._host.call(destroy)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<Window {self.name or hex(id(self))} {len(self.queue)} queued>"
