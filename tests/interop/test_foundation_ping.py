"""Foundation "done when": kernel `ping` against ustack over TUN and TAP.

The basic cases (3 pings answered, ustack pinging the kernel with ARP resolved both ways) live
in tests/runtime/test_host_tun.py; here only what those do not cover: echo requests larger
than the MTU, fragmented by the kernel, reassembled by ustack and answered in fragments.
"""

import subprocess

import pytest

from tests.interop.peer import USTACK_IP
from tests.netns import require_tool

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("size", [1473, 3000, 8000])
def test_kernel_ping_larger_than_mtu_is_reassembled_and_answered(hosts, link, size):
    ping = require_tool("ping")
    host = hosts.open(link)
    out = subprocess.run([ping, "-n", "-c", "2", "-i", "0.2", "-W", "2", "-s", str(size), "-M", "dont",
                          USTACK_IP], capture_output=True, text=True, timeout=15)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 received" in out.stdout
    assert f"{size + 8} bytes from {USTACK_IP}" in out.stdout  # the whole reply came back
    counters = host.call(host.stack.counters.snapshot)
    reassembled = {k: v for k, v in counters.items() if "reassembl" in k or "frag" in k}
    assert any(v > 0 for v in reassembled.values()), counters
