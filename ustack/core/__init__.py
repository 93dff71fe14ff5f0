"""ustack.core: the sans-I/O stack (ARP, IPv4, fragments, ICMP, UDP, ports, demux).

`make_stack(config)` builds a Stack with every transport (TCP when ustack.tcp provides
`TcpLayer`); `Stack(config)` alone has ICMP and UDP. The core never imports ustack.tcp at module
level.
"""

from .config import StackConfig
from .counters import Counters
from .errors import UsageError
from .ports import PortTable
from .reasons import Reason
from .stack import Stack, Transport
from .udp import UdpLayer, UdpSocket


def make_stack(config: StackConfig | None = None) -> Stack:
    return Stack.with_defaults(config)


__all__ = [
    "Counters", "PortTable", "Reason", "Stack", "StackConfig", "Transport", "UdpLayer", "UdpSocket",
    "UsageError", "make_stack",
]
