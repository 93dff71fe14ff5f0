"""Foundation "done when": kernel `ping` gets replies from ustack over TUN and TAP (ARP both ways)."""

import re
import subprocess
import time

import pytest

from tests.interop.peer import KERNEL_IP, USTACK_IP, ip_int
from tests.netns import require_tool

pytestmark = pytest.mark.netns


def test_kernel_ping_gets_replies(hosts, link):
    ping = require_tool("ping")
    hosts.open(link)
    out = subprocess.run([ping, "-n", "-c", "3", "-i", "0.2", "-W", "2", "-s", "200", USTACK_IP],
                         capture_output=True, text=True, timeout=15)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"3 packets transmitted, 3 received", out.stdout), out.stdout


def test_kernel_ping_large_payload_is_fragmented_and_answered(hosts, link):
    ping = require_tool("ping")
    hosts.open(link)
    out = subprocess.run([ping, "-n", "-c", "2", "-i", "0.2", "-W", "2", "-s", "3000", "-M", "dont",
                          USTACK_IP], capture_output=True, text=True, timeout=15)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 received" in out.stdout


def test_tap_arp_resolved_both_ways(hosts):
    ping = require_tool("ping")
    host = hosts.open("tap")
    # ustack -> kernel first: ustack must ARP for the kernel's MAC before its echo request leaves.
    replies = []

    def arm():
        host.stack.icmp.on_echo_reply = lambda *a, **k: replies.append(a)
        host.stack.icmp.ping(ip_int(KERNEL_IP), 0x5151, 1, b"arp-check", host.now())
    host.call(arm)
    assert host.wait(lambda: bool(replies), 3.0), "ustack's ping to the kernel got no reply over TAP"
    assert replies[0][0].ident == 0x5151 and bytes(replies[0][0].payload) == b"arp-check"
    # kernel -> ustack: the kernel resolves ustack's MAC (or learned it from ustack's ARP request).
    out = subprocess.run([ping, "-n", "-c", "1", "-W", "2", USTACK_IP], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0, out.stdout + out.stderr
    neigh = subprocess.run(["ip", "neigh", "show", USTACK_IP], capture_output=True, text=True,
                           timeout=5).stdout
    assert "lladdr" in neigh and "FAILED" not in neigh, neigh
    mac = neigh.split("lladdr", 1)[1].split()[0]
    assert mac.lower() == host.stack.mac.hex(":"), (mac, host.stack.mac)


def test_ping_survives_idle_period(hosts, link):
    """A second ping after a pause still works (ARP entries refreshed, nothing wedged)."""
    ping = require_tool("ping")
    hosts.open(link)
    for _ in range(2):
        out = subprocess.run([ping, "-n", "-c", "1", "-W", "2", USTACK_IP], capture_output=True,
                             text=True, timeout=10)
        assert out.returncode == 0, out.stdout
        time.sleep(0.3)
