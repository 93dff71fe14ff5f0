"""IPv6 against the Linux kernel over a real TUN and TAP in a private netns: ping6 both ways,
4000-byte echoes fragmented and reassembled both ways, SLAAC from router advertisements sent
by dnsmasq (`--enable-ra`, ra-only), and duplicate address detection both ways.

Addresses: 2001:2::/48 (RFC 5180) and the link's fe80::/64 only; multicast stays ff02:: link
scope. Every wait is bounded.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.netns import require_tool
from ustack.wire.ipv6 import ip6_int, ip6_str

pytestmark = pytest.mark.netns

USTACK6 = "2001:2::2"
KERNEL6 = "2001:2::1"
IFNAME = "itop0"  # tests/interop/peer.py's device name


def open6(hosts, link, **config):
    config.setdefault("addr6", f"{USTACK6}/64")
    return hosts.open(link, peer6=f"{KERNEL6}/64", config=config)


def usable(host, addr: str, timeout: float = 5.0) -> bool:
    """Wait (bounded) until DAD let ustack use `addr`."""
    a = ip6_int(addr)
    return host.wait(lambda: host.stack.ipv6.addrs.accepts(a), timeout)


def kernel_ping6(dst: str, size: int = 56, count: int = 2) -> subprocess.CompletedProcess:
    ping = require_tool("ping")
    return subprocess.run([ping, "-6", "-n", "-c", str(count), "-i", "0.2", "-W", "2", "-s", str(size), dst],
                          capture_output=True, text=True, timeout=20)


def ustack_ping6(host, dst: str, payload: bytes, seq: int = 1, timeout: float = 5.0):
    host.call(lambda: host.stack.icmp6.ping(ip6_int(dst), 0x6006, seq, payload, host.now()))
    ok = host.wait(lambda: any(r.seq == seq for r in host.stack.icmp6.replies), timeout)
    replies = host.call(lambda: [r for r in host.stack.icmp6.replies if r.seq == seq])
    return ok, replies


def counters(host) -> dict:
    return host.call(host.stack.counters.snapshot)


def test_ping6_both_ways(hosts, link):
    host = open6(hosts, link)
    assert usable(host, USTACK6)
    out = kernel_ping6(USTACK6)
    assert out.returncode == 0 and "2 received" in out.stdout, out.stdout + out.stderr
    ok, replies = ustack_ping6(host, KERNEL6, b"from ustack")
    assert ok and replies[0].src == ip6_int(KERNEL6) and replies[0].payload == b"from ustack"
    c = counters(host)
    assert c.get("icmpv6.echo_replies_out", 0) >= 2 and c.get("stack.internal_error", 0) == 0
    if link == "tap":  # the kernel resolved us (NS -> our NA); we learned it from its NS
        assert c.get("ndp.ns_in", 0) >= 1 and c.get("ndp.na_out", 0) >= 1
        link_line = subprocess.run(["ip", "-o", "link", "show", "dev", IFNAME], capture_output=True,
                                   text=True, timeout=10).stdout
        kernel_mac = bytes.fromhex(link_line.split("link/ether ")[1].split()[0].replace(":", ""))
        n = host.call(lambda: host.stack.ipv6.ndp.lookup(ip6_int(KERNEL6)))
        assert n is not None and n.mac == kernel_mac


def test_ping6_link_local_on_tap(hosts):
    host = open6(hosts, "tap")
    assert host.wait(lambda: host.stack.ipv6.addrs.link_local() is not None, 5)
    ll = ip6_str(host.call(lambda: host.stack.ipv6.addrs.link_local()))
    out = kernel_ping6(f"{ll}%{IFNAME}")
    assert out.returncode == 0 and "2 received" in out.stdout, out.stdout + out.stderr


def test_4000_byte_ping6_reassembled_both_ways(hosts, link):
    host = open6(hosts, link)
    assert usable(host, USTACK6)
    out = kernel_ping6(USTACK6, size=4000)
    assert out.returncode == 0 and "2 received" in out.stdout, out.stdout + out.stderr
    assert "4008 bytes from 2001:2::2" in out.stdout  # the whole reply, reassembled by Linux
    data = bytes(i & 0xFF for i in range(4000))
    ok, replies = ustack_ping6(host, KERNEL6, data, seq=2)
    assert ok and replies[0].payload == data  # Linux's fragmented reply, reassembled by ustack
    c = counters(host)
    assert c.get("ipv6.reasm_ok", 0) >= 3 and c.get("ipv6.fragmented", 0) >= 3


def _dnsmasq_ra() -> subprocess.Popen:
    dnsmasq = require_tool("dnsmasq")
    return subprocess.Popen(
        [dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--enable-ra",
         "--dhcp-range=2001:2::,ra-only,64,1h", f"--interface={IFNAME}", "--bind-interfaces",
         "--pid-file=", "--user=root", "--log-facility=-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_slaac_from_dnsmasq_router_advertisements(hosts):
    host = hosts.open("tap", peer6=f"{KERNEL6}/64", config={"slaac": True})
    d = _dnsmasq_ra()
    try:
        def slaac():
            return [a for a in host.stack.ipv6.addrs.addresses.values()
                    if a.origin == "slaac" and a.state == "preferred"]
        assert host.wait(lambda: bool(slaac()), 15), counters(host)
        (a,) = host.call(slaac)
        mac = host.stack.mac
        eui = bytes([mac[0] ^ 2]) + mac[1:3] + b"\xff\xfe" + mac[3:]
        assert a.addr == ip6_int("2001:2::") | int.from_bytes(eui, "big")  # prefix + EUI-64
        assert a.valid_until != float("inf") and a.prefix == 64
        router = host.call(lambda: host.stack.ipv6.addrs.default_router())
        assert router is not None and ip6_str(router).startswith("fe80::")
        out = kernel_ping6(ip6_str(a.addr))
        assert out.returncode == 0 and "2 received" in out.stdout, out.stdout + out.stderr
        c = counters(host)
        assert c.get("ndp.ra_in", 0) >= 1 and c.get("ndp.rs_out", 0) >= 1
    finally:
        d.terminate()
        try:
            d.wait(timeout=5)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait(timeout=5)


def test_dad_finds_the_kernel_holding_our_address(hosts):
    # the kernel side holds 2001:2::2 already: ustack's DAD solicitation is answered by the kernel
    host = hosts.open("tap", peer6=f"{USTACK6}/64", config={"addr6": f"{USTACK6}/64"})
    me = ip6_int(USTACK6)
    assert host.wait(lambda: me in host.stack.ipv6.addrs.duplicates, 5), counters(host)
    assert host.call(lambda: host.stack.ipv6.addrs.accepts(me)) is False
    assert counters(host).get("ipv6.dad_duplicate") == 1


def test_kernel_dad_finds_ustack_holding_the_address(hosts):
    host = open6(hosts, "tap")
    assert usable(host, USTACK6)
    subprocess.run(["ip", "-6", "addr", "add", f"{USTACK6}/64", "dev", IFNAME], check=True, timeout=10)
    deadline = time.monotonic() + 8
    state = ""
    while time.monotonic() < deadline:
        state = subprocess.run(["ip", "-6", "addr", "show", "dev", IFNAME], capture_output=True, text=True,
                               timeout=10).stdout
        if "dadfailed" in state:
            break
        time.sleep(0.2)
    assert "dadfailed" in state, state  # ustack defended its address with an NA
    assert counters(host).get("ndp.na_out", 0) >= 1
