"""ustack: a pure-Python TCP/UDP/IPv4 stack on TUN/TAP with a faithful Winsock-style API."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Host", "Simulator", "Stack", "StackConfig", "__version__", "patched", "socket_module"]


def __getattr__(name: str) -> Any:  # lazy: `import ustack.wire` must not pull in the runtime
    if name == "Host":
        from .runtime.host import Host
        return Host
    if name == "Simulator":
        from .runtime.simulator import Simulator
        return Simulator
    if name in ("patched", "socket_module"):
        from . import compat
        return getattr(compat, name)
    if name in ("Stack", "StackConfig"):
        from .core import stack
        return getattr(stack, name)
    raise AttributeError(f"module 'ustack' has no attribute {name!r}")
