"""Run test code inside a private network namespace, never the host's.

Two ways, both need root and /dev/net/tun:

* ``netns`` fixture: the test body itself runs in a fresh namespace (only ``lo``, up). The
  calling thread is moved with ``unshare(CLONE_NEWNET)`` and moved back with ``setns`` at
  teardown; threads and subprocesses started by the test inherit the private namespace.
  Interfaces the test creates vanish with it (once their fds are closed)::

      def test_tun(netns):
          dev = TunDevice("ust0"); kernel_side_up("ust0", "198.18.0.1/24", 1500)
          netns.ip("route", "add", "unreachable", "198.18.0.77/32")

* ``run_in_netns(fn, *args, timeout=30)``: forks, unshares in the child, brings ``lo`` up, runs
  ``fn`` there and returns its (picklable) result, or re-raises its exception in the parent
  with the child's traceback attached as a note. Full isolation, hard timeout (the child's
  process group is killed)::

      @pytest.mark.netns
      def test_x():
          assert run_in_netns(body, "arg", timeout=10) == 42

Availability: ``netns_unavailable_reason()`` is None when usable. A test that cannot run skips,
except under ``CI=true`` where it fails loudly (a CI that silently skips proves nothing).
Tests marked ``@pytest.mark.netns`` get the same check; tests using the fixture get the marker.
This module is a pytest plugin, registered once for the whole suite by tests/conftest.py
(``pytest_plugins = ["tests.netns"]``): every test directory gets the fixture and the hooks.

Only addresses in 198.18.0.0/15 (RFC 2544 benchmarking) belong in these tests; see
``assert_test_net``.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

__all__ = [
    "Netns", "NetnsChildError", "TEST_NET", "assert_test_net", "in_ci", "netns", "netns_scope",
    "netns_unavailable_reason", "pytest_collection_modifyitems", "pytest_runtest_setup",
    "require_netns", "require_tool", "run_in_netns", "skip_or_fail",
]

CLONE_NEWNET = 0x40000000
TEST_NET = ipaddress.ip_network("198.18.0.0/15")
T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip the test, or fail it under CI=true: there a missing prerequisite is a bug."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Path of an executable the test needs; skips (fails under CI) if absent."""
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name!r} is not installed")
    return path  # type: ignore[return-value]


def assert_test_net(addr_or_cidr: str) -> None:
    """Refuse anything outside 198.18.0.0/15: tests must never touch real networks."""
    net = ipaddress.ip_interface(addr_or_cidr).network
    if not net.subnet_of(TEST_NET):  # type: ignore[arg-type]
        raise ValueError(f"{addr_or_cidr} is outside the test range {TEST_NET}")


# -- namespace primitives ----------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def _unshare_net() -> None:
    if _libc.unshare(CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"unshare(CLONE_NEWNET): {os.strerror(e)}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns(CLONE_NEWNET): {os.strerror(e)}")


def _ns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def _ip_cmd() -> str:
    return shutil.which("ip") or "/sbin/ip"


def _lo_up() -> None:
    subprocess.run([_ip_cmd(), "link", "set", "lo", "up"], check=True, capture_output=True, timeout=10)


_probe_result: list[str | None] = []


def netns_unavailable_reason() -> str | None:
    """None if private namespaces with TUN/TAP work here, else why not (probed once)."""
    if _probe_result:
        return _probe_result[0]
    reason: str | None = None
    if sys.platform != "linux":
        reason = "network namespaces need Linux"
    elif os.geteuid() != 0:
        reason = "network namespace tests need root"
    elif not os.path.exists("/dev/net/tun"):
        reason = "/dev/net/tun is missing"
    elif shutil.which("ip") is None and not os.path.exists("/sbin/ip"):
        reason = "iproute2 'ip' command is missing"
    else:
        try:  # probe in a throwaway child so a half-working unshare cannot affect us
            run_in_netns(_probe_body, timeout=15)
        except Exception as e:  # noqa: BLE001 - any failure means "not available"
            reason = f"cannot create a private network namespace: {type(e).__name__}: {e}"
    _probe_result.append(reason)
    return reason


