"""The one error type every codec raises on malformed input."""


class Malformed(ValueError):
    """Raised by `parse` when bytes are not a valid header.

    `reason` is a dotted counter name (``"ipv4.bad_checksum"``) so the stack can count the drop
    under the same name; `detail` says exactly what was wrong.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
