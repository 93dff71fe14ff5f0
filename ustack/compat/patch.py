"""Putting ustack under unmodified code: `patched(host)` and `socket_module(host)`.

`patched(host)` swaps, for the duration of a `with` block and for the whole process, the
`socket` module's `socket` class and its resolver functions (getaddrinfo, gethostbyname,
gethostbyname_ex, gethostbyaddr, getnameinfo; `has_ipv6` True). Everything that looks these
up at call time follows: socket.create_connection, http.client, urllib.request, smtplib,
socketserver, asyncio's event loop, urllib3/requests. `SSLContext.wrap_socket` gets a branch
for ustack sockets (see tls.py), and `os.sendfile` refuses their file descriptors (EINVAL:
asyncio's loop.sendfile falls back to send()). Sockets of other families (AF_UNIX, netlink) and sockets made
from a file descriptor stay the kernel's.

In the Simulator nothing may block outside the simulation: blocking socket calls already wait
in virtual time (Winsock waits through `host.wait`), and `patched(sim_host)` also makes
select.select, the selectors' select() (so socketserver and asyncio's loop), time.sleep and
asyncio's loop clock wait in and read virtual time, and asyncio's run_in_executor (to_thread,
name lookups, the sendfile fallback) runs its call inline, inside the simulation.

`socket_module(host)` is a separate module object with the same replacements, for code that
takes the socket module as a parameter (tests, notebooks, several hosts in one simulation);
it changes nothing global except the ssl branch.
"""

from __future__ import annotations

import errno
import functools
import os
import select as _select
import selectors as _selectors
import socket as _pysocket
import threading
import time as _time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import names, readyfd, tls
from .hoststate import host_state
from .sock import socket_class

# Functions of the socket module written in Python look their helpers up in the module's
# globals; a module copy needs its own copies of them.
_REBOUND = ("create_connection", "create_server", "getfqdn", "has_dualstack_ipv6")
_lock = threading.RLock()
_active: list[Any] = []  # the hosts of the patched() blocks now open (innermost last)


def _with_dns(fn: Callable[..., Any], dns: names.Dns) -> Callable[..., Any]:
    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, dns=dns, **kwargs)

    return bound


def _overrides(host: Any) -> dict[str, Any]:
    dns = host_state(host).dns_lookup
    return {
        "socket": socket_class(host),
        "getaddrinfo": _with_dns(names.getaddrinfo, dns),
        "gethostbyname": _with_dns(names.gethostbyname, dns),
        "gethostbyname_ex": _with_dns(names.gethostbyname_ex, dns),
        "gethostbyaddr": names.gethostbyaddr,
        "getnameinfo": names.getnameinfo,
        "has_ipv6": True,
    }


def socket_module(host: Any) -> types.ModuleType:
    """A copy of the `socket` module whose AF_INET sockets and resolver are ustack's on `host`."""
    tls.install()
    mod = types.ModuleType("socket", _pysocket.__doc__)
    ns = mod.__dict__
    ns.update({k: v for k, v in vars(_pysocket).items() if not k.startswith("__")})
    ns.update(_overrides(host))
    for name in _REBOUND:
        f = vars(_pysocket).get(name)
        if isinstance(f, types.FunctionType):
            g = types.FunctionType(f.__code__, ns, f.__name__, f.__defaults__, f.__closure__)
            g.__kwdefaults__ = f.__kwdefaults__
            g.__doc__ = f.__doc__
            ns[name] = g
    mod.host = host  # type: ignore[attr-defined]
    return mod


def is_virtual(host: Any) -> bool:
    """True for a Simulator host (virtual time)."""
    from ustack.runtime.simulator import SimHost

    return isinstance(host, SimHost)


@contextmanager
def patched(host: Any) -> Iterator[types.ModuleType]:
    """`with patched(host):` the process's socket module is ustack's on `host` (see the module
    docstring); yields the `socket` module. Blocks nest only with the same host."""
    with _lock:
        if _active and _active[-1] is not host:
            raise RuntimeError("ustack.patched() is already active for another host")
        _active.append(host)
        saved: list[tuple[Any, str, Any]] = []
        if len(_active) == 1:
            tls.install()
            for name, value in _overrides(host).items():
                saved.append((_pysocket, name, getattr(_pysocket, name)))
                setattr(_pysocket, name, value)
            saved.append((os, "sendfile", os.sendfile))
            os.sendfile = _guarded_sendfile(os.sendfile)
            if is_virtual(host):
                for obj, name, value in _virtual_time(host):
                    saved.append((obj, name, getattr(obj, name)))
                    setattr(obj, name, value)
    try:
        yield _pysocket
    finally:
        with _lock:
            for obj, name, value in reversed(saved):
                setattr(obj, name, value)
            _active.pop()


def _guarded_sendfile(real: Callable[..., int]) -> Callable[..., int]:
    """os.sendfile that refuses a ustack socket's fd (EINVAL) instead of writing the file into
    its readiness socketpair; asyncio's loop.sendfile then falls back to send()."""

    def sendfile(out_fd: int, in_fd: int, *args: Any, **kwargs: Any) -> int:
        if out_fd in readyfd.APP_FDS:
            raise OSError(errno.EINVAL, "os.sendfile to a ustack socket (socket.sendfile falls back to send)")
        return real(out_fd, in_fd, *args, **kwargs)

    return sendfile


def _virtual_time(host: Any) -> list[tuple[Any, str, Any]]:
    """(object, attribute, replacement) that make waits and clocks virtual on a SimHost."""
    out: list[tuple[Any, str, Any]] = []
    for cls in vars(_selectors).values():  # every selector class defining select() (and their bases)
        if (isinstance(cls, type) and issubclass(cls, _selectors.BaseSelector)
                and cls is not _selectors.BaseSelector and "select" in vars(cls)):
            out.append((cls, "select", _virtual_method(host, vars(cls)["select"])))
    real_select = _select.select

    def select(rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> Any:
        got: list[Any] = []

        def ready() -> bool:
            got[:] = [real_select(rlist, wlist, xlist, 0)]
            return any(got[0])

        if not ready() and (timeout is None or timeout > 0):
            host.wait(ready, timeout)
        return got[0]

    out.append((_select, "select", select))
    out.append((_time, "sleep", host.sleep))
    import asyncio.base_events

    out.append((asyncio.base_events.BaseEventLoop, "time", lambda _loop: host.now()))
    out.append((asyncio.base_events.BaseEventLoop, "run_in_executor", _run_inline))
    return out


def _run_inline(loop: Any, _executor: Any, func: Callable[..., Any], *args: Any) -> Any:
    """run_in_executor in virtual time: the call runs at once in the loop's thread (a thread of
    the simulation), not in a worker thread the simulator cannot see (its result would wake
    the loop through a pipe while the simulator finds every task waiting: a deadlock)."""
    fut = loop.create_future()
    try:
        fut.set_result(func(*args))
    except BaseException as e:  # noqa: BLE001 - handed to whoever awaits, as an executor would
        fut.set_exception(e)
    return fut


def _virtual_method(host: Any, real: Callable[..., Any]) -> Callable[..., Any]:
    def select(self: Any, timeout: float | None = None) -> Any:
        got: list[Any] = []

        def ready() -> bool:
            got[:] = real(self, 0)
            return bool(got)

        if not ready() and (timeout is None or timeout > 0):
            host.wait(ready, timeout)
        return list(got)

    return select
