"""Per-connection objects keep no instance dict (memory per idle connection, docs/benchmarks.md):
every attribute that connection.py and the mixin modules Connection is composed of (input.py,
output.py, recovery.py, timeouts.py) assign is in Connection.__slots__ (a clear message for
whoever adds one, before an AttributeError somewhere deep in a test), and each mixin declares
empty `__slots__` (one without them would give every Connection a dict again)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from ustack.tcp.connection import Connection
from ustack.tcp.receiver import Receiver, RecvBuffer
from ustack.tcp.sender import Sender
from ustack.tcp.socket import TcpSocket
from ustack.tcp.timers import Timers


def _connection_classes() -> list[type]:
    return [cls for cls in Connection.__mro__ if cls.__module__.startswith("ustack.tcp.")]


def test_connection_is_composed_of_the_tcp_mixins():
    modules = {cls.__module__ for cls in _connection_classes()}
    assert modules == {f"ustack.tcp.{m}" for m in ("connection", "input", "output", "recovery",
                                                   "timeouts")}
    for cls in _connection_classes():
        if cls is not Connection:
            assert cls.__dict__.get("__slots__") == (), cls


def test_every_attribute_connection_py_assigns_is_a_slot():
    text = "".join(Path(inspect.getsourcefile(cls)).read_text() for cls in _connection_classes())
    assigned = set(re.findall(r"self\.(\w+)\s*(?::[^=\n]*)?=(?!=)", text))
    for targets in re.findall(r"^\s*(self\.\w+(?:\s*,\s*self\.\w+)+)\s*=", text, re.M):
        assigned |= set(re.findall(r"self\.(\w+)", targets))  # self.a, self.b = ...
    missing = sorted(assigned - set(Connection.__slots__))
    assert missing == [], f"add {missing} to Connection.__slots__"


def test_per_connection_objects_have_no_instance_dict():
    for cls in (Connection, Sender, Receiver, RecvBuffer, Timers, TcpSocket):
        assert "__dict__" not in dir(cls), cls
