"""Both runtimes offer the interface Winsock is written against (ustack.runtime.base)."""

from __future__ import annotations

import ustack
from tests.runtime.fakes import FakeStack
from ustack.drivers import MemLink
from ustack.runtime import Host, Runtime, Simulator, TaskHandle


def test_host_and_simhost_are_runtimes():
    sim = Simulator()
    try:
        h = sim.add_host("198.18.0.1/24", name="a", stack=FakeStack())
        assert isinstance(h, Runtime)
        assert isinstance(sim.spawn(lambda: None), TaskHandle)
    finally:
        sim.close()
    host = Host(FakeStack(), MemLink.pair("ip")[0])
    try:
        assert isinstance(host, Runtime)
        assert isinstance(host.spawn(lambda: None), TaskHandle)
    finally:
        host.close()


def test_package_exports():
    assert ustack.Host is Host
    assert ustack.Simulator is Simulator
