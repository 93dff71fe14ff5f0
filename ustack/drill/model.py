"""The parsed form of a packetdrill script, and the outcomes a run can end with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DrillError(Exception):
    """Base of the ways a script stops early; `line` is the script line (0: none)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class Unsupported(DrillError):
    """The script uses a construct ustack or this runner does not provide: a SKIP."""


class ScriptError(DrillError):
    """The script is malformed (a syntax or semantic error in it): a FAIL."""


class Mismatch(DrillError):
    """ustack did not do what the script expects: a FAIL."""


# time kinds, as packetdrill names them
ABSOLUTE, RELATIVE, ANY = "absolute", "relative", "any"
ABSOLUTE_RANGE, RELATIVE_RANGE = "abs_range", "rel_range"


@dataclass
class EventTime:
    kind: str
    start: float = 0.0  # seconds (relative kinds: offset from the previous event)
    end: float | None = None  # range end (same reference as start), or None


@dataclass
class TcpOption:
    """One option of a packet line: kind name and its values (sack: list of (left, right))."""

    name: str  # "nop", "eol", "mss", "wscale", "sackOK", "sack", "TS", "FO", "FOEXP", "md5", "exp"
    values: tuple[Any, ...] = ()


@dataclass
class PacketSpec:
    direction: str  # "<" inbound (injected), ">" outbound (expected from ustack)
    protocol: str = "tcp"  # "tcp" or "icmp"
    flags: str = ""  # packetdrill letters: S F R P . E W U
    seq: int = 0
    end_seq: int = 0
    length: int = 0
    ack: int | None = None  # None: no "ack N" given
    win: int | None = None  # None: not checked (outbound) / 0 ... (inbound)
    urg: int = 0
    options: list[TcpOption] | None = field(default_factory=list)  # None: <...> (not checked)
    tos: str | None = None  # ECN spec ("ect0", "ect1", "ce", "noecn", "ect01") or None
    icmp_type: str = ""  # icmp packets: "unreachable", ...
    icmp_code: str = ""
    icmp_mtu: int | None = None


@dataclass
class Expr:
    """A syscall argument or result: kind in int, word, str, ellipsis, list, struct, call, or."""

    kind: str
    value: Any = None
    items: list[Any] = field(default_factory=list)  # list/struct/call arguments/or operands
    name: str = ""  # struct field name (for items of a struct) or function name (call)


@dataclass
class SyscallSpec:
    name: str
    args: list[Expr]
    result: Expr
    errno: str | None = None
    end: float | None = None  # the "...END" of a blocking call, or None


@dataclass
class Event:
    line: int
    time: EventTime
    kind: str  # "packet", "syscall", "code", "command"
    packet: PacketSpec | None = None
    syscall: SyscallSpec | None = None
    text: str = ""  # code or command text


@dataclass
class Script:
    path: str
    options: dict[str, str] = field(default_factory=dict)
    init_commands: list[str] = field(default_factory=list)
    cleanup_commands: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
