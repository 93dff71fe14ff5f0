"""A socket class shaped like Python's `socket.socket`, running on ustack's Winsock layer.

    from ustack import socket as us
    with us.socket(host, us.AF_INET, us.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(("198.18.0.1", 80))
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        print(s.recv(4096))

Addresses are ("a.b.c.d", port) tuples; AF_INET6 sockets take ("addr", port) or ("addr", port,
flowinfo, scope_id) and return the 4-tuple, as Python does (IPV6_V6ONLY is on by default, as on
Windows; turned off, IPv4 peers show as ("::ffff:a.b.c.d", port, 0, 0)). Failures raise
`WinsockError`, an OSError carrying
`.winerror` (the WSA code, as Python on Windows does), `.wsa_name` and the closest POSIX
`.errno`; refused/reset/aborted/timed-out/would-block raise the matching OSError subclasses
(ConnectionRefusedError, ..., TimeoutError, BlockingIOError) too. Semantics are Winsock's (this
is a model of Windows): e.g. `listen` on an unbound socket fails, `send` on an unconnected UDP
socket raises WSAENOTCONN, and SO_REUSEADDR follows Windows rules.

Each host gets one shared `Winsock` (version 2.2), see `Winsock.for_host`.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

from .winsock import constants as C
from .winsock.addr6 import SOCKADDR_IN6, parse_ipv6
from .winsock.api import Winsock
from .winsock.errors import WinsockError, WinsockTimeout
from .winsock.structs import FD_SET, SOCKADDR_IN, TIMEVAL

AF_INET = C.AF_INET
AF_INET6 = C.AF_INET6
IPPROTO_IPV6 = C.IPPROTO_IPV6
IPV6_V6ONLY = C.IPV6_V6ONLY
IPV6_UNICAST_HOPS = C.IPV6_UNICAST_HOPS
SOCK_STREAM = C.SOCK_STREAM
SOCK_DGRAM = C.SOCK_DGRAM
IPPROTO_TCP = C.IPPROTO_TCP
IPPROTO_UDP = C.IPPROTO_UDP
SOL_SOCKET = C.SOL_SOCKET
SO_REUSEADDR = C.SO_REUSEADDR
SO_EXCLUSIVEADDRUSE = C.SO_EXCLUSIVEADDRUSE
SO_BROADCAST = C.SO_BROADCAST
SO_KEEPALIVE = C.SO_KEEPALIVE
SO_LINGER = C.SO_LINGER
SO_RCVBUF = C.SO_RCVBUF
SO_SNDBUF = C.SO_SNDBUF
SO_ERROR = C.SO_ERROR
SO_TYPE = C.SO_TYPE
TCP_NODELAY = C.TCP_NODELAY
IPPROTO_IP = C.IPPROTO_IP
IP_MULTICAST_IF = C.IP_MULTICAST_IF
IP_MULTICAST_TTL = C.IP_MULTICAST_TTL
IP_MULTICAST_LOOP = C.IP_MULTICAST_LOOP
IP_ADD_MEMBERSHIP = C.IP_ADD_MEMBERSHIP
IP_DROP_MEMBERSHIP = C.IP_DROP_MEMBERSHIP
INADDR_ANY = 0
SOMAXCONN = C.SOMAXCONN
MSG_PEEK = C.MSG_PEEK
MSG_WAITALL = C.MSG_WAITALL
SHUT_RD = C.SD_RECEIVE
SHUT_WR = C.SD_SEND
SHUT_RDWR = C.SD_BOTH
error = OSError
timeout = TimeoutError

__all__ = [
    "AF_INET", "AF_INET6", "INADDR_ANY", "IPPROTO_IPV6", "IPV6_UNICAST_HOPS", "IPV6_V6ONLY",
    "IPPROTO_IP", "IP_ADD_MEMBERSHIP", "IP_DROP_MEMBERSHIP", "IP_MULTICAST_IF",
    "IP_MULTICAST_LOOP", "IP_MULTICAST_TTL", "IPPROTO_TCP", "IPPROTO_UDP", "MSG_PEEK", "MSG_WAITALL",
    "SHUT_RD", "SHUT_RDWR",
    "SHUT_WR", "SOCK_DGRAM", "SOCK_STREAM", "SOL_SOCKET", "SOMAXCONN", "SO_BROADCAST", "SO_ERROR",
    "SO_EXCLUSIVEADDRUSE", "SO_KEEPALIVE", "SO_LINGER", "SO_RCVBUF", "SO_REUSEADDR", "SO_SNDBUF",
    "SO_TYPE", "TCP_NODELAY", "WinsockError", "create_connection", "error", "socket", "timeout",
]

_Address = tuple[str, int] | tuple[str, int, int, int]


def _sockaddr(address: Any, family: int = AF_INET) -> SOCKADDR_IN | SOCKADDR_IN6:
    """The Winsock name for a Python address of `family` (TypeError / OverflowError as Python)."""
    if family == AF_INET6:
        return _sockaddr6(address)
    if not (isinstance(address, tuple) and len(address) == 2):
        raise TypeError(f"AF_INET address must be a (host, port) tuple, not {address!r}")
    host, port = address
    _check_port(port)
    if host in ("", None):
        host = "0.0.0.0"
    elif host == "<broadcast>":
        host = "255.255.255.255"
    try:
        return SOCKADDR_IN.make(host, port)
    except OSError:
        raise WinsockError(C.WSAEINVAL, f"not an IPv4 address: {host!r}") from None


def _check_port(port: Any) -> None:
    if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise OverflowError("port must be 0-65535.")


def _sockaddr6(address: Any) -> SOCKADDR_IN6:
    if not (isinstance(address, tuple) and 2 <= len(address) <= 4):
        raise TypeError(f"AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]]), "
                        f"not {address!r}")
    host, port, flowinfo, scope_id = (*address, 0, 0)[:4]
    _check_port(port)
    if not isinstance(flowinfo, int) or not 0 <= flowinfo <= 0xFFFFF:
        raise OverflowError("flowinfo must be 0-1048575.")
    if not isinstance(scope_id, int) or not 0 <= scope_id <= 0xFFFFFFFF:
        raise OverflowError("scope_id must be 0-4294967295.")
    text, _, scope_text = ("::" if host in ("", None) else str(host)).partition("%")
    value = parse_ipv6(text)
    if value is None or (scope_text and not scope_text.isdigit()):
        raise WinsockError(C.WSAEINVAL, f"not an IPv6 address: {host!r}")
    return SOCKADDR_IN6.make(value, port, flowinfo, scope_id or int(scope_text or 0))


def _address(out: SOCKADDR_IN | SOCKADDR_IN6) -> _Address:
    """Python's tuple for a name Winsock wrote: (host, port) or (host, port, flowinfo, scope_id)."""
    if isinstance(out, SOCKADDR_IN6):
        return out.addr, out.port, out.flowinfo, out.sin6_scope_id
    return out.addr, out.port


