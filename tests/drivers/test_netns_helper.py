"""The shared netns helper (tests/netns.py): isolation, results, errors, timeouts, CI policy."""

import os
import socket
import threading
import time

import pytest

from tests.netns import (
    NetnsChildError,
    _ns_inode,
    assert_test_net,
    netns_scope,
    require_netns,
    run_in_netns,
    skip_or_fail,
)
from ustack.drivers import TunDevice, interface_exists

HOST_NS = _ns_inode()


def _where() -> tuple[int, list[str], bool]:
    return _ns_inode(), [name for _, name in socket.if_nameindex()], _lo_is_up()


def _lo_is_up() -> bool:
    # sysfs shows the parent's view after unshare; ask the kernel through a socket instead.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.sendto(b"x", s.getsockname())
        return s.recv(1) == b"x"
    finally:
        s.close()


@pytest.mark.netns
def test_run_in_netns_is_private_with_lo_up() -> None:
    inode, names, lo_up = run_in_netns(_where, timeout=20)
    assert inode != HOST_NS and names == ["lo"] and lo_up
    assert _ns_inode() == HOST_NS


def _boom(x: int) -> None:
    raise KeyError(f"bad {x}")


@pytest.mark.netns
def test_run_in_netns_reraises_with_child_traceback() -> None:
    with pytest.raises(KeyError) as info:
        run_in_netns(_boom, 5, timeout=20)
    notes = "".join(getattr(info.value, "__notes__", []))
    assert "raised in netns child" in notes and "_boom" in notes


class _Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no pickling")


def _raise_unpicklable() -> None:
    raise _Unpicklable("x")


@pytest.mark.netns
def test_run_in_netns_unpicklable_exception() -> None:
    with pytest.raises(NetnsChildError, match="_Unpicklable"):
        run_in_netns(_raise_unpicklable, timeout=20)


@pytest.mark.netns
def test_run_in_netns_timeout_kills_child() -> None:
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        run_in_netns(time.sleep, 60, timeout=1.0)
    assert time.monotonic() - t0 < 10


@pytest.mark.netns
def test_run_in_netns_kwargs_and_result() -> None:
    assert run_in_netns(dict, a=1, b=[2], timeout=20) == {"a": 1, "b": [2]}


def test_netns_fixture_runs_the_body_privately(netns, request: pytest.FixtureRequest) -> None:
    assert _ns_inode() == netns.inode != HOST_NS
    assert [name for _, name in socket.if_nameindex()] == ["lo"] and _lo_is_up()
    assert request.node.get_closest_marker("netns") is not None  # added for `-m "not netns"`
    assert "lo" in netns.ip("link", "show").stdout


@pytest.mark.netns
def test_scope_returns_and_interfaces_stay_inside() -> None:
    with netns_scope() as ns:
        dev = TunDevice("ustiso0")
        assert interface_exists("ustiso0") and _ns_inode() == ns.inode
        # a second thread started here inherits the private namespace
        seen = []
        th = threading.Thread(target=lambda: seen.append(_ns_inode()))
        th.start()
        th.join(5)
        assert seen == [ns.inode]
    try:
        assert _ns_inode() == HOST_NS
        assert not interface_exists("ustiso0")  # never visible in the host namespace
    finally:
        dev.close()


def test_skip_or_fail_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and no tool"):
        skip_or_fail("no tool")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        skip_or_fail("no tool")


def test_require_netns_fails_loudly_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.netns as helper

    monkeypatch.setattr(helper, "_probe_result", ["pretend: not root"])
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not root"):
        require_netns()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require_netns()


def test_assert_test_net() -> None:
    assert_test_net("198.18.0.1/24")
    assert_test_net("198.19.255.254")
    for bad in ("10.0.0.1/8", "198.20.0.1", "198.18.0.0/14"):
        with pytest.raises(ValueError):
            assert_test_net(bad)


def test_helper_does_not_leak_fds() -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        try:
            run_in_netns(int, "7", timeout=20)
        except Exception:  # noqa: BLE001 - netns may be unavailable; only fds matter here
            pass
    assert len(os.listdir("/proc/self/fd")) == before
