"""`--offload auto|csum|none` on serve, connect, run and lab reaches `Host.open(offload=...)`,
and Host.open refuses anything else before a device is opened."""

from __future__ import annotations

import pytest

from ustack.cli.main import build_parser
from ustack.cli.options import host_kwargs
from ustack.runtime.host import Host, offload_mode

DEVICE = ["--tun", "ofl0", "--addr", "198.18.0.2/24"]
COMMANDS = {
    "serve": ["serve", *DEVICE, "--echo", "7"],
    "connect": ["connect", "198.18.0.1", "80", *DEVICE],
    "run": ["run", *DEVICE, "--", "python", "-c", "pass"],
}


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
@pytest.mark.parametrize("mode", [None, "auto", "csum", "none", "tso"])
def test_offload_option_reaches_host_open(cmd, mode):
    argv = list(COMMANDS[cmd])
    if mode is not None:
        argv[1:1] = ["--offload", mode]
    args = build_parser().parse_args(argv)
    assert host_kwargs(args)["offload"] == (mode or "auto")


@pytest.mark.parametrize("mode", ["auto", "csum", "none", "tso"])
def test_lab_takes_the_offload_option(mode):
    assert build_parser().parse_args(["lab", "--offload", mode]).offload == mode
    assert build_parser().parse_args(["lab"]).offload == "auto"


def test_bad_offload_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["serve", *DEVICE, "--offload", "gro"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--offload" in err and len(err.strip().splitlines()) == 1


def test_offload_modes_and_legacy_values():
    assert [offload_mode(v) for v in (None, True, False, "auto", "csum", "none", "tso")] == [
        "auto", "csum", "none", "auto", "csum", "none", "tso"]
    with pytest.raises(ValueError, match="offload must be one of auto, csum, none"):
        offload_mode("gso")
    with pytest.raises(ValueError):  # refused before any device is opened (no root needed)
        Host.open(tun="ofl9", offload="fast")
