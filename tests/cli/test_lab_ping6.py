"""`ustack lab --only ping6` over TUN and TAP: the kernel pings ustack's 2001:2::2 and ustack
pings the kernel's 2001:2::1, 3/3 each way; `--only ping` still picks the IPv4 ping alone."""

from __future__ import annotations

import json

import pytest

from tests.netns import require_netns
from ustack.drivers import read_pcap

from .helpers import ustack

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("kind", ["tun", "tap"])
def test_lab_ping6_both_ways(tmp_path, kind):
    require_netns()
    extra = ["--tap"] if kind == "tap" else []
    r = ustack("lab", "--only", "ping6", *extra, "--json", "--out", str(tmp_path), timeout=120)
    assert r.returncode == 0, r.stderr
    (sc,) = json.loads(r.stdout)["scenarios"]
    assert sc["id"] == "ping6" and sc["pass"], sc
    assert sc["info"]["received"] == 3 and sc["info"]["sent_replies"] == 3
    frames = [f for _, f, _ in read_pcap(str(tmp_path / "lab.pcap"))]
    if kind == "tap":
        frames = [f[14:] for f in frames if f[12:14] == b"\x86\xdd"]
    # ICMPv6 echo requests (128) and replies (129) without extension headers, both directions
    echo = [f[40] for f in frames if f[0] >> 4 == 6 and f[6] == 58 and f[40] in (128, 129)]
    assert echo.count(128) == 6 and echo.count(129) == 6, echo


def test_lab_only_ping_is_not_also_ping6():
    r = ustack("lab", "--list")
    assert r.returncode == 0 and "ping6" in r.stdout
    from ustack.cli.lab import selected

    class Args:
        only = ["ping"]
    assert [s.id for s in selected(Args())] == ["ping"]
    Args.only = ["ping6"]
    assert [s.id for s in selected(Args())] == ["ping6"]
