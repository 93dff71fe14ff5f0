"""A SYN flood over a real TUN (issue 10): 30,000 spoofed SYNs from the kernel side (an AF_PACKET
writer, 198.18.1.0-198.19.255.255 sources, 10,000 a second), 20 kernel clients among them. At
least 19 of 20 connect and get their one-byte answer within 3 s, and the listener answers at once
afterwards, where one more client moves 1 MB each way over a cookie connection (window scale,
SACK and timestamps recovered from the cookie). tools/synflood.py runs the same test against a
Linux listener for comparison."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tools.synflood import build_syns, run_ustack

pytestmark = pytest.mark.netns


def test_real_clients_get_through_a_spoofed_syn_flood(netns):
    args = SimpleNamespace(count=30_000, rate=10_000.0, clients=20, spacing=0.15, budget=3.0)
    r = run_ustack(args, build_syns(args.count, seed=7))
    assert r.flood_sent == 30_000, r.line()
    assert r.ok >= 19, (r.line(), r.errors)
    assert r.after_ok and r.after_s < 1.0, r.line()
    # the flood really overflowed the SYN queue and was answered with cookies, nothing broke
    assert r.extra["tcp.syncookies_sent"] > 20_000, r.line()
    # every client got in through a cookie (the queue was full of spoofed entries all along)
    assert r.extra["tcp.syncookies_recv"] >= r.ok + 2 and r.extra["tcp.syncookies_failed"] == 0, r.line()
    assert r.extra["tcp.listen_overflow"] == 0, r.line()
    assert r.extra["tcp.internal_error"] == r.extra["stack.internal_error"] == 0, r.line()
    assert r.extra["runtime.errors"] == 0, r.line()
