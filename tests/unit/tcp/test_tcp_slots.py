"""Per-connection objects keep no instance dict (memory per idle connection, docs/benchmarks.md):
every attribute that connection.py assigns is in Connection.__slots__ (a clear message for
whoever adds one, before an AttributeError somewhere deep in a test)."""

from __future__ import annotations

import re
from pathlib import Path

from ustack.tcp.connection import Connection
from ustack.tcp.receiver import Receiver, RecvBuffer
from ustack.tcp.sender import Sender
from ustack.tcp.socket import TcpSocket
from ustack.tcp.timers import Timers


def test_every_attribute_connection_py_assigns_is_a_slot():
    src = Path(Connection.__module__.replace(".", "/") + ".py")
    text = (Path(__file__).parents[3] / src).read_text()
    assigned = set(re.findall(r"self\.(\w+)\s*(?::[^=\n]*)?=(?!=)", text))
    for targets in re.findall(r"^\s*(self\.\w+(?:\s*,\s*self\.\w+)+)\s*=", text, re.M):
        assigned |= set(re.findall(r"self\.(\w+)", targets))  # self.a, self.b = ...
    missing = sorted(assigned - set(Connection.__slots__))
    assert missing == [], f"add {missing} to Connection.__slots__"


def test_per_connection_objects_have_no_instance_dict():
    for cls in (Connection, Sender, Receiver, RecvBuffer, Timers, TcpSocket):
        assert "__dict__" not in dir(cls), cls
