"""Interop fixtures: a private netns per test, ustack hosts on TUN/TAP that are always closed.

`link` runs a test over TUN and over TAP. `hosts.open(link, ...)` opens a ustack Host on the
link (see peer.py); every host is closed at teardown.
"""

import pytest

from tests.interop import peer


class Hosts:
    def __init__(self) -> None:
        self.opened: list = []

    def open(self, link: str, **kw):
        h = peer.open_host(link, **kw)
        self.opened.append(h)
        return h

    def close_all(self) -> None:
        for h in reversed(self.opened):
            try:
                h.close()
            except Exception:  # noqa: BLE001 - teardown goes on
                pass


@pytest.fixture(params=["tun", "tap"])
def link(request):
    return request.param


@pytest.fixture
def hosts(request, netns):  # netns: this thread runs in a private namespace
    h = Hosts()
    try:
        yield h
    finally:
        h.close_all()