def _probe_body() -> bool:
    with open("/dev/net/tun", "rb", buffering=0):  # openable from inside the namespace
        pass
    return True


def require_netns() -> None:
    reason = netns_unavailable_reason()
    if reason is not None:
        skip_or_fail(reason)


# -- in-process scope --------------------------------------------------------------------------
class Netns:
    """Handle on the private namespace the current thread is in (from `netns_scope`)."""

    def __init__(self, inode: int) -> None:
        self.inode = inode

    def run(self, *cmd: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        """Run a command in the namespace (children inherit the calling thread's)."""
        self._check_inside()
        return subprocess.run(list(cmd), check=check, capture_output=True, text=True, timeout=timeout)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(_ip_cmd(), *args, check=check)

    def sysctl(self, key: str, value: str) -> None:
        self._check_inside()
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)

    def _check_inside(self) -> None:
        if _ns_inode() != self.inode:
            raise RuntimeError("not inside the private namespace (other thread, or scope ended)")


@contextmanager
def netns_scope() -> Iterator[Netns]:
    """Move the calling thread into a fresh network namespace for the block, then back."""
    host_ino = _ns_inode()
    old = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _unshare_net()
        inode = _ns_inode()
        if inode == host_ino:  # pragma: no cover - would mean unshare silently did nothing
            raise RuntimeError("unshare(CLONE_NEWNET) left us in the original namespace")
        try:
            _lo_up()
            yield Netns(inode)
        finally:
            _setns(old)
            if _ns_inode() != host_ino:  # pragma: no cover
                raise RuntimeError("could not return to the original network namespace")
    finally:
        os.close(old)


# -- forked child ------------------------------------------------------------------------------
class NetnsChildError(RuntimeError):
    """The child failed in a way that could not be sent back as the original exception."""


def run_in_netns(fn: Callable[..., T], *args: Any, timeout: float = 30, **kwargs: Any) -> T:
    """Run fn(*args, **kwargs) in a forked child inside a fresh network namespace.

    Returns fn's result (must be picklable); re-raises fn's exception with the child's
    traceback as a note; TimeoutError (child's process group killed) after `timeout` s.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into the caller's stack (pytest!) — always _exit
        code = 0
        try:
            os.close(r)
            os.setpgid(0, 0)  # own process group: a timeout kills whatever fn started
            tb = ""
            try:
                _unshare_net()
                _lo_up()
                payload: tuple[Any, ...] = ("ok", fn(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
                tb = traceback.format_exc()
                payload = ("err", e, tb)
            try:
                data = pickle.dumps(payload)
            except Exception:  # noqa: BLE001 - unpicklable result or exception
                data = pickle.dumps(("err", None, tb or f"unpicklable result: {payload[1]!r}"))
            with os.fdopen(w, "wb") as f:
                f.write(data)
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)

    os.close(w)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([r], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(r, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(r)
        if timed_out:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(pid)
    if timed_out:
        raise TimeoutError(f"netns child {pid} still running after {timeout} s (killed)")
    if not chunks:
        raise NetnsChildError(f"netns child {pid} exited without a result")
    result = pickle.loads(b"".join(chunks))
    if result[0] == "ok":
        return result[1]
    _, exc, tb = result
    if isinstance(exc, BaseException):
        exc.add_note(f"--- raised in netns child {pid} ---\n{tb}")
        raise exc
    raise NetnsChildError(f"netns child {pid} failed:\n{tb}")


def _reap(pid: int) -> None:
    """Wait for the child, bounded: SIGKILL its group if it lingers after sending its result."""
    for _ in range(50):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


# -- pytest integration ------------------------------------------------------------------------
@pytest.fixture
def netns() -> Iterator[Netns]:
    """The test body runs in a fresh network namespace (skips, or fails under CI=true)."""
    require_netns()
    with netns_scope() as ns:
        yield ns


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that use the fixture carry the marker, so `-m "not netns"` deselects them.
    for item in items:
        if "netns" in getattr(item, "fixturenames", ()) and item.get_closest_marker("netns") is None:
            item.add_marker(pytest.mark.netns)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") is not None:
        require_netns()
