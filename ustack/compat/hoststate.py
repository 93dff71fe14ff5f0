"""Per host: the Winsock that `ustack.compat` sockets run on, and the readiness fds it mirrors.

One `HostState` per host (kept in a weak map, so it lives as long as the host): a `Winsock`
with Linux's connect behaviour, whose `on_event` hook (network thread, host lock held) keeps
each armed `ReadyFd` in step with its socket; `sync` does the same after an application call;
sockets collected without close() wait in `orphans` until an application thread closes them.
"""

from __future__ import annotations

import _socket
import threading
import weakref
from typing import Any

from ustack import socket as us
from ustack.core.events import READ as _EV_READ
from ustack.winsock.api import Winsock
from ustack.winsock.structs import WSADATA

from .readyfd import ReadyFd

# ustack resolver failures -> (EAI code, glibc's message)
_EAI = {
    "NOT_FOUND": (_socket.EAI_NONAME, "Name or service not known"),
    "NO_DATA": (getattr(_socket, "EAI_NODATA", _socket.EAI_NONAME), "No address associated with hostname"),
    "TRY_AGAIN": (_socket.EAI_AGAIN, "Temporary failure in name resolution"),
    "NO_RECOVERY": (_socket.EAI_FAIL, "Non-recoverable failure in name resolution"),
}


class HostState:
    """Per host: its Winsock (Linux connect behaviour) and the ReadyFd of every handle."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.fds: dict[int, ReadyFd] = {}
        # Linux: a RST refuses at once; a UDP connect to a broadcast address needs SO_BROADCAST
        self.winsock = Winsock(host, syn_rst_retries=0, broadcast_connect="document",
                               on_event=self._on_event)
        self.winsock.WSAStartup(0x0202, WSADATA())
        self.orphans: list[tuple[us.socket, ReadyFd]] = []  # garbage-collected without close()
        self.lock = threading.Lock()
        self.lock_of_host = getattr(host, "lock", None)  # Host and SimHost expose their stack lock
        self.resolver: Any = None  # ustack.services.resolver.Resolver, made on first use

    def _on_event(self, handle: int, events: int) -> None:
        """Winsock's hook, network thread, host lock held: runs for every segment received."""
        ready = self.fds.get(handle)
        if ready is None or not ready.armed or (events == _EV_READ and ready.readable):
            return  # nobody looks at the fd yet, or more data on a socket already readable
        self._sync_locked(handle, ready)

    def sync(self, handle: int) -> None:
        """Mirror the socket's readiness onto its fd now (after an application call). Only
        state is read, nothing is sent: the host lock alone is enough (no output flush)."""
        ready = self.fds.get(handle)
        if ready is None or not ready.armed:
            return
        lock = self.lock_of_host
        if lock is None:
            self.host.call(self._sync_locked, handle, ready)
        else:
            with lock:
                self._sync_locked(handle, ready)

    def arm(self, handle: int) -> None:
        """Start mirroring the socket's readiness onto its fd (the program asked for the fd)."""
        ready = self.fds.get(handle)
        if ready is not None and not ready.armed:
            self.host.call(self._arm_locked, handle, ready)

    def _arm_locked(self, handle: int, ready: ReadyFd) -> None:
        ready.armed = True
        self._sync_locked(handle, ready)

    def _sync_locked(self, handle: int, ready: ReadyFd) -> None:
        r, w, x = self.winsock.readiness(handle)
        ready.set(r or x, w or x)  # a failed connect is POLLERR: select reports it in both sets

    def dns_lookup(self, name: str, qtype: int = 1) -> list[str]:
        """IPv4 (qtype 1, A) or IPv6 (28, AAAA) addresses of `name` from ustack's stub resolver
        (ustack.services.resolver) over this host's own UDP/TCP, when its stack has DNS
        servers; gaierror as glibc reports."""
        if not getattr(self.host.stack, "dns_servers", None):
            raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
        from ustack.services.resolver import ResolveError, Resolver

        with self.lock:
            if self.resolver is None:
                self.resolver = Resolver(self.host)
            resolver = self.resolver
        try:
            return resolver.resolve(name, qtype)
        except ResolveError as e:
            code, text = _EAI.get(e.kind, _EAI["NOT_FOUND"])
            raise _socket.gaierror(code, text) from None

    def reap(self) -> None:
        """Close the ustack sockets of socket objects collected without close()."""
        with self.lock:
            orphans, self.orphans = self.orphans, []
        for inner, ready in orphans:
            self.fds.pop(inner.fileno(), None)
            try:
                inner.close()
            except OSError:
                pass
            ready.close()


_states: weakref.WeakKeyDictionary[Any, HostState] = weakref.WeakKeyDictionary()
states_lock = threading.Lock()


def host_state(host: Any) -> HostState:
    with states_lock:
        st = _states.get(host)
        if st is None:
            st = _states[host] = HostState(host)
        return st


