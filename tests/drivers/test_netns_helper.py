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
    assert time.monotonic() - t0 < 30  # the child was killed: its 60 s sleep did not run out


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


# One file per test directory that has TUN/TAP tests: each is collected under its own directory's
# conftest (or none), so a directory that lost the shared plugin would show up here.
_NETNS_TEST_FILES = ("tests/drivers/test_netns_helper.py", "tests/runtime/test_host_tun.py",
                     "tests/services/test_dnsmasq.py", "tests/cli/test_bad_input.py",
                     "tests/interop/test_foundation_ping.py", "tests/conformance/test_ipv4.py",
                     "tests/perf/test_bench_all.py", "tests/compat/test_kernel.py",
                     "tests/winsock/test_ws_kernel.py")


def test_every_directory_fails_its_tun_tests_under_ci_when_netns_is_missing(tmp_path) -> None:
    """The suite run as CI runs it (CI=true) on a machine without private namespaces: every
    netns test of every directory fails at set-up with the reason; none is skipped or passes."""
    import subprocess
    import sys
    import xml.etree.ElementTree as ET
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "pretend_no_netns.py").write_text(
        "def pytest_configure(config):\n"
        "    import tests.netns as helper\n"
        "    helper._probe_result[:] = ['pretend: no TUN here']\n")
    report = tmp_path / "report.xml"
    env = {**os.environ, "CI": "true", "PYTHONPATH": f"{root}{os.pathsep}{tmp_path}"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "pretend_no_netns", "-m", "netns",
                        "-p", "no:cacheprovider", f"--junitxml={report}", *_NETNS_TEST_FILES],
                       cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    cases = ET.parse(report).getroot().iter("testcase")
    by_file: dict[str, list[str]] = {}
    for case in cases:
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag + ": " + (child.get("message") or "")
        by_file.setdefault(case.get("classname", "").split(".")[-2], []).append(outcome)
    assert sorted(by_file) == sorted(f.split("/")[1] for f in _NETNS_TEST_FILES), list(by_file)
    for outcomes in by_file.values():
        assert outcomes and all(o.startswith(("failure", "error")) and "CI=true and pretend: no TUN here" in o
                                for o in outcomes), outcomes
