"""`UstackSocket`: CPython's `socket.socket` as a Linux program knows it, on ustack.

Each socket is a real `socket.socket` object whose file descriptor is the application end of a
`ReadyFd` (readable/writable exactly when the ustack socket is), so select, selectors, asyncio
and everything built on them wait on it unchanged. Every operation goes to a `ustack.socket`
socket on the host's Winsock layer (one `Winsock` per host, with Linux's connect behaviour:
a RST refuses at once), and Winsock failures come back as the exceptions and errnos CPython
raises on Linux (`compat.errors`). The differences from Winsock that a Linux program relies on
are handled here and listed in docs/run.md (listen without bind binds, getsockname of an
unbound socket is 0.0.0.0:0, SO_ERROR is cleared when read, ICMP errors only reach connected
datagram sockets, a small recv buffer truncates a datagram, recv after shutdown(SHUT_RD) is
b"", Linux option numbers).
"""

from __future__ import annotations

import _socket
import ctypes
import errno as E
import os
import socket as _pysocket
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from ustack import socket as us
from ustack.winsock import constants as C

from . import names, sockopts
from .errors import Op, from_winsock, linux_error, plain, timed_out
from .hoststate import HostState, host_state, states_lock
from .readyfd import ReadyFd

_RealSocket = _pysocket.socket  # captured before any patching: patches replace the attribute
_ss = _socket.socket
_NONBLOCK_FLAGS = getattr(_socket, "SOCK_NONBLOCK", 0) | getattr(_socket, "SOCK_CLOEXEC", 0)
_DEFAULT_BACKLOG = min(_socket.SOMAXCONN, 128)
_MAX_DGRAM = 65535
_RECV_CHUNK = 256 * 1024  # the most one recv(bufsize) returns (asyncio asks for 256 KiB)

# Linux message flags -> Winsock's (MSG_DONTWAIT and MSG_NOSIGNAL are handled here)
_MSG_PEEK = _socket.MSG_PEEK
_MSG_WAITALL = _socket.MSG_WAITALL
_MSG_OOB = _socket.MSG_OOB
_MSG_DONTWAIT = _socket.MSG_DONTWAIT



def classify(family: int, type: int, proto: int, fileno: Any) -> bool:  # noqa: A002
    """True when socket(family, type, proto, fileno) is one of ours; False for a kernel socket
    (AF_UNIX, netlink, an existing fd...); raises for what ustack cannot do in AF_INET's place."""
    if fileno is not None:
        return False
    if family not in (-1, _socket.AF_INET, _socket.AF_INET6):
        return False
    kind = type & ~_NONBLOCK_FLAGS if type != -1 else _socket.SOCK_STREAM
    if kind not in (_socket.SOCK_STREAM, _socket.SOCK_DGRAM):
        raise plain(E.ESOCKTNOSUPPORT, "ustack has only TCP and UDP sockets (no raw sockets)")
    want = _socket.IPPROTO_TCP if kind == _socket.SOCK_STREAM else _socket.IPPROTO_UDP
    if proto not in (-1, 0, want):
        raise plain(E.EPROTONOSUPPORT)
    return True


class _SocketMeta(type):
    """The class standing in for `socket.socket` (`_dispatch`) hands out kernel sockets for
    other families, so it also answers isinstance/issubclass for every real socket."""

    def __instancecheck__(cls, obj: Any) -> bool:
        if cls.__dict__.get("_dispatch"):
            return isinstance(obj, _RealSocket)
        return type.__instancecheck__(cls, obj)

    def __subclasscheck__(cls, sub: Any) -> bool:
        if cls.__dict__.get("_dispatch"):
            return issubclass(sub, _RealSocket)
        return type.__subclasscheck__(cls, sub)


