"""Suite-wide guard (house rule): a bug the stack swallowed fails the test that caused it.

Stack, TcpLayer and the runtimes catch exceptions so one bad frame or timer cannot stop the
network; they count them (`stack.internal_error`, `tcp.internal_error`, `runtime.errors`; the fault
injector's `FaultEngine.listener_errors`, `drivers.filters.decoder_errors`, Winsock's
`callback_errors` and serve's `ServiceSet.stats["handler_errors"]` likewise).
A test that passes while one of those counters moved would hide a bug, so every test is watched:
any swallowed exception fails it at teardown, with the traceback. A test that injects a bug on
purpose (to check that it is contained) says so with `@pytest.mark.internal_error_expected`.
Tests that run ustack in another process check its counters themselves."""

from __future__ import annotations

import traceback

import pytest

from ustack.cli.services import ServiceSet
from ustack.core.stack import Stack
from ustack.drivers import filters
from ustack.drivers.engine import FaultEngine
from ustack.runtime.base import ErrorLog
from ustack.tcp.layer import TcpLayer
from ustack.winsock.api import Winsock

# The private-namespace helper is one plugin for the whole suite: its `netns` fixture, and the hooks
# that mark fixture users `netns` and check every `netns`-marked test before it runs (skip, or
# fail under CI=true). No other conftest imports them.
pytest_plugins = ["tests.netns"]

_GUARDED = ((Stack, "_internal_error"), (TcpLayer, "_internal_error"), (ErrorLog, "_count_error"),
            (FaultEngine, "_listener_error"), (Winsock, "_callback_error"),
            (ServiceSet, "_handler_error"))
_GUARDED_FUNCTIONS = ((filters, "_decoder_error"),)  # module-level counters


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "internal_error_expected: the test injects a bug on purpose; swallowed "
                   "exceptions do not fail it (it asserts on the counters itself)")


@pytest.fixture(autouse=True)
def _no_swallowed_exceptions(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    seen: list[str] = []
    for cls, name in _GUARDED:
        original = getattr(cls, name)

        def watched(self, *args, _original=original, _where=f"{cls.__name__}.{name}"):
            seen.append(f"{_where}: {traceback.format_exc()}")
            return _original(self, *args)
        monkeypatch.setattr(cls, name, watched)
    for module, name in _GUARDED_FUNCTIONS:
        original = getattr(module, name)

        def watched_function(*args, _original=original, _where=f"{module.__name__}.{name}"):
            seen.append(f"{_where}: {traceback.format_exc()}")
            return _original(*args)
        monkeypatch.setattr(module, name, watched_function)
    yield seen
    if seen and request.node.get_closest_marker("internal_error_expected") is None:
        pytest.fail(f"{len(seen)} exception(s) swallowed by the stack during the test; the first:\n"
                    + seen[0], pytrace=False)
