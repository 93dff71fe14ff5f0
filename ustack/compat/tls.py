"""TLS on ustack sockets: what `SSLContext.wrap_socket` returns for one of them.

CPython's SSLSocket runs OpenSSL directly on the socket's file descriptor, which for a ustack
socket is only a readiness signal. `TlsSocket` instead drives an `ssl.SSLObject` over two
memory BIOs and carries its records over the ustack socket, with the SSLSocket API that
http.client, urllib, smtplib, urllib3 and socketserver use: handshake on connect/accept,
read/write/recv/send/sendall/makefile, getpeercert, cipher, version, ALPN, unwrap, and
SSLWantReadError on a nonblocking socket that has nothing to read. (asyncio does not call
wrap_socket: it runs its own SSLObject over the plain socket, which needs nothing from here.)
"""

from __future__ import annotations

import socket as _pysocket
import ssl
from typing import Any

from .sock import UstackSocket

_CHUNK = 64 * 1024


class TlsSocket(UstackSocket):
    """A ustack socket speaking TLS; see the module docstring."""

    _sslobj: Any
    _in: ssl.MemoryBIO
    _out: ssl.MemoryBIO

    @classmethod
    def wrap(cls, context: ssl.SSLContext, sock: UstackSocket, server_side: bool = False,
             do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
             server_hostname: str | bytes | None = None, session: Any = None) -> TlsSocket:
        if sock.type != _pysocket.SOCK_STREAM:
            raise NotImplementedError("only stream sockets are supported")
        if server_side and server_hostname:
            raise ValueError("server_hostname can only be specified in client mode")
        if session is not None and server_side:
            raise ValueError("session is valid only for client mode")
        if isinstance(server_hostname, bytes):
            server_hostname = server_hostname.decode("idna")
        try:
            sock.getpeername()
            connected = True
        except OSError:
            connected = False
        self: TlsSocket = sock._transfer(cls)
        self._context = context
        self.server_side = server_side
        self.server_hostname = server_hostname
        self.do_handshake_on_connect = do_handshake_on_connect
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self._session = session
        self._sslobj = None
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._unsent = bytearray()
        if connected:
            try:
                self._start()
                if do_handshake_on_connect:
                    if self.gettimeout() == 0.0:
                        raise ValueError("do_handshake_on_connect should not be specified for "
                                         "non-blocking sockets")
                    self.do_handshake()
            except (OSError, ValueError):
                self.close()  # as CPython's SSLSocket: a failed handshake closes the socket
                raise
        return self

    def _start(self) -> None:
        if self._sslobj is None:
            self._sslobj = self._context.wrap_bio(self._in, self._out, server_side=self.server_side,
                                                  server_hostname=self.server_hostname, session=self._session)

    # -- the record pump ---------------------------------------------------------------------------
    def _io(self, fn: Any, *args: Any) -> Any:
        if self._sslobj is None:
            raise ValueError("the TLS socket is not connected")
        while True:
            try:
                result = fn(*args)
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise  # nonblocking and nothing arrived: as CPython's SSLSocket
                continue
            except ssl.SSLWantWriteError:
                self._flush()
                continue
            self._flush()
            return result

    def _flush(self) -> None:
        """Send the records OpenSSL produced; on a nonblocking socket whose send buffer is full
        keep the rest for the next call and say so as SSLSocket does (SSLWantWriteError)."""
        data = self._out.read()
        if data:
            self._unsent += data
        while self._unsent:
            try:
                n = UstackSocket.send(self, self._unsent)
            except BlockingIOError:
                raise ssl.SSLWantWriteError(ssl.SSL_ERROR_WANT_WRITE,
                                            "The operation did not complete (write)") from None
            del self._unsent[:n]

    def _fill(self) -> bool:
        """Feed what the peer sent into the incoming BIO; False when nothing was there yet on a
        nonblocking socket."""
        try:
            data = UstackSocket.recv(self, _CHUNK)
        except BlockingIOError:
            return False
        if data:
            self._in.write(data)
        else:
            self._in.write_eof()
        return True

    # -- the SSLSocket API --------------------------------------------------------------------------
    @property
    def context(self) -> ssl.SSLContext:
        return self._context

    @property
    def session(self) -> Any:
        return self._sslobj.session if self._sslobj is not None else self._session

    @property
    def session_reused(self) -> bool | None:
        return self._sslobj.session_reused if self._sslobj is not None else None

    def connect(self, address: Any) -> None:
        super().connect(address)
        self._start()
        if self.do_handshake_on_connect:
            self.do_handshake()

    def connect_ex(self, address: Any, **kw: Any) -> int:  # type: ignore[override]
        err = super().connect_ex(address)
        if not err:
            self._start()
            if self.do_handshake_on_connect:
                self.do_handshake()
        return err

    def accept(self) -> tuple[TlsSocket, Any]:  # type: ignore[override]
        conn, addr = super().accept()
        return TlsSocket.wrap(self._context, conn, server_side=True,
                              do_handshake_on_connect=self.do_handshake_on_connect,
                              suppress_ragged_eofs=self.suppress_ragged_eofs), addr

    def do_handshake(self, block: bool = False) -> None:
        self._start()
        self._io(self._sslobj.do_handshake)

    def read(self, len: int = 1024, buffer: Any = None) -> Any:  # noqa: A002 - ssl's name
        try:
            if buffer is not None:
                return self._io(self._sslobj.read, len, buffer)
            return self._io(self._sslobj.read, len)
        except ssl.SSLError as e:
            if e.args[0] == ssl.SSL_ERROR_EOF and self.suppress_ragged_eofs:
                return 0 if buffer is not None else b""
            raise

    def write(self, data: Any) -> int:
        return self._io(self._sslobj.write, data)

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to recv() on {type(self)}")
        return self.read(buflen)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to recv_into() on {type(self)}")
        return self.read(nbytes or memoryview(buffer).nbytes, buffer)

    def send(self, data: Any, flags: int = 0) -> int:
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to send() on {type(self)}")
        return self.write(data)

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            sent += self.send(view[sent:], flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> Any:
        raise ValueError(f"recvfrom not allowed on instances of {type(self)}")

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Any:
        raise ValueError(f"recvfrom_into not allowed on instances of {type(self)}")

    def sendto(self, data: Any, flags_or_addr: Any, address: Any = None) -> int:
        raise ValueError(f"sendto not allowed on instances of {type(self)}")

    def sendmsg(self, *args: Any, **kwargs: Any) -> int:
        raise NotImplementedError(f"sendmsg not allowed on instances of {type(self)}")

    def recvmsg(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"recvmsg not allowed on instances of {type(self)}")

    def pending(self) -> int:
        return self._sslobj.pending() if self._sslobj is not None else 0

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._sslobj.getpeercert(binary_form) if self._sslobj is not None else None

    def cipher(self) -> Any:
        return self._sslobj.cipher() if self._sslobj is not None else None

    def shared_ciphers(self) -> Any:
        return self._sslobj.shared_ciphers() if self._sslobj is not None else None

    def compression(self) -> Any:
        return self._sslobj.compression() if self._sslobj is not None else None

    def version(self) -> str | None:
        return self._sslobj.version() if self._sslobj is not None else None

    def selected_alpn_protocol(self) -> str | None:
        return self._sslobj.selected_alpn_protocol() if self._sslobj is not None else None

    def get_channel_binding(self, cb_type: str = "tls-unique") -> bytes | None:
        return self._sslobj.get_channel_binding(cb_type) if self._sslobj is not None else None

    def verify_client_post_handshake(self) -> None:
        self._sslobj.verify_client_post_handshake()

    def unwrap(self) -> UstackSocket:
        """Send close_notify, wait for the peer's, and give back the plain socket."""
        self._io(self._sslobj.unwrap)
        self._sslobj = None
        return self._transfer(UstackSocket)


_original_wrap_socket = ssl.SSLContext.wrap_socket


def wrap_socket(self: ssl.SSLContext, sock: Any, server_side: bool = False,
                do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
                server_hostname: Any = None, session: Any = None) -> Any:
    """SSLContext.wrap_socket: TlsSocket for a ustack socket, CPython's SSLSocket otherwise."""
    if isinstance(sock, UstackSocket) and not isinstance(sock, TlsSocket):
        return TlsSocket.wrap(self, sock, server_side, do_handshake_on_connect, suppress_ragged_eofs,
                              server_hostname, session)
    return _original_wrap_socket(self, sock, server_side=server_side,
                                 do_handshake_on_connect=do_handshake_on_connect,
                                 suppress_ragged_eofs=suppress_ragged_eofs,
                                 server_hostname=server_hostname, session=session)


def install() -> None:
    """Give SSLContext.wrap_socket its branch for ustack sockets (idempotent, process-wide;
    every other socket still goes to CPython's implementation)."""
    if ssl.SSLContext.wrap_socket is not wrap_socket:
        ssl.SSLContext.wrap_socket = wrap_socket  # type: ignore[method-assign]
