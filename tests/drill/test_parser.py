"""The script parser: packetdrill's syntax forms, and clear errors/skips for the rest."""

from __future__ import annotations

import pytest

from ustack.drill import ScriptError, Unsupported, parse
from ustack.drill.model import ABSOLUTE, ABSOLUTE_RANGE, ANY, RELATIVE, RELATIVE_RANGE


def one(text: str):
    sc = parse(text)
    assert len(sc.events) == 1
    return sc.events[0]


def test_options_init_and_cleanup_commands():
    sc = parse("--tolerance_usecs=10000\n--strict_segments\n`../common/defaults.sh\nsysctl -q a=1`\n"
               "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n`/tmp/restore.sh`\n")
    assert sc.options == {"tolerance_usecs": "10000", "strict_segments": ""}
    assert sc.init_commands == ["../common/defaults.sh\nsysctl -q a=1"]
    assert sc.cleanup_commands == ["/tmp/restore.sh"]
    assert sc.events[0].line == 5


@pytest.mark.parametrize(("text", "kind", "start", "end"), [
    ("0.1 < . 1:1(0) ack 1 win 1", ABSOLUTE, 0.1, None),
    ("+.25 < . 1:1(0) ack 1 win 1", RELATIVE, 0.25, None),
    ("* > . 1:1(0) ack 1", ANY, 0.0, None),
    ("0.1~0.2 > . 1:1(0) ack 1", ABSOLUTE_RANGE, 0.1, 0.2),
    ("+0.1~+0.3 > . 1:1(0) ack 1", RELATIVE_RANGE, 0.1, 0.3),
    ("2 > . 1:1(0) ack 1", ABSOLUTE, 2.0, None),
])
def test_times(text, kind, start, end):
    t = one(text).time
    assert (t.kind, t.start, t.end) == (kind, start, end)


def test_star_and_ranges_only_for_outbound_packets():
    with pytest.raises(ScriptError, match="only be used with outbound"):
        parse("* < . 1:1(0) ack 1 win 1")


def test_packet_fields_and_options():
    p = one("+0 < S. 0:0(0) ack 1 win 32792 <mss 1000,sackOK,TS val 100 ecr 0,nop,wscale 7,"
            "sack 1:2 3:4,eol>").packet
    assert (p.direction, p.flags, p.seq, p.end_seq, p.length, p.ack, p.win) == ("<", "S.", 0, 0, 0, 1, 32792)
    assert [(o.name, o.values) for o in p.options] == [
        ("mss", (1000,)), ("sackOK", ()), ("TS", (100, 0)), ("nop", ()), ("wscale", (7,)),
        ("sack", ((1, 2), (3, 4))), ("eol", ())]
    q = one("+0 > P. 1:1001(1000) ack 1 <...>").packet
    assert (q.flags, q.length, q.options, q.win) == ("P.", 1000, None, None)
    r = one("+0 > [ect0] . 1:1(0) ack 1").packet
    assert r.tos == "ect0" and r.options == []
    assert one("+0 < - 1:1(0) win 1").packet.flags == ""


def test_icmp_packet():
    p = one("+0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]").packet
    assert (p.protocol, p.icmp_type, p.icmp_code, p.icmp_mtu, p.seq, p.length) == (
        "icmp", "unreachable", "frag_needed", 1200, 1, 1460)


@pytest.mark.parametrize("text", [
    "0 < S 0:10(0) win 1",  # inconsistent sequence range
    "0 < S 0:0(0) win 1 <...>",  # <...> inbound
    "0 < Z 0:0(0) win 1",  # bad flag letter
    "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3",  # no time
    "0 socket(..., SOCK_STREAM, IPPROTO_TCP) 3",  # no '='
    "/* unterminated",
])
def test_script_errors_name_the_problem(text):
    with pytest.raises(ScriptError):
        parse(text)


@pytest.mark.parametrize(("text", "what"), [
    ("0 < S 0:0(0) win 1 <FO abcd>", "TCP option FO"),
    ("0 < S 0:0(0) win 1 <md5 00>", "TCP option md5"),
    ("0 < udp (1)", "udp packets"),
    ("0 < 1>2 S 0:0(0) win 1", "port numbers"),
    ("0 < (tos 0x4) S 0:0(0) win 1", "IP header spec"),
])
def test_unknown_constructs_are_unsupported(text, what):
    with pytest.raises(Unsupported, match=what):
        parse(text)


def test_syscall_forms():
    ev = one("+0...0.2 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)")
    sc = ev.syscall
    assert (sc.name, sc.end, sc.errno, sc.result.value) == ("connect", 0.2, "EINPROGRESS", -1)
    assert [a.kind for a in sc.args] == ["int", "ellipsis", "ellipsis"]
    sc = one("+0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0").syscall
    assert [(f.name, f.value) for f in sc.args[3].items] == [("onoff", 1), ("linger", 0)]
    sc = one("+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0").syscall
    assert sc.args[2].kind == "or" and [i.value for i in sc.args[2].items] == ["O_RDWR", "O_NONBLOCK"]
    sc = one("+0 bind(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"192.0.2.1\")}, 16)"
             " = 0").syscall
    fields = {f.name: f for f in sc.args[1].items}
    assert fields["sin_port"].kind == "call" and fields["sin_addr"].items[0].value == "192.0.2.1"
    sc = one("+0 sendmsg(4, {msg_name(...)=...,\n msg_iov(2)=[{..., 10}, {..., 20}], msg_flags=0}, 0) = 30"
             ).syscall
    iov = next(f for f in sc.args[1].items if f.name == "msg_iov")
    assert [i.items[-1].value for i in iov.items] == [10, 20]
    sc = one("+0 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 0) = 1").syscall
    assert {f.name for f in sc.args[0].items[0].items} == {"fd", "events", "revents"}


def test_code_and_command_events():
    ev = one("+0 %{\nassert tcpi_state == 1\n}%")
    assert ev.kind == "code" and "tcpi_state" in ev.text
    ev = one("+0 `tc qdisc show`")
    assert ev.kind == "command" and ev.text == "tc qdisc show"


def test_comments_anywhere():
    sc = parse("// c\n0 < . 1:1(0) ack 1 win 1 /* mid */ // end\n/* x\n y */ +0 < . 1:1(0) ack 1 win 1\n")
    assert [e.line for e in sc.events] == [2, 4]
