"""Winsock calls that print themselves: how `ustack connect` and `ustack lab` show their work.

Each call is made on a `ustack.winsock.Winsock`, timed, and recorded as one line in the style of
a system-call trace:

    connect(s1, 198.18.0.1:81) = SOCKET_ERROR  WSAECONNREFUSED (10061)  [3.1 ms]
    getsockname(s1) = 0  198.18.0.2:50214
    GetMessage(hwnd) = msg 0x401 wParam=s1 lParam=0x00000010 (FD_CONNECT, error 0)

Failure is read the Winsock way: SOCKET_ERROR / INVALID_SOCKET / WSA_WAIT_FAILED, then
WSAGetLastError().
"""

from __future__ import annotations

import ctypes
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FD_NAMES = ("FD_READ", "FD_WRITE", "FD_OOB", "FD_ACCEPT", "FD_CONNECT", "FD_CLOSE", "FD_QOS",
            "FD_GROUP_QOS", "FD_ROUTING_INTERFACE_CHANGE", "FD_ADDRESS_LIST_CHANGE")


def show_addr(addr: str, port: int) -> str:
    """ADDR:PORT, an IPv6 address in brackets."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def fd_bits(mask: int) -> str:
    names = [n for i, n in enumerate(FD_NAMES) if mask & (1 << i)]
    return "|".join(names) or "0"


@dataclass
class Call:
    name: str
    args: str
    ret: Any
    ret_text: str
    error: int | None = None  # WSA code when the call failed
    error_name: str | None = None
    detail: str = ""  # what an out-parameter received, e.g. the address of getsockname
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None

    def line(self, timing: bool = True) -> str:
        if not self.name:  # a note (what the other side did), not a call
            return f"# {self.ret_text}"
        text = f"{self.name}({self.args}) = {self.ret_text}"
        if self.error is not None:
            text += f"  {self.error_name} ({self.error})"
        if self.detail:
            text += f"  {self.detail}"
        if timing and self.seconds >= 0.0005:
            text += f"  [{format_duration(self.seconds)}]"
        return text

    def as_dict(self) -> dict[str, Any]:
        plain = isinstance(self.ret, int | float | str | bool) or self.ret is None
        ret = self.ret if plain else str(self.ret)
        return {"call": self.name, "args": self.args, "ret": ret, "ret_text": self.ret_text,
                "error": self.error, "error_name": self.error_name, "detail": self.detail,
                "seconds": round(self.seconds, 6), "line": self.line(timing=False)}


def format_duration(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1.0:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


@dataclass
class WsRecorder:
    """Wraps a Winsock object; each method makes one call, records and (optionally) prints it."""

    ws: Any
    echo: Callable[[str], Any] | None = None
    calls: list[Call] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    families: dict[int, int] = field(default_factory=dict)  # socket -> 4 or 6 (its sockaddr)

    # -- plumbing -------------------------------------------------------------------------------
    @property
    def C(self) -> Any:  # noqa: N802 - the constants module, as a short name
        import ustack.winsock as W

        return W

    def sname(self, s: Any) -> str:
        return self.names.get(s, str(s)) if isinstance(s, int) else str(s)

    def _record(self, name: str, args: str, fn: Callable[[], Any], *, fail: Any = "SOCKET_ERROR",
                ret_text: Callable[[Any], str] | None = None,
                detail: Callable[[Any], str] | None = None) -> Call:
        W = self.C
        t0 = time.perf_counter()
        ret = fn()
        dt = time.perf_counter() - t0
        failed_value = {"SOCKET_ERROR": W.SOCKET_ERROR, "INVALID_SOCKET": W.INVALID_SOCKET,
                        "WSA_WAIT_FAILED": W.WSA_WAIT_FAILED}.get(fail, fail)
        failed = fail is not None and ret == failed_value
        err = self.ws.WSAGetLastError() if failed else None
        if ret_text is not None:
            text = ret_text(ret)
        elif failed:
            text = fail
        else:
            text = str(ret)
        call = Call(name, args, ret, text, err, W.wsa_name(err) if err is not None else None,
                    "" if failed or detail is None else detail(ret), dt)
        self.calls.append(call)
        if self.echo is not None:
            self.echo(call.line())
        return call

    def record(self, name: str, args: str, fn: Callable[[], Any], *, fail: Any = "SOCKET_ERROR",
               ret_text: Callable[[Any], str] | None = None,
               detail: Callable[[Any], str] | None = None) -> Call:
        """Make and record any call (`fail`: the return value that means failure, or a name of
        one: "SOCKET_ERROR", False for BOOL calls, None when it cannot fail)."""
        return self._record(name, args, fn, fail=fail, ret_text=ret_text, detail=detail)

    def note(self, text: str) -> None:
        """A line that is not a Winsock call (e.g. what the kernel side did)."""
        call = Call("#", "", None, text)
        call.name, call.args = "", ""
        self.calls.append(call)
        if self.echo is not None:
            self.echo(f"# {text}")

    # -- calls ----------------------------------------------------------------------------------
    def startup(self, version: int = 0x0202) -> Call:
        W = self.C
        data = W.WSADATA()
        return self._record("WSAStartup", f"{version >> 8 & 0xFF}.{version & 0xFF}",
                            lambda: self.ws.WSAStartup(version, data), fail=None,
                            ret_text=lambda r: str(r),
                            detail=lambda r: f"wVersion {data.wVersion & 0xFF}.{data.wVersion >> 8}")

    def cleanup(self) -> Call:
        return self._record("WSACleanup", "", self.ws.WSACleanup)

    def socket(self, udp: bool = False, family: int = 4) -> tuple[int, Call]:
        """socket(AF_INET or, `family` 6, AF_INET6, ...)."""
        W = self.C
        kind, proto = (("SOCK_DGRAM", W.SOCK_DGRAM), ("IPPROTO_UDP", W.IPPROTO_UDP)) if udp else (
            ("SOCK_STREAM", W.SOCK_STREAM), ("IPPROTO_TCP", W.IPPROTO_TCP))
        holder: list[str] = []

        def text(r: int) -> str:
            if r == W.INVALID_SOCKET:
                return "INVALID_SOCKET"
            name = f"s{len(self.names) + 1}"
            self.names[r] = name
            holder.append(name)
            return name
        af = ("AF_INET6", W.AF_INET6) if family == 6 else ("AF_INET", W.AF_INET)
        call = self._record("socket", f"{af[0]}, {kind[0]}, {proto[0]}",
                            lambda: self.ws.socket(af[1], kind[1], proto[1]),
                            fail="INVALID_SOCKET", ret_text=text)
        if not call.failed:
            self.families[call.ret] = family
        return call.ret, call

    def closesocket(self, s: int) -> Call:
        return self._record("closesocket", self.sname(s), lambda: self.ws.closesocket(s))

    def _sockaddr(self, addr: str, port: int) -> tuple[Any, int]:
        """SOCKADDR_IN for IPv4 text, SOCKADDR_IN6 (28 bytes) for IPv6 text (it has a colon):
        a family that does not match the socket fails in Winsock as on Windows (WSAEFAULT/...)."""
        W = self.C
        if ":" in addr:
            return W.SOCKADDR_IN6.make(addr, port), 28
        return W.SOCKADDR_IN.make(addr, port), 16

    def bind(self, s: int, addr: str, port: int) -> Call:
        sa, n = self._sockaddr(addr, port)
        return self._record("bind", f"{self.sname(s)}, {show_addr(addr, port)}",
                            lambda: self.ws.bind(s, sa, n))

    def connect(self, s: int, addr: str, port: int) -> Call:
        sa, n = self._sockaddr(addr, port)
        return self._record("connect", f"{self.sname(s)}, {show_addr(addr, port)}",
                            lambda: self.ws.connect(s, sa, n))

    def _name_call(self, fname: str, s: int) -> tuple[tuple[str, int] | None, Call]:
        W = self.C
        if self.families.get(s) == 6:
            sin, n = W.SOCKADDR_IN6(), ctypes.c_int(28)
        else:
            sin, n = W.SOCKADDR_IN(), ctypes.c_int(16)
        call = self._record(fname, self.sname(s), lambda: getattr(self.ws, fname)(s, sin, n),
                            detail=lambda r: show_addr(sin.addr, sin.port))
        return (None if call.failed else (sin.addr, sin.port)), call

    def getsockname(self, s: int) -> tuple[tuple[str, int] | None, Call]:
        return self._name_call("getsockname", s)

    def getpeername(self, s: int) -> tuple[tuple[str, int] | None, Call]:
        return self._name_call("getpeername", s)

    def setsockopt_int(self, s: int, level: str, opt: str, value: int) -> Call:
        W = self.C
        return self._record("setsockopt", f"{self.sname(s)}, {level}, {opt}, {value}",
                            lambda: self.ws.setsockopt(s, getattr(W, level), getattr(W, opt),
                                                       struct.pack("<i", value), 4))

    def getsockopt_int(self, s: int, level: str, opt: str) -> tuple[int | None, Call]:
        W = self.C
        buf = ctypes.create_string_buffer(4)
        n = ctypes.c_int(4)
        call = self._record("getsockopt", f"{self.sname(s)}, {level}, {opt}",
                            lambda: self.ws.getsockopt(s, getattr(W, level), getattr(W, opt), buf, n),
                            detail=lambda r: f"value {self._opt_text(opt, struct.unpack('<i', buf.raw)[0])}")
        return (None if call.failed else struct.unpack("<i", buf.raw)[0]), call

    def _opt_text(self, opt: str, v: int) -> str:
        if opt == "SO_ERROR" and v:
            return f"{v} ({self.C.wsa_name(v)})"
        return str(v)

    def fionbio(self, s: int, on: bool = True) -> Call:
        W = self.C
        arg = ctypes.c_ulong(1 if on else 0)
        return self._record("ioctlsocket", f"{self.sname(s)}, FIONBIO, {int(on)}",
                            lambda: self.ws.ioctlsocket(s, W.FIONBIO, arg))

    def fionread(self, s: int) -> tuple[int | None, Call]:
        W = self.C
        arg = ctypes.c_ulong(0)
        call = self._record("ioctlsocket", f"{self.sname(s)}, FIONREAD",
                            lambda: self.ws.ioctlsocket(s, W.FIONREAD, arg),
                            detail=lambda r: f"{arg.value} bytes pending")
        return (None if call.failed else arg.value), call

    def send(self, s: int, data: bytes, show: int | None = None) -> Call:
        return self._record("send", f"{self.sname(s)}, {self._data_text(data, show)}",
                            lambda: self.ws.send(s, data, len(data), 0))

    def sendto(self, s: int, data: bytes, addr: str, port: int) -> Call:
        W = self.C
        return self._record("sendto", f"{self.sname(s)}, {self._data_text(data)}, {addr}:{port}",
                            lambda: self.ws.sendto(s, data, len(data), 0, W.SOCKADDR_IN.make(addr, port), 16))

    def recv(self, s: int, size: int = 2048, quiet: bool = False) -> tuple[bytes | None, Call | None]:
        buf = ctypes.create_string_buffer(size)
        if quiet:  # bulk loops: no record per call
            r = self.ws.recv(s, buf, size, 0)
            if r == self.C.SOCKET_ERROR:
                return None, None
            return buf.raw[:r], None
        call = self._record("recv", f"{self.sname(s)}, buf, {size}", lambda: self.ws.recv(s, buf, size, 0),
                            detail=lambda r: self._data_detail(buf.raw[:r]) if r else "")
        return (None if call.failed else buf.raw[:call.ret]), call

    def recvfrom(self, s: int, size: int = 2048) -> tuple[bytes | None, tuple[str, int] | None, Call]:
        W = self.C
        buf = ctypes.create_string_buffer(size)
        sin = W.SOCKADDR_IN()
        n = ctypes.c_int(16)
        call = self._record("recvfrom", f"{self.sname(s)}, buf, {size}",
                            lambda: self.ws.recvfrom(s, buf, size, 0, sin, n),
                            detail=lambda r: f"from {sin.addr}:{sin.port}  {self._data_detail(buf.raw[:r])}")
        if call.failed:
            return None, None, call
        return buf.raw[:call.ret], (sin.addr, sin.port), call

    def shutdown(self, s: int, how: str = "SD_SEND") -> Call:
        W = self.C
        return self._record("shutdown", f"{self.sname(s)}, {how}",
                            lambda: self.ws.shutdown(s, getattr(W, how)))

    def select(self, s: int, read: bool = False, write: bool = False, exc: bool = False,
               timeout_s: float = 5.0) -> tuple[dict[str, bool], Call]:
        W = self.C
        wanted = (("read", read), ("write", write), ("except", exc))
        sets = {k: (W.FD_SET() if on else None) for k, on in wanted}
        for fs in sets.values():
            if fs is not None:
                W.FD_SET_ADD(s, fs)
        tv = W.TIMEVAL(int(timeout_s), int((timeout_s % 1) * 1e6))
        names = ", ".join(f"{k}fds={{{self.sname(s)}}}" if v is not None else f"{k}fds=NULL"
                          for k, v in sets.items())

        def detail(r: int) -> str:
            hits = [k for k, fs in sets.items() if fs is not None and W.FD_ISSET(s, fs)]
            return "ready in " + ", ".join(f"{k}fds" for k in hits) if hits else "timeout"
        call = self._record("select", f"0, {names}, {{{timeout_s:g} s}}",
                            lambda: self.ws.select(0, sets["read"], sets["write"], sets["except"], tv),
                            detail=detail)
        out = {k: bool(fs is not None and W.FD_ISSET(s, fs)) for k, fs in sets.items()}
        return out, call

    def async_select(self, s: int, hwnd: Any, msg: int, events: int) -> Call:
        return self._record("WSAAsyncSelect", f"{self.sname(s)}, hwnd, {msg:#x}, {fd_bits(events)}",
                            lambda: self.ws.WSAAsyncSelect(s, hwnd, msg, events))

    def get_message(self, hwnd: Any, timeout_s: float = 5.0) -> tuple[Any, Call]:
        W = self.C

        def text(m: Any) -> str:
            if m is None:
                return "no message (timeout)"
            ev, err = W.WSAGETSELECTEVENT(m.lParam), W.WSAGETSELECTERROR(m.lParam)
            errs = f"error {err}" + (f" {W.wsa_name(err)}" if err else "")
            return (f"msg {m.message:#x} wParam={self.sname(m.wParam)} lParam={m.lParam:#010x} "
                    f"({fd_bits(ev)}, {errs})")
        call = self._record("GetMessage", "hwnd", lambda: hwnd.GetMessage(timeout_s), fail=None,
                            ret_text=text)
        return call.ret, call

    def create_event(self) -> tuple[Any, Call]:
        call = self._record("WSACreateEvent", "", self.ws.WSACreateEvent, fail=None,
                            ret_text=lambda r: "hEvent")
        return call.ret, call

    def close_event(self, ev: Any) -> Call:
        return self._record("WSACloseEvent", "hEvent", lambda: self.ws.WSACloseEvent(ev), fail=False,
                            ret_text=lambda r: "TRUE" if r else "FALSE")

    def event_select(self, s: int, ev: Any, events: int) -> Call:
        return self._record("WSAEventSelect", f"{self.sname(s)}, hEvent, {fd_bits(events)}",
                            lambda: self.ws.WSAEventSelect(s, ev, events))

    def wait_events(self, evs: list[Any], timeout_ms: int = 5000) -> Call:
        W = self.C

        def text(r: int) -> str:
            if r == W.WSA_WAIT_TIMEOUT:
                return "WSA_WAIT_TIMEOUT"
            if r == W.WSA_WAIT_FAILED:
                return "WSA_WAIT_FAILED"
            return f"WSA_WAIT_EVENT_0+{r - W.WSA_WAIT_EVENT_0}"
        return self._record("WSAWaitForMultipleEvents", f"{len(evs)}, events, FALSE, {timeout_ms}, FALSE",
                            lambda: self.ws.WSAWaitForMultipleEvents(len(evs), evs, False, timeout_ms, False),
                            fail="WSA_WAIT_FAILED", ret_text=text)

    def enum_events(self, s: int, ev: Any) -> tuple[Any, Call]:
        W = self.C
        ne = W.WSANETWORKEVENTS()

        def detail(r: int) -> str:
            bits = ne.lNetworkEvents
            errs = [f"iErrorCode[{FD_NAMES[i]}_BIT]={ne.iErrorCode[i]}"
                    + (f" ({W.wsa_name(ne.iErrorCode[i])})" if ne.iErrorCode[i] else "")
                    for i in range(W.FD_MAX_EVENTS) if bits & (1 << i)]
            return f"lNetworkEvents={fd_bits(bits)} " + " ".join(errs)
        call = self._record("WSAEnumNetworkEvents", f"{self.sname(s)}, hEvent, &events",
                            lambda: self.ws.WSAEnumNetworkEvents(s, ev, ne), detail=detail)
        return ne, call

    # -- formatting -----------------------------------------------------------------------------
    @staticmethod
    def _data_text(data: bytes, show: int | None = None) -> str:
        if show is None and len(data) <= 24:
            return repr(data)
        return f"<{len(data)} bytes>"

    @staticmethod
    def _data_detail(data: bytes) -> str:
        return repr(data) if len(data) <= 24 else f"<{len(data)} bytes>"
