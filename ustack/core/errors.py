"""Application misuse raises UsageError at once; peer input never raises (it sets a Reason)."""

from __future__ import annotations

from .reasons import Reason


class UsageError(Exception):
    """The application asked for something the socket's state does not allow."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
