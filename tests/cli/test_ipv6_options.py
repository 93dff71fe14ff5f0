"""`ustack serve --addr6 ADDR/64 | --slaac` (and --peer6 for the kernel side): bad input is one
line (exit 2), and a served TUN/TAP answers the kernel's ping6 on the address given."""

from __future__ import annotations

import subprocess

import pytest

from tests.netns import require_tool, run_in_netns

from .helpers import Proc, ustack

DEV = ["--addr", "198.18.0.2/24", "--peer", "198.18.0.1/24"]


@pytest.mark.parametrize(("argv", "words"), [
    (["--tun", "u6", *DEV, "--addr6", "198.18.0.2/24"], "not an IPv6 address/prefix"),
    (["--tun", "u6", *DEV, "--addr6", "ff02::1/64"], "not a unicast IPv6 address"),
    (["--tun", "u6", *DEV, "--addr6", "2001:db8::2/64"], "--addr6 2001:db8::2/64 is outside 2001:2::/48"),
    (["--tun", "u6", *DEV, "--addr6", "2001:2::2/64", "--peer6", "2001:2::2/64"], "is ustack's own address"),
    (["--tun", "u6", *DEV, "--addr6", "2001:2::2/64", "--peer6", "2001:2:0:1::1/64"],
     "outside --addr6's prefix"),
    (["--tun", "u6", *DEV, "--slaac"], "--slaac needs --tap"),
])
def test_bad_ipv6_options_are_one_line(argv, words):
    r = ustack("serve", *argv, "--echo", "7", timeout=30)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert words in r.stderr, r.stderr


def _serve6(kind: str) -> dict:
    ping = require_tool("ping")
    p = Proc("serve", f"--{kind}", "u6", *DEV, "--addr6", "2001:2::2/64", "--peer6", "2001:2::1/64",
             "--echo", "7")
    try:
        res = {"ready": p.wait_line("ready", timeout=30)}
        # on a TAP the address is usable once DAD ran (about 1-2 s): ping until it answers
        out = None
        for _ in range(10):
            out = subprocess.run([ping, "-6", "-n", "-c", "1", "-W", "1", "2001:2::2"], capture_output=True,
                                 text=True, timeout=10)
            if out.returncode == 0:
                break
        res["ping"] = out.stdout if out is not None else ""
        res["exit"], res["out"], res["err"] = p.terminate()
        return res
    finally:
        p.kill()


@pytest.mark.netns
@pytest.mark.parametrize("kind", ["tun", "tap"])
def test_serve_with_addr6_answers_ping6(kind):
    res = run_in_netns(_serve6, kind, timeout=90)
    assert "addr6=2001:2::2/64" in res["ready"] and "peer6=2001:2::1/64" in res["ready"]
    assert "1 received" in res["ping"], res["ping"]
    assert res["exit"] == 0, res["err"]
