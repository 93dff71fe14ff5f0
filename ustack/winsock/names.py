"""Winsock name resolution: gethostbyname, getaddrinfo / GetAddrInfoW, WSAAsyncGetHostByName.

Names are answered by `ustack.services.resolver.Resolver` (numeric literals, the static table,
then DNS over the host's own UDP/TCP to `stack.dns_servers`). Failures carry Windows' codes:
WSAHOST_NOT_FOUND (11001: NXDOMAIN, or no DNS server), WSATRY_AGAIN (11002: no answer in time,
SERVFAIL), WSANO_RECOVERY (11003: FORMERR/NOTIMP/REFUSED), WSANO_DATA (11004: the name has no
record of the type asked). getaddrinfo returns the EAI_* value, which on Windows *is* a WSA code
(ws2tcpip.h: EAI_NONAME = WSAHOST_NOT_FOUND, EAI_AGAIN = WSATRY_AGAIN, EAI_NODATA = EAI_NONAME,
...), and sets WSAGetLastError to it too.

IPv6 (issue 12): getaddrinfo/GetAddrInfoW with AF_INET6 asks AAAA records (IPv6 literals,
"%scope" included, need no query) and returns SOCKADDR_IN6 entries (ai_addrlen 28); AI_V4MAPPED
turns A records into ::ffff:a.b.c.d when there is no AAAA, AI_ALL|AI_V4MAPPED returns both.
AF_UNSPEC adds IPv6 entries first (RFC 6724's default order) only when the host has a global
IPv6 address: Windows' resolver sends AAAA queries only then (an AI_ADDRCONFIG-like default),
and ustack keeps IPv4-only hosts answering as before. gethostbyname stays IPv4-only.

`NameResolution` is a mixin of `Winsock`: it uses the host, the per-thread last error and the
startup check that class provides.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from ustack.core.addrconf import is_link_local
from ustack.core.family import v4mapped
from ustack.services.resolver import (
    NO_DATA,
    NO_RECOVERY,
    NOT_FOUND,
    TRY_AGAIN,
    ResolveError,
    Resolver,
    numeric,
)
from ustack.wire import dns as DNS

from . import addr6 as A6
from . import constants as C
from .buffers import WsaFail
from .objects import Window
from .structs import SOCKADDR_IN, SOCKADDR_IN_SIZE

WSAHOST_NOT_FOUND = 11001
WSATRY_AGAIN = 11002
WSANO_RECOVERY = 11003
WSANO_DATA = 11004
WSATYPE_NOT_FOUND = 10109
# ws2tcpip.h: the EAI_* codes are WSA codes
EAI_AGAIN = WSATRY_AGAIN
EAI_BADFLAGS = C.WSAEINVAL
EAI_FAIL = WSANO_RECOVERY
EAI_FAMILY = C.WSAEAFNOSUPPORT
EAI_MEMORY = C.WSA_NOT_ENOUGH_MEMORY
EAI_NONAME = WSAHOST_NOT_FOUND
EAI_NODATA = EAI_NONAME
EAI_SERVICE = WSATYPE_NOT_FOUND
EAI_SOCKTYPE = C.WSAESOCKTNOSUPPORT
AI_PASSIVE = 0x01
AI_CANONNAME = 0x02
AI_NUMERICHOST = 0x04
AI_NUMERICSERV = 0x08
AI_ALL = 0x0100
AI_ADDRCONFIG = 0x0400
AI_V4MAPPED = 0x0800
AF_UNSPEC = 0
MAXGETHOSTSTRUCT = 1024
_FLAGS_KNOWN = (AI_PASSIVE | AI_CANONNAME | AI_NUMERICHOST | AI_NUMERICSERV | AI_ALL | AI_ADDRCONFIG
                | AI_V4MAPPED)
NAME_ERRORS = {WSAHOST_NOT_FOUND: "WSAHOST_NOT_FOUND", WSATRY_AGAIN: "WSATRY_AGAIN",
               WSANO_RECOVERY: "WSANO_RECOVERY", WSANO_DATA: "WSANO_DATA",
               C.WSANOTINITIALISED: "WSANOTINITIALISED", C.WSAENETDOWN: "WSAENETDOWN",
               C.WSAEFAULT: "WSAEFAULT"}
_CODES = {NOT_FOUND: WSAHOST_NOT_FOUND, TRY_AGAIN: WSATRY_AGAIN, NO_RECOVERY: WSANO_RECOVERY,
          NO_DATA: WSANO_DATA}
_TCP = (C.SOCK_STREAM, C.IPPROTO_TCP)
_UDP = (C.SOCK_DGRAM, C.IPPROTO_UDP)
_SOCKTYPES = {0: (_TCP, _UDP), C.SOCK_STREAM: (_TCP,), C.SOCK_DGRAM: (_UDP,)}
_SERVICES = {"http": 80, "https": 443, "domain": 53, "ftp": 21, "ssh": 22, "smtp": 25, "echo": 7,
             "discard": 9, "daytime": 13, "telnet": 23, "ntp": 123}


@dataclass
class HOSTENT:  # noqa: N801 - Windows' name
    h_name: str
    h_aliases: list[str]
    h_addrtype: int
    h_length: int
    h_addr_list: list[bytes]  # each 4 bytes, network order


@dataclass
class ADDRINFO:  # noqa: N801
    ai_flags: int
    ai_family: int
    ai_socktype: int
    ai_protocol: int
    ai_addrlen: int
    ai_canonname: str | None
    ai_addr: SOCKADDR_IN | A6.SOCKADDR_IN6
    ai_next: ADDRINFO | None = field(default=None, repr=False)


def wsa_code(e: ResolveError) -> int:
    return _CODES[e.kind]


class NameResolution:
    """The name-resolution calls of `Winsock` (see the module docstring)."""

    host: Any

    # provided by Winsock
    def _check_started(self) -> None: ...  # pragma: no cover

    def _set_error(self, code: int) -> None: ...  # pragma: no cover

    def _names_setup(self) -> None:
        """The state of these calls; Winsock.__init__ calls it."""
        self._resolver: Resolver | None = None  # made on first use
        self._async_lock = threading.Lock()  # guards the two below (tasks finish on other threads)
        self._async_handles = itertools.count(1)
        self._async_pending: set[int] = set()  # WSAAsyncGetHostByName handles not yet answered

    @property
    def resolver(self) -> Resolver:
        """The resolver names are answered by (made on first use; tests may replace it)."""
        if self._resolver is None:
            self._resolver = Resolver(self.host)
        return self._resolver

    @resolver.setter
    def resolver(self, value: Resolver) -> None:
        self._resolver = value

    def _lookup(self, name: str, qtype: int = DNS.TYPE_A) -> list[str]:
        if qtype == DNS.TYPE_AAAA and name.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
            return ["::1"]
        try:
            return self.resolver.resolve(name, qtype)
        except ResolveError as e:
            raise WsaFail(wsa_code(e)) from None

    def _ipv6_configured(self) -> bool:
        """The host has a usable global (not link-local, not loopback) IPv6 address."""
        stack = self.host.stack
        return any(not is_link_local(a) and stack.is_local6(a) for a in list(stack.ipv6.addrs.addresses))

    # ---- gethostbyname ------------------------------------------------------------------------
    def gethostbyname(self, name: str | bytes | None) -> HOSTENT | None:
        """A HOSTENT (AF_INET), or None with WSAGetLastError set (WSAHOST_NOT_FOUND, ...)."""
        try:
            self._check_started()
            if name is None:
                raise WsaFail(C.WSAEFAULT)
            text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
            if A6.parse_ipv6(text.partition("%")[0]) is not None:
                raise WsaFail(WSAHOST_NOT_FOUND)  # IPv4-only: an IPv6 literal is no name to ask
            addrs = self._lookup(text)
        except WsaFail as f:
            self._set_error(f.code)
            return None
        return _hostent(text, addrs)

    # ---- getaddrinfo --------------------------------------------------------------------------
    def getaddrinfo(self, pNodeName: str | None, pServiceName: str | None,  # noqa: N803
                    pHints: ADDRINFO | None = None) -> tuple[int, ADDRINFO | None]:
        """(0, first ADDRINFO of the chain) or (EAI_* code, None); the code is also the last
        error. pHints: only ai_flags, ai_family, ai_socktype, ai_protocol are read."""
        try:
            self._check_started()
            result = self._getaddrinfo(pNodeName, pServiceName, pHints)
        except WsaFail as f:
            self._set_error(f.code)
            return f.code, None
        self._set_error(0)
        return 0, result

    GetAddrInfoW = getaddrinfo  # Unicode is what Python strings are already

    def freeaddrinfo(self, pAddrInfo: ADDRINFO | None) -> None:  # noqa: N803
        """Nothing to free in Python; kept so code written for Winsock runs unchanged."""

    FreeAddrInfoW = freeaddrinfo

    def _getaddrinfo(self, node: str | None, service: str | None, hints: ADDRINFO | None) -> ADDRINFO | None:
        flags = hints.ai_flags if hints else 0
        family = hints.ai_family if hints else AF_UNSPEC
        socktype = hints.ai_socktype if hints else 0
        protocol = hints.ai_protocol if hints else 0
        if node is None and service is None:
            raise WsaFail(EAI_NONAME)
        if flags & ~_FLAGS_KNOWN or (flags & AI_CANONNAME and node is None):
            raise WsaFail(EAI_BADFLAGS)
        if family not in (AF_UNSPEC, C.AF_INET, C.AF_INET6):
            raise WsaFail(EAI_FAMILY)
        if socktype not in _SOCKTYPES:
            raise WsaFail(EAI_SOCKTYPE)
        port = _port(service, flags)
        addrs = self._addresses(node, family, flags)
        kinds = [(t, p) for t, p in _SOCKTYPES[socktype] if not protocol or p == protocol] or \
            [(socktype or C.SOCK_STREAM, protocol)]
        first: ADDRINFO | None = None
        last: ADDRINFO | None = None
        for fam, value, scope in addrs:
            for t, p in kinds:
                canon = node if flags & AI_CANONNAME and first is None else None
                if fam == C.AF_INET6:
                    ai = ADDRINFO(0, fam, t, p, A6.SOCKADDR_IN6_SIZE, canon,
                                  A6.SOCKADDR_IN6.make(value, port, scope_id=scope))
                else:
                    ai = ADDRINFO(0, fam, t, p, SOCKADDR_IN_SIZE, canon, SOCKADDR_IN.make(value, port))
                if last is None:
                    first = ai
                else:
                    last.ai_next = ai
                last = ai
        return first

    def _addresses(self, node: str | None, family: int, flags: int) -> list[tuple[int, int, int]]:
        """(family, address int, scope id) for getaddrinfo, in the order returned."""
        want6 = family == C.AF_INET6 or (family == AF_UNSPEC and self._ipv6_configured())
        want4 = family in (C.AF_INET, AF_UNSPEC)
        mapped = family == C.AF_INET6 and bool(flags & AI_V4MAPPED)
        if node is None:
            passive = bool(flags & AI_PASSIVE)
            out = [(C.AF_INET6, 0 if passive else 1, 0)] if want6 else []
            if want4:
                out.append((C.AF_INET, 0 if passive else 0x7F000001, 0))
            return out
        literal4 = numeric(node)
        text6, _, scope_text = node.partition("%")
        literal6 = A6.parse_ipv6(text6)
        if literal6 is not None and (not scope_text or scope_text.isdigit()):
            if family == C.AF_INET:
                raise WsaFail(EAI_NONAME)
            return [(C.AF_INET6, literal6, int(scope_text or 0) & 0xFFFFFFFF)]
        if literal4 is not None:
            v4 = int.from_bytes(bytes(int(x) for x in literal4.split(".")), "big")
            if family == C.AF_INET6:
                if not mapped:
                    raise WsaFail(EAI_NONAME)
                return [(C.AF_INET6, v4mapped(v4), 0)]
            return [(C.AF_INET, v4, 0)]
        if flags & AI_NUMERICHOST:
            raise WsaFail(EAI_NONAME)
        out: list[tuple[int, int, int]] = []
        failure: WsaFail | None = None
        if want6:
            try:
                out += [(C.AF_INET6, _int6(a), 0) for a in self._lookup(node, DNS.TYPE_AAAA)]
            except WsaFail as f:
                failure = f
        if mapped and (not out or flags & AI_ALL):
            try:
                out += [(C.AF_INET6, v4mapped(_int4(a)), 0) for a in self._lookup(node)]
            except WsaFail as f:
                failure = failure if out else f
        if want4:
            try:
                out += [(C.AF_INET, _int4(a), 0) for a in self._lookup(node)]
            except WsaFail as f:
                failure = f  # the IPv4 answer's code when nothing was found
        if not out:
            raise failure or WsaFail(EAI_NONAME)
        return out

    # ---- WSAAsyncGetHostByName ----------------------------------------------------------------
    def WSAAsyncGetHostByName(self, hWnd: Any, wMsg: int, name: str,  # noqa: N802, N803
                              buf: Any, buflen: int) -> int:
        """Start the lookup in a task; returns its handle (0 with the last error set on
        failure). When done, posts wMsg to hWnd with wParam = the handle and lParam =
        WSAMAKEASYNCREPLY(buflen needed, error); `buf` (a HOSTENT) receives the answer."""
        try:
            self._check_started()
            if not isinstance(hWnd, Window) or name is None:
                raise WsaFail(C.WSAEINVAL if name is not None else C.WSAEFAULT)
        except WsaFail as f:
            self._set_error(f.code)
            return 0
        lock, pending = self._async_lock, self._async_pending
        with lock:
            handle = next(self._async_handles)
            pending.add(handle)

        def work() -> None:
            try:
                addrs = self.resolver.resolve(name)
                code, result = 0, _hostent(name, addrs)
            except ResolveError as e:
                code, result = wsa_code(e), None
            need = MAXGETHOSTSTRUCT
            if code == 0 and buflen < need:
                code = C.WSAENOBUFS
            with lock:
                if handle not in pending:
                    return  # cancelled: no message
                pending.discard(handle)
            if result is not None and code == 0 and isinstance(buf, HOSTENT):
                buf.h_name, buf.h_aliases, buf.h_addrtype = result.h_name, result.h_aliases, result.h_addrtype
                buf.h_length, buf.h_addr_list = result.h_length, result.h_addr_list
            self.host.call(hWnd.post, wMsg, handle, (code << 16) | (need if code == C.WSAENOBUFS else 0))

        self.host.spawn(work, name=f"WSAAsyncGetHostByName-{handle}")
        self._set_error(0)
        return handle

    def WSACancelAsyncRequest(self, hAsyncTaskHandle: int) -> int:  # noqa: N802, N803
        """Cancel a WSAAsyncGetHostByName: its message is never posted. WSAEINVAL if it has
        already completed or never existed."""
        with self._async_lock:
            if hAsyncTaskHandle not in self._async_pending:
                self._set_error(C.WSAEINVAL)
                return C.SOCKET_ERROR
            self._async_pending.discard(hAsyncTaskHandle)
        return 0


def empty_hostent() -> HOSTENT:
    """A HOSTENT to pass as WSAAsyncGetHostByName's buffer."""
    return HOSTENT("", [], 0, 0, [])


def _hostent(name: str, addrs: list[str]) -> HOSTENT:
    packed = [bytes(int(x) for x in a.split(".")) for a in addrs]
    return HOSTENT(name.rstrip("."), [], C.AF_INET, 4, packed)


def _int4(text: str) -> int:
    return int.from_bytes(bytes(int(x) for x in text.split(".")), "big")


def _int6(text: str) -> int:
    value = A6.parse_ipv6(text)
    if value is None:
        raise WsaFail(EAI_FAIL)  # the resolver gave something that is not an address
    return value


def _port(service: str | None, flags: int) -> int:
    if service is None:
        return 0
    if service.isdigit():
        n = int(service)
        if n > 0xFFFF:
            raise WsaFail(EAI_SERVICE)
        return n
    if flags & AI_NUMERICSERV:
        raise WsaFail(EAI_NONAME)
    port = _SERVICES.get(service.lower())
    if port is None:
        raise WsaFail(EAI_SERVICE)
    return port
