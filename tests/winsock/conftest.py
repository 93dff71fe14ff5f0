"""Fixtures for the Winsock tests: two ustack hosts in the Simulator (virtual time).

`net` gives a host "me" (198.18.0.2, the application under test) and a host "peer"
(198.18.0.1, servers run there through its own Winsock), both with Winsock 2.2 started, on an
"ip" link (bare IPv4, no ARP): a packet to SILENT (198.18.0.99) is simply never answered.
`net_eth` is the same on an ethernet link, where SILENT fails ARP (host unreachable).
"""

from __future__ import annotations

import pytest

from .wsutil import Net, make_net


@pytest.fixture
def net() -> Net:
    n = make_net(seed=1, medium="ip")
    yield n
    n.close()


@pytest.fixture
def net_eth() -> Net:
    n = make_net(seed=2, medium="ethernet")
    yield n
    n.close()


@pytest.fixture
def net11() -> Net:
    """Like `net`, but "me" negotiated Winsock 1.1."""
    n = make_net(seed=3, medium="ip", version=0x0101)
    yield n
    n.close()
