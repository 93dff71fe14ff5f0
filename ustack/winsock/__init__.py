# ruff: noqa: F401 - this module re-exports the public names
"""Winsock-style API for ustack: `Winsock(host)` exposes the Winsock calls as methods.

    from ustack.winsock import Winsock, SOCKADDR_IN, AF_INET, SOCK_STREAM, IPPROTO_TCP, WSADATA
    ws = Winsock(host)
    ws.WSAStartup(0x0202, WSADATA())
    s = ws.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)
    name = SOCKADDR_IN.make("198.18.0.1", 80)
    if ws.connect(s, name, 16) == SOCKET_ERROR:
        print(ws.WSAGetLastError())

Constants carry Winsock's numeric values; structures are ctypes with Windows' layout.
docs/winsock-fidelity.md lists each reference behaviour and the test that shows it.
"""

from .addr6 import IN6_ADDR, SOCKADDR_IN6, SOCKADDR_IN6_SIZE
from .api import Winsock
from .constants import *  # noqa: F403
from .errors import REASON_TO_WSA, WinsockError, posix_errno, wsa_name
from .ioconstants import *  # noqa: F403
from .objects import MSG, WSAEVENT, Window
from .overlapped import WSABUF, WSAOVERLAPPED, CompletionPort, Ref
from .overlapped_calls import OVERLAPPED_ENTRY
from .structs import (
    FD_CLR,
    FD_ISSET,
    FD_SET,
    FD_SET_ADD,
    FD_ZERO,
    HIBYTE,
    IN_ADDR,
    IP_MREQ,
    LINGER,
    LOBYTE,
    MAKEWORD,
    SOCKADDR,
    SOCKADDR_IN,
    TIMEVAL,
    WSADATA,
    WSAGETSELECTERROR,
    WSAGETSELECTEVENT,
    WSAMAKESELECTREPLY,
    WSANETWORKEVENTS,
    WSAPOLLFD,
    fd_set,
    htonl,
    htons,
    inet_addr,
    inet_ntoa,
    ntohl,
    ntohs,
    u_long,
)

_MODULES = ("annotations", "api", "constants", "errors", "objects", "structs", "wsocket", "ioconstants",
            "overlapped", "overlapped_calls", "callwrap", "uuid", "addr6")
__all__ = [n for n in dir() if not n.startswith("_") and n not in _MODULES]