class UstackSocket(_RealSocket, metaclass=_SocketMeta):
    """An AF_INET or AF_INET6 TCP or UDP socket on a ustack host; see the module docstring."""

    _host: Any = None  # set on the host-bound subclass made by `socket_class(host)`
    _dispatch = False

    def __new__(cls, family: int = -1, type: int = -1, proto: int = -1,  # noqa: A002
                fileno: Any = None) -> Any:
        if cls.__dict__.get("_dispatch") and not classify(family, type, proto, fileno):
            return _RealSocket(family, type, proto, fileno)
        return _ss.__new__(cls)

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1,  # noqa: A002
                 fileno: Any = None) -> None:
        if self._host is None:
            raise TypeError("use ustack.compat.socket_class(host) for a socket class bound to a host")
        if not classify(family, type, proto, fileno):  # a subclass asked for another family
            raise plain(E.EAFNOSUPPORT,
                        f"{self.__class__.__name__} makes AF_INET TCP/UDP sockets on ustack only")
        kind = _socket.SOCK_STREAM if type == -1 else type & ~_NONBLOCK_FLAGS
        st = host_state(self._host)
        st.reap()
        wproto = C.IPPROTO_TCP if kind == _socket.SOCK_STREAM else C.IPPROTO_UDP
        try:
            v6 = family == _socket.AF_INET6
            inner = us.socket(self._host, C.AF_INET6 if v6 else C.AF_INET, kind, wproto, winsock=st.winsock)
            if v6:  # Linux's default (net.ipv6.bindv6only = 0): dual-mode; Windows' is v6-only
                inner.setsockopt(C.IPPROTO_IPV6, C.IPV6_V6ONLY, 0)
        except OSError as e:
            raise from_winsock(e) from None
        nonblocking = type != -1 and bool(type & getattr(_socket, "SOCK_NONBLOCK", 0))
        self._setup(st, inner, kind, nonblocking=nonblocking)

    @classmethod
    def _adopt(cls, st: HostState, inner: us.socket, kind: int) -> UstackSocket:
        obj = _ss.__new__(cls)
        obj._setup(st, inner, kind)
        return obj

    def _setup(self, st: HostState, inner: us.socket, kind: int, *, nonblocking: bool = False) -> None:
        ready = ReadyFd()
        family = _socket.AF_INET6 if inner.family == C.AF_INET6 else _socket.AF_INET
        try:
            _RealSocket.__init__(self, family, kind,
                                 _socket.IPPROTO_TCP if kind == _socket.SOCK_STREAM else _socket.IPPROTO_UDP,
                                 ready.fd)
        except BaseException:
            fd = ready.fd
            ready.close()
            os.close(fd)
            inner.close()
            raise
        _ss.settimeout(self, 0.0)  # the fd itself stays O_NONBLOCK: only ReadyFd touches it
        self._st = st
        self._inner = inner
        self._ready = ready
        self._handle = inner.fileno()
        self._udp = kind == _socket.SOCK_DGRAM
        self._timeout: float | None = None
        self._shut_rd = False
        self._bound = False
        st.fds[self._handle] = ready
        if self._udp:
            self._udp_connreset(False)  # Linux: ICMP errors reach connected datagram sockets only
        self.settimeout(0.0 if nonblocking else _pysocket.getdefaulttimeout())
        st.sync(self._handle)

    # -- plumbing -------------------------------------------------------------------------------
    @property
    def host(self) -> Any:
        """The ustack host this socket lives on."""
        return self._st.host

    def _call(self, fn: str | Callable[..., Any], *args: Any, op: Op = Op.OTHER, sync: bool = True) -> Any:
        """The inner socket's method `fn` (or a callable) with args: Winsock errors become
        Linux ones, and the socket's readiness is mirrored onto its fd afterwards."""
        inner = self._inner
        if inner is None:
            raise plain(E.EBADF)
        try:
            return (getattr(inner, fn) if isinstance(fn, str) else fn)(*args)
        except OSError as e:
            raise from_winsock(e, self._op_for(e, op)) from None
        finally:
            if sync and self._inner is not None:
                self._st.sync(self._handle)

    def _op_for(self, e: OSError, op: Op) -> Op:
        if getattr(e, "winerror", None) == C.WSAETIMEDOUT and op in (Op.OTHER, Op.SEND, Op.UDP_SEND,
                                                                     Op.UDP_RECV) and self._timeout:
            return Op.TIMED
        return op

    def _udp_connreset(self, on: bool) -> None:
        self._st.winsock.ioctlsocket(self._handle, C.SIO_UDP_CONNRESET, ctypes.c_ulong(int(on)))

    def _dontwait(self, flags: int, fn: Callable[[], Any]) -> Any:
        """MSG_DONTWAIT: this one call is nonblocking."""
        if not flags & _MSG_DONTWAIT or self._timeout == 0.0:
            return fn()
        self._inner.settimeout(0.0)
        try:
            return fn()
        finally:
            self._inner.settimeout(self._timeout)

    @staticmethod
    def _wsa_flags(flags: int) -> int:
        out = 0
        if flags & _MSG_PEEK:
            out |= C.MSG_PEEK
        if flags & _MSG_WAITALL:
            out |= C.MSG_WAITALL
        if flags & _MSG_OOB:
            out |= C.MSG_OOB
        return out

    @property
    def _v6(self) -> bool:
        return self._inner is not None and self._inner.family == C.AF_INET6

    def _address(self, address: Any, what: str) -> tuple[Any, ...]:
        family = _socket.AF_INET6 if self._v6 else _socket.AF_INET
        return names.sockaddr(address, what, self._st.dns_lookup, family)

    def fileno(self) -> int:
        """The readiness fd (see readyfd.py); from the first call on it mirrors the socket."""
        ready = self._ready
        if not ready.armed and self._inner is not None:
            self._st.arm(self._handle)
        return _ss.fileno(self)

    # -- timeouts --------------------------------------------------------------------------------
    def settimeout(self, value: float | None) -> None:
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise TypeError("Timeout value must be int, float or None") from None
            if value < 0 or value != value:
                raise ValueError("Timeout value out of range")
        self._timeout = value
        self._call("settimeout", value, sync=False)

    def gettimeout(self) -> float | None:
        return self._timeout

    @property
    def timeout(self) -> float | None:  # type: ignore[override]
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    # -- addresses -------------------------------------------------------------------------------
    def bind(self, address: Any) -> None:
        self._call("bind", self._address(address, "bind"))
        self._bound = True

    def getsockname(self) -> tuple[str, int]:
        try:
            return self._call("getsockname", sync=False)
        except OSError as e:
            if getattr(e, "winerror", None) == C.WSAEINVAL:  # Linux: an unbound socket's name
                return ("::", 0, 0, 0) if self._v6 else ("0.0.0.0", 0)
            raise

    def getpeername(self) -> tuple[str, int]:
        return self._call("getpeername", sync=False)

    # -- connections -----------------------------------------------------------------------------
    def connect(self, address: Any) -> None:
        err = self.connect_ex(address, _raise=True)
        if err:  # pragma: no cover - connect_ex(_raise=True) raises instead
            raise plain(err)

    def connect_ex(self, address: Any, *, _raise: bool = False) -> int:  # type: ignore[override]
        """0 or the errno (EINPROGRESS on a nonblocking socket), as CPython's connect_ex."""
        addr = self._address(address, "connect")
        try:
            self._call(self._connect, addr, op=Op.CONNECT)
        except TimeoutError as e:
            if _raise:
                raise
            return E.EWOULDBLOCK if getattr(e, "errno", None) is None else e.errno
        except OSError as e:
            if _raise or e.errno is None:
                raise
            return e.errno
        return 0

    def _connect(self, addr: tuple[str, int]) -> None:
        inner = self._inner
        if self._udp:
            inner.connect(addr)
            self._udp_connreset(addr[0] not in ("0.0.0.0", "::"))
            return
        if not self._timeout:  # blocking, or nonblocking (WSAEWOULDBLOCK -> EINPROGRESS)
            inner.connect(addr)
            return
        try:
            code = inner.connect_ex(addr)
        except TimeoutError:  # settimeout's limit (a SYN timeout is a code, ETIMEDOUT)
            raise timed_out() from None
        if code:
            raise linux_error(code, Op.CONNECT)

    def listen(self, backlog: int = _DEFAULT_BACKLOG) -> None:
        if self._udp:
            raise plain(E.EOPNOTSUPP)
        if not self._bound:
            self.bind(("::" if self._v6 else "0.0.0.0", 0))  # Linux binds an ephemeral port; Winsock refuses
        self._call("listen", max(0, int(backlog)) or 1)

    def _accept(self) -> tuple[int, Any]:  # pragma: no cover - accept() is overridden
        raise plain(E.EOPNOTSUPP)

    def accept(self) -> tuple[UstackSocket, tuple[str, int]]:
        conn, addr = self._call("accept")
        sock = UstackSocket._adopt(self._st, conn, _socket.SOCK_STREAM)
        if _pysocket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, addr

    def shutdown(self, how: int) -> None:
        if how not in (_socket.SHUT_RD, _socket.SHUT_WR, _socket.SHUT_RDWR):
            raise plain(E.EINVAL)
        self._call("shutdown", how)
        if how in (_socket.SHUT_RD, _socket.SHUT_RDWR):
            self._shut_rd = True

    # -- receiving -------------------------------------------------------------------------------
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if self._udp:
            return self.recvfrom(bufsize, flags)[0]
        if self._shut_rd:
            return b""  # Linux: EOF after shutdown(SHUT_RD); Winsock: WSAESHUTDOWN
        buf = bytearray(min(bufsize, _RECV_CHUNK))  # recv may return less than asked: no 1 MB memset
        n = UstackSocket.recv_into(self, buf, 0, flags)  # the bytes as they are (TLS: records)
        return bytes(memoryview(buf)[:n])

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        n = nbytes or len(view)
        if n < 0 or n > len(view):
            raise ValueError("buffer too small for requested bytes")
        if self._udp:
            data, _ = self.recvfrom(n, flags)
            view[:len(data)] = data
            return len(data)
        if self._shut_rd or n == 0:
            return 0
        wflags = self._wsa_flags(flags)
        return self._dontwait(flags, lambda: self._call("recv_into", view, n, wflags))  # straight into buffer

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        if not self._udp:
            return self.recv(bufsize, flags), None  # Linux gives no address on a stream
        wflags = self._wsa_flags(flags)
        # Take the whole datagram and cut it here: Linux truncates silently, Winsock fails with
        # WSAEMSGSIZE and drops the datagram.
        data, addr = self._dontwait(flags, lambda: self._call("recvfrom", _MAX_DGRAM, wflags,
                                                              op=Op.UDP_RECV))
        return data[:bufsize], addr

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        view = memoryview(buffer).cast("B")
        n = nbytes or len(view)
        if n < 0 or n > len(view):
            raise ValueError("nbytes is greater than the length of the buffer")
        data, addr = self.recvfrom(n, flags)
        view[:len(data)] = data
        return len(data), addr

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> tuple[bytes, list[Any], int, Any]:
        data, addr = self.recvfrom(bufsize, flags)
        return data, [], 0, addr

    # -- sending ---------------------------------------------------------------------------------
    def send(self, data: Any, flags: int = 0) -> int:
        op = Op.UDP_SEND if self._udp else Op.SEND
        return self._dontwait(flags, lambda: self._call("send", data, self._wsa_flags(flags), op=op))

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            sent += UstackSocket.send(self, view[sent:], flags)  # the bytes as they are (TLS: records)

    def sendto(self, data: Any, flags_or_addr: Any, address: Any = None) -> int:  # type: ignore[override]
        if address is None:
            flags, address = 0, flags_or_addr
        else:
            flags = flags_or_addr
        if not self._udp:
            return self.send(data, flags)  # Linux ignores the address on a connected stream
        addr = self._address(address, "sendto")
        return self._dontwait(flags, lambda: self._call("sendto", data, self._wsa_flags(flags), addr,
                                                        op=Op.UDP_SEND))

    def sendmsg(self, buffers: Iterable[Any], ancdata: Iterable[Any] = (), flags: int = 0,
                address: Any = None) -> int:
        if list(ancdata):
            raise plain(E.EOPNOTSUPP, "ustack sockets carry no ancillary data")
        data = b"".join(bytes(b) for b in buffers)
        return self.send(data, flags) if address is None else self.sendto(data, flags, address)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Always the send() fallback: os.sendfile would write into the readiness fd."""
        return self._sendfile_use_send(file, offset, count)

    # -- options ---------------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: Any, optlen: Any = None) -> None:  # type: ignore[override]
        wlevel, wname, raw = sockopts.to_winsock(level, optname, value)
        self._call("setsockopt", wlevel, wname, raw, sync=False)

    def getsockopt(self, level: int, optname: int, buflen: int = 0) -> Any:  # type: ignore[override]
        def read(wlevel: int, wname: int, size: int) -> Any:
            return self._call("getsockopt", wlevel, wname, size, sync=False)

        def clear(wlevel: int, wname: int) -> None:
            self._call("setsockopt", wlevel, wname, 0, sync=False)

        return sockopts.get(level, optname, buflen, udp=self._udp, read=read, clear=clear, family=self.family)

    # -- life cycle ------------------------------------------------------------------------------
    def _real_close(self, _ss: Any = _ss) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            self._st.fds.pop(self._handle, None)
            try:
                inner.close()
            except OSError:
                pass
            self._ready.close()
        _ss.close(self)

    def _transfer(self, cls: type[UstackSocket]) -> Any:
        """A new `cls` object that owns this socket (its ustack socket and fd); this object is
        left closed, as CPython's SSLSocket takes over a socket it wraps."""
        if self._inner is None:
            raise plain(E.EBADF)
        new = _ss.__new__(cls)
        fd = _ss.detach(self)
        _RealSocket.__init__(new, self.family, self.type, self.proto, fd)
        _ss.settimeout(new, 0.0)
        new.__dict__.update(self.__dict__)
        self._inner = None
        self._closed = True
        return new

    def detach(self) -> int:
        raise plain(E.EOPNOTSUPP, "a ustack socket has no kernel file descriptor to detach")

    def dup(self) -> Any:
        raise plain(E.EOPNOTSUPP, "a ustack socket cannot be duplicated")

    def __del__(self) -> None:
        inner = self.__dict__.get("_inner")
        if inner is not None:
            self._st.fds.pop(self._handle, None)  # no more mirroring onto an fd closed below
            self._ready.forget()
            with self._st.lock:  # closed later by an application thread, never here (any thread)
                self._st.orphans.append((inner, self._ready))
            self._inner = None
        _ss.__del__(self)  # ResourceWarning and the fd, as for any unclosed socket

    def __getstate__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")


_classes: weakref.WeakKeyDictionary[Any, type[UstackSocket]] = weakref.WeakKeyDictionary()


def socket_class(host: Any) -> type[UstackSocket]:
    """The `socket.socket` replacement bound to `host`: AF_INET TCP/UDP sockets are ustack's,
    other families (AF_UNIX, ...) and sockets made from an fd are the kernel's; isinstance
    checks against it accept both."""
    with states_lock:
        cls = _classes.get(host)
        if cls is None:
            cls = _SocketMeta("socket", (UstackSocket,), {"_host": host, "_dispatch": True,
                                                          "__module__": "ustack.compat"})
            _classes[host] = cls
        return cls
