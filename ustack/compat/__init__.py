"""Unmodified Python programs on ustack: CPython's socket API (Linux behaviour) over ustack.

    import ustack, urllib.request
    with ustack.Host.open(tun="ust0", addr="198.18.0.2/24", peer="198.18.0.1/24") as host:
        with ustack.patched(host):
            print(urllib.request.urlopen("http://198.18.0.1:8000/").read())

`patched(host)` (also `ustack.patched`) makes the process's `socket` module ustack's for a
block; `socket_module(host)` returns a separate patched module; `socket_class(host)` is the
socket class alone. `ustack run` runs a whole program this way (ustack.cli.run). What is and
is not supported: docs/run.md.
"""

from __future__ import annotations

from .patch import is_virtual, patched, socket_module
from .sock import UstackSocket, socket_class
from .tls import TlsSocket

__all__ = ["TlsSocket", "UstackSocket", "is_virtual", "patched", "socket_class", "socket_module"]
