"""ustack.tcp: RFC 9293 TCP for the ustack core (register with `TcpLayer(stack)`)."""

from .config import TcpConfig
from .layer import TcpLayer
from .socket import TcpSocket, TcpSockOpts
from .state import State

__all__ = ["State", "TcpConfig", "TcpLayer", "TcpSockOpts", "TcpSocket"]
