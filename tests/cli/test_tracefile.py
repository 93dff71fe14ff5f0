"""The TCP trace file (`--trace-file`): the TCP layer names the connection of each event
(`on_trace(kind, now, conn=...)`), and TraceSink writes it as the 4-tuple."""

from __future__ import annotations

import io
import json

from ustack.cli.tracefile import TraceSink, conn_name, read_trace
from ustack.runtime.simulator import Simulator
from ustack.wire.ipv4 import ip_int


def test_hook_writes_the_connection_it_is_given():
    out = io.StringIO()
    sink = TraceSink(out, None, clock_origin=1.0)

    class Conn:
        key = (ip_int("198.18.0.2"), 50000, ip_int("198.18.0.1"), 7)

    sink.hook("state", 1.5, conn=Conn(), old="SYN-SENT", new="ESTABLISHED")
    sink.hook("cwnd", 2.0, cwnd=14600, ssthresh=7300, event="loss")  # no connection: "?"
    recs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert recs == [
        {"t": 0.5, "conn": "198.18.0.2:50000>198.18.0.1:7", "ev": "state", "old": "SYN-SENT",
         "new": "ESTABLISHED"},
        {"t": 1.0, "conn": "?", "ev": "cwnd", "cwnd": 14600, "ssthresh": 7300, "event": "loss"},
    ]


def test_two_connections_traced_each_under_its_own_name(tmp_path):
    path = tmp_path / "trace.jsonl"
    with Simulator(seed=5) as sim:
        a = sim.add_host("198.18.0.1/24", name="a")
        b = sim.add_host("198.18.0.2/24", name="b")
        sink = TraceSink(open(path, "w"), None, clock_origin=0.0)  # noqa: SIM115 - closed below
        assert sink.attach(a)
        lst = b.call(b.stack.tcp.open)
        b.call(lambda: (lst.bind(0, 9), lst.listen(5)))
        socks = []
        for _ in range(2):
            s = a.call(a.stack.tcp.open)
            a.call(lambda s=s: s.connect(ip_int("198.18.0.2"), 9, a.now()))
            socks.append(s)
        assert a.wait(lambda: all(s.state.name == "ESTABLISHED" for s in socks), 10)
        for s in socks:
            a.call(lambda s=s: s.send(b"x" * 50_000, a.now()))
        names = [a.call(lambda s=s: conn_name(s.conn)) for s in socks]
        a.call(lambda: [s.close(a.now()) for s in socks])
        a.sleep(5)
        sink.close()
    recs = read_trace(str(path))
    assert {r["conn"] for r in recs} == set(names) and len(set(names)) == 2
    for name in names:
        mine = [r for r in recs if r["conn"] == name]
        assert ("SYN-SENT", "ESTABLISHED") in [(r.get("old"), r.get("new")) for r in mine]
        assert any(r["ev"] == "cwnd" for r in mine)
