"""--dhcp / --dns / connect-by-name command lines that are wrong: one line, exit 2, nothing opened."""

from __future__ import annotations

import pytest

from tests.cli.helpers import ustack

BAD = [
    (["serve", "--tap", "ust0", "--addr", "198.18.0.2/24", "--dhcp"], "not allowed with"),
    (["serve", "--tap", "ust0", "--dhcp", "--gateway", "198.18.0.1"], "comes from the DHCP server"),
    (["serve", "--tap", "ust0", "--dhcp", "--peer", "10.0.0.1/24"], "outside 198.18.0.0/15"),
    (["serve", "--tap", "ust0", "--dhcp", "--dns", "dns.example"], "not an IPv4 address"),
    (["connect", "bad..name", "80", "--tap", "ust0", "--dhcp"], "not an IPv4 address or host name"),
    (["connect", "1.2.3", "80", "--tap", "ust0", "--dhcp"], "not an IPv4 address or host name"),
]


@pytest.mark.parametrize(("argv", "says"), BAD, ids=lambda a: " ".join(a) if isinstance(a, list) else None)
def test_bad_dhcp_dns_arguments_exit_2_with_one_line(argv, says, tmp_path):
    r = ustack(*argv, cwd=tmp_path, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ustack {argv[0]}: error: "), r.stderr
    assert says in lines[0], lines[0]