class socket:  # noqa: N801 - the name Python uses
    """A ustack socket with the Python socket API (see the module docstring)."""

    def __init__(self, host: Any, family: int = AF_INET, type: int = SOCK_STREAM,  # noqa: A002
                 proto: int = 0, *, winsock: Winsock | None = None, _handle: int | None = None) -> None:
        self._ws = winsock or Winsock.for_host(host)
        self.host = host
        if _handle is None:
            _handle = self._ws.socket(family, type, proto)
            if _handle == C.INVALID_SOCKET:
                raise self._error()
        self._s: int | None = _handle
        self.family = family
        self.type = type
        self.proto = proto or (IPPROTO_TCP if type == SOCK_STREAM else IPPROTO_UDP)
        self._timeout: float | None = None

    # -- plumbing --------------------------------------------------------------------------------
    def _error(self, detail: str = "") -> WinsockError:
        return WinsockError(self._ws.WSAGetLastError(), detail)

    def _check(self, r: int) -> int:
        if r == C.SOCKET_ERROR or r == C.INVALID_SOCKET:
            raise self._error()
        return r

    @property
    def _h(self) -> int:
        if self._s is None:
            raise WinsockError(C.WSAENOTSOCK, "socket is closed")
        return self._s

    def _last(self) -> int:
        return self._ws.WSAGetLastError()

    def _wait(self, read: bool, write: bool = False) -> tuple[bool, bool, bool]:
        """select on this socket for the current timeout: (readable, writable, excepted)."""
        h = self._h
        r = FD_SET(h) if read else None
        w = FD_SET(h) if write else None
        x = FD_SET(h) if write else None
        t = self._timeout
        tv = None if t is None else TIMEVAL(int(t), int(round((t - int(t)) * 1e6)))
        if self._ws.select(0, r, w, x, tv) == C.SOCKET_ERROR:
            raise self._error()
        return (r is not None and h in r, w is not None and h in w, x is not None and h in x)

    def _ioctl_nbio(self, on: bool) -> None:
        self._check(self._ws.ioctlsocket(self._h, C.FIONBIO, ctypes.c_ulong(int(on))))

    def _timeouts(self, ms: int) -> None:
        for opt in (C.SO_RCVTIMEO, C.SO_SNDTIMEO):
            self._check(self._ws.setsockopt(self._h, C.SOL_SOCKET, opt, ctypes.c_uint32(ms), 4))

    # -- timeouts and blocking mode --------------------------------------------------------------
    def settimeout(self, value: float | None) -> None:
        """None: blocking; 0: nonblocking; > 0: operations fail with TimeoutError after it."""
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        self._timeout = value
        self._ioctl_nbio(value == 0.0)
        # a timed recv/send is a blocking Winsock call bounded by SO_RCVTIMEO / SO_SNDTIMEO
        self._timeouts(0 if not value else max(1, int(round(value * 1000))))

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    # -- addresses -------------------------------------------------------------------------------
    def bind(self, address: _Address) -> None:
        name = _sockaddr(address, self.family)
        self._check(self._ws.bind(self._h, name, ctypes.sizeof(name)))

    def _name_buffer(self) -> tuple[SOCKADDR_IN | SOCKADDR_IN6, ctypes.c_int]:
        out = SOCKADDR_IN6() if self.family == AF_INET6 else SOCKADDR_IN()
        return out, ctypes.c_int(ctypes.sizeof(out))

    def getsockname(self) -> _Address:
        out, n = self._name_buffer()
        self._check(self._ws.getsockname(self._h, out, n))
        return _address(out)

    def getpeername(self) -> _Address:
        out, n = self._name_buffer()
        self._check(self._ws.getpeername(self._h, out, n))
        return _address(out)

    def fileno(self) -> int:
        return -1 if self._s is None else self._s

    # -- connections -----------------------------------------------------------------------------
    def connect(self, address: _Address) -> None:
        code = self.connect_ex(address)
        if code:
            raise WinsockError(code)

    def connect_ex(self, address: _Address) -> int:
        """0 or the WSA code (as Python on Windows returns it); raises TimeoutError on timeout."""
        name = _sockaddr(address, self.family)
        size = ctypes.sizeof(name)
        if self._timeout is None or self._timeout == 0.0 or self.type != SOCK_STREAM:
            if self._ws.connect(self._h, name, size) == C.SOCKET_ERROR:
                return self._last()
            return 0
        self._ioctl_nbio(True)
        try:
            if self._ws.connect(self._h, name, size) != C.SOCKET_ERROR:
                return 0
            code = self._last()
            if code != C.WSAEWOULDBLOCK:
                return code
            _r, w, x = self._wait(read=False, write=True)
            if x:
                return self.getsockopt(SOL_SOCKET, SO_ERROR)
            if not w:
                raise WinsockTimeout(C.WSAETIMEDOUT, "timed out")
            return 0
        finally:
            self._ioctl_nbio(False)

    def listen(self, backlog: int = 128) -> None:
        self._check(self._ws.listen(self._h, backlog))

    def accept(self) -> tuple[socket, _Address]:
        if self._timeout:
            readable, _, _ = self._wait(read=True)
            if not readable:
                raise WinsockTimeout(C.WSAETIMEDOUT, "timed out")
            self._ioctl_nbio(True)
        try:
            out, n = self._name_buffer()
            h = self._check(self._ws.accept(self._h, out, n))
        finally:
            if self._timeout:
                self._ioctl_nbio(False)
        conn = socket(self.host, self.family, self.type, self.proto, winsock=self._ws, _handle=h)
        conn.settimeout(None)  # Winsock makes it inherit the listener's mode; Python does not
        return conn, _address(out)

    def shutdown(self, how: int) -> None:
        self._check(self._ws.shutdown(self._h, how))

    def close(self) -> None:
        if self._s is not None:
            s, self._s = self._s, None
            if self._ws.closesocket(s) == C.SOCKET_ERROR:
                raise self._error()

    def detach(self) -> int:
        s, self._s = self._s, None
        return -1 if s is None else s

    # -- data ------------------------------------------------------------------------------------
    def _timed(self, r: int) -> int:
        if r == C.SOCKET_ERROR:
            code = self._last()
            if code == C.WSAETIMEDOUT and self._timeout:
                raise WinsockTimeout(C.WSAETIMEDOUT, "timed out")
            raise WinsockError(code)
        return r

    def send(self, data: bytes | bytearray | memoryview, flags: int = 0) -> int:
        data = bytes(data)
        return self._timed(self._ws.send(self._h, data, len(data), flags))

    def sendall(self, data: bytes | bytearray | memoryview, flags: int = 0) -> None:
        view = memoryview(bytes(data))
        while view:
            n = self.send(view, flags)
            view = view[n:]

    def sendto(self, data: bytes | bytearray | memoryview, flags_or_addr: Any, address: Any = None) -> int:
        if address is None:
            flags, address = 0, flags_or_addr
        else:
            flags = flags_or_addr
        data = bytes(data)
        name = _sockaddr(address, self.family)
        return self._timed(self._ws.sendto(self._h, data, len(data), flags, name, ctypes.sizeof(name)))

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        buf = bytearray(bufsize)
        n = self._timed(self._ws.recv(self._h, buf, bufsize, flags))
        return bytes(buf[:n])

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        n = nbytes or memoryview(buffer).nbytes
        return self._timed(self._ws.recv(self._h, buffer, n, flags))

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, _Address]:
        buf = bytearray(bufsize)
        out, n = self._name_buffer()
        r = self._timed(self._ws.recvfrom(self._h, buf, bufsize, flags, out, n))
        return bytes(buf[:r]), _address(out)

    # -- options ---------------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: int | bytes) -> None:
        raw = struct.pack("<i", int(value)) if isinstance(value, int | bool) else bytes(value)
        self._check(self._ws.setsockopt(self._h, level, optname, raw, len(raw)))

    def getsockopt(self, level: int, optname: int, buflen: int = 0) -> int | bytes:
        size = buflen or 4
        buf = bytearray(size)
        n = ctypes.c_int(size)
        self._check(self._ws.getsockopt(self._h, level, optname, buf, n))
        if buflen:
            return bytes(buf[:n.value])
        return struct.unpack_from("<i", buf)[0]

    # -- protocol --------------------------------------------------------------------------------
    def __enter__(self) -> socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._s is None:
            return "<ustack.socket [closed]>"
        kind = "SOCK_STREAM" if self.type == SOCK_STREAM else "SOCK_DGRAM"
        parts = [f"fd={self._s:#x}", kind]
        try:
            parts.append(f"laddr={self.getsockname()}")
        except OSError:
            pass
        try:
            parts.append(f"raddr={self.getpeername()}")
        except OSError:
            pass
        return f"<ustack.socket {' '.join(parts)}>"


def create_connection(host: Any, address: _Address, timeout: float | None = None,
                      source_address: _Address | None = None) -> socket:
    """Connect a TCP socket on `host` to address (like socket.create_connection); an IPv6
    literal as the address's host makes it an AF_INET6 socket."""
    family = AF_INET6 if parse_ipv6(str(address[0]).partition("%")[0]) is not None else AF_INET
    s = socket(host, family, SOCK_STREAM)
    try:
        if timeout is not None:
            s.settimeout(timeout)
        if source_address is not None:
            s.bind(source_address)
        s.connect(address)
        return s
    except BaseException:
        s.close()
        raise
