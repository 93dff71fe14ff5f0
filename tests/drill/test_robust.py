"""Whatever the script, `ustack drill` answers PASS/FAIL/SKIP with a reason: mutated scripts
never raise out of it, never hang, and never hit drill's own internal-error net."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ustack.cli.drill import run_one
from ustack.drill import ScriptError, parse, runner

SCRIPTS = sorted((Path(__file__).parent / "scripts").glob("*.pkt"))
JUNK = ["0", "-1", "...", "<", ">", "(", ")", "[", "]", "{", "}", ",", "%{", "}%", "`", '"', "+", "*",
        "~", "4294967296", "99999999999", "S.", "F.", "1:1(0)", "win", "ack", "x", "0.000001", "\\x",
        "write(4, ..., 99999999999) = 1", "<sack 1:2 3:4 5:6 7:8 9:10>", "%{ while True: pass }%"]


def mutate(text: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        parts = text.split(" ")
        glue = " "
    else:
        parts = list(text)
        glue = ""
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(parts))
        op = rng.random()
        if op < 0.3:
            del parts[i]
        elif op < 0.7:
            parts[i] = rng.choice(JUNK)
        else:
            parts.insert(i, parts[rng.randrange(len(parts))])
    return glue.join(parts)


def test_mutated_scripts_end_in_a_verdict(tmp_path):
    rng = random.Random(15)
    before = runner.internal_errors
    path = tmp_path / "m.pkt"
    seen = set()
    for _ in range(200):
        path.write_text(mutate(rng.choice(SCRIPTS).read_text(), rng))
        out = run_one(path, "linux", None, 30.0)
        assert "wall-clock" not in (out.reason or ""), out  # a verdict of the script, not the hang guard's
        assert out.status in ("PASS", "FAIL", "SKIP") and (out.status == "PASS" or out.reason), out
        seen.add(out.status)
    assert runner.internal_errors == before
    assert {"FAIL", "SKIP"} <= seen


@pytest.mark.parametrize(("text", "why"), [
    ("0 < . 1:1(0) ack 1 win 70000", "TCP window value 70000 out of range"),
    ("0 < . 1:1(0) ack 4294967296 win 1", "TCP ack value 4294967296 out of range"),
    ("0 < S 0:0(0) win 1 <wscale 300>", "wscale value 300 out of range"),
    ("0 < . 1:1(0) ack 1 win 1 <sack 1:2 3:4 5:6 7:8 9:10>", "1 to 4 blocks"),
    ('0 socket(..., SOCK_STREAM, "\\x") = 3', "bad escape"),
])
def test_out_of_range_fields_are_script_errors(text, why):
    with pytest.raises(ScriptError, match=why):
        parse(text)


def test_wrong_argument_counts_and_huge_writes(tmp_path):
    p = tmp_path / "a.pkt"
    p.write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 write(3, ...) = 1\n")
    out = run_one(p, "linux", None, 10.0)
    assert (out.status, out.reason, out.line) == ("FAIL", "write() takes 3 arguments, not 2", 2)
    p.write_text((Path(__file__).parent / "scripts" / "close-passive.pkt").read_text().replace(
        "write(4, ..., 10) = 10", "write(4, ..., 99999999999) = 10"))
    out = run_one(p, "linux", None, 10.0)
    assert out.status == "SKIP" and "a write of 99999999999 bytes" in out.reason
