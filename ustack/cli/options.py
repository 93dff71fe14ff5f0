"""Argument parsing shared by the subcommands: one-line usage errors, device, address and
fault options, and their conversion into `ustack.Host.open(...)` keyword arguments."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Any, NoReturn

USAGE_EXIT = 2
TEST_NET = ipaddress.ip_network("198.18.0.0/15")
TEST_NET6 = ipaddress.ip_network("2001:2::/48")  # RFC 5180 benchmarking


class UsageError(Exception):
    """Bad command-line input found after parsing (exit status 2, one line)."""


class CommandError(Exception):
    """The command cannot do its job here, e.g. the device cannot be opened (exit 1, one line)."""


def one_line(text: object) -> str:
    """An error message as one line: control characters the user typed into a value (line
    breaks, form feeds, ...) are shown escaped, as Python writes them."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the usage block before an error; we print the error on one line only,
    prefixed with the command path, and exit 2 (the status argparse uses)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {one_line(message)} (see --help)\n")
        sys.exit(USAGE_EXIT)


# -- value parsers (argparse `type=`): ValueError/ArgumentTypeError become one-line errors -------
def interface_addr(text: str) -> str:
    """An IPv4 address with prefix, e.g. 198.18.0.2/24 (a bare address means /24)."""
    try:
        iface = ipaddress.IPv4Interface(text if "/" in text else text + "/24")
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an IPv4 address/prefix: {text!r} ({e})") from None
    return iface.with_prefixlen


# Winsock codes in address errors (Windows: WSAStringToAddress/inet_pton of bad text, and an
# address of the wrong family for the socket)
_BAD_TEXT = "WSAEINVAL (10022)"
_WRONG_FAMILY = "WSAEAFNOSUPPORT (10047)"


def _ipv6_text(text: str) -> str | None:
    """`text` as a normalised IPv6 address ("[...]" allowed), or None when it is not one."""
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.IPv6Address(bare))
    except ValueError:
        return None


def interface_addr6(text: str) -> str:
    """An IPv6 address with prefix, e.g. 2001:2::2/64 (a bare address means /64)."""
    try:
        iface = ipaddress.IPv6Interface(text if "/" in text else text + "/64")
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an IPv6 address/prefix: {text!r} ({e})") from None
    if iface.ip.is_multicast or iface.ip.is_unspecified or iface.ip.is_loopback:
        raise argparse.ArgumentTypeError(f"not a unicast IPv6 address: {text!r}")
    return iface.with_prefixlen


def ipv4_addr(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        if _ipv6_text(text) is not None:
            raise argparse.ArgumentTypeError(
                f"an IPv6 address where an IPv4 address is needed: {text!r} {_WRONG_FAMILY}") from None
        raise argparse.ArgumentTypeError(f"not an IPv4 address: {text!r} {_BAD_TEXT}") from None


def ip_addr(text: str) -> str:
    """An IPv4 or IPv6 address (IPv6 bare or in brackets), normalised."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        pass
    v6 = _ipv6_text(text)
    if v6 is None:
        raise argparse.ArgumentTypeError(f"not an IPv4 or IPv6 address: {text!r} {_BAD_TEXT}")
    return v6


def host_or_name(text: str) -> str:
    """An IPv4 address, an IPv6 address (bare or "[...]"), or a DNS name (looked up later
    through --dns / --dhcp servers)."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        pass
    v6 = _ipv6_text(text)
    if v6 is not None:
        return v6
    if ":" in text or text.startswith("["):
        raise argparse.ArgumentTypeError(f"not an IPv6 address: {text!r} {_BAD_TEXT}")
    from ustack.wire.dns import encode_name

    try:
        encode_name(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 address or host name: {text!r} {_BAD_TEXT}") from None
    if not text or text.replace(".", "").isdigit():
        raise argparse.ArgumentTypeError(f"not an IPv4 address or host name: {text!r} {_BAD_TEXT}")
    return text


def host_port(text: str) -> tuple[str, int | None]:
    """HOST, or "[IPv6]:PORT" / "IPv4:PORT" / "name:PORT" with the port (None when absent)."""
    if text.startswith("[") and "]:" in text:
        host, _, p = text.rpartition(":")
        return host_or_name(host), port(p)
    if text.count(":") == 1:
        host, _, p = text.partition(":")
        return host_or_name(host), port(p)
    return host_or_name(text), None


def _int_in(text: str, noun: str, lo: int, hi: int | None, out_of_range: str) -> int:
    """A decimal integer in lo..hi (hi None: no upper bound); `out_of_range` is formatted with
    the value."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
    if value < lo or (hi is not None and value > hi):
        raise argparse.ArgumentTypeError(out_of_range.format(value))
    return value


def port(text: str) -> int:
    return _int_in(text, "a port number", 0, 65535, "port {} is outside 0..65535")


def service_port(text: str) -> int:
    value = port(text)
    if value == 0:
        raise argparse.ArgumentTypeError("a service needs a port from 1 to 65535")
    return value


def addr_port(text: str) -> tuple[str, int]:
    """ADDR:PORT, with an IPv6 ADDR in brackets ("[2001:2::2]:80", "[::]:0")."""
    host, sep, p = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected ADDR:PORT, got {text!r}")
    if host.startswith("["):
        if not host.endswith("]") or _ipv6_text(host) is None:
            raise argparse.ArgumentTypeError(f"not an IPv6 address: {host!r} {_BAD_TEXT}")
        return str(_ipv6_text(host)), port(p)
    return ipv4_addr(host or "0.0.0.0"), port(p)


def mtu(text: str) -> int:
    return _int_in(text, "an MTU", 576, 65535, "MTU {} is outside 576..65535")


def ifname(text: str) -> str:
    if not 1 <= len(text) <= 15 or "/" in text or text.strip() != text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"not a valid interface name: {text!r} (1-15 characters)")
    return text


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{value} s is outside (0, 86400]")
    return value


def positive_int(text: str) -> int:
    return _int_in(text, "an integer", 0, None, "{} must be >= 0")


# -- option groups -----------------------------------------------------------------------------
FAULT_OPTIONS = (
    # option, spec key, metavar, help
    ("--loss", "loss", "P", "drop each frame with probability P (0.02 or 2%%)"),
    ("--duplicate", "duplicate", "P", "duplicate frames with probability P"),
    ("--reorder", "reorder", "P", "hold frames back so later ones overtake them, probability P"),
    ("--corrupt", "corrupt", "P", "flip one bit with probability P"),
    ("--delay", "delay_s", "T", "delay every frame by T (e.g. 20ms)"),
    ("--jitter", "jitter_s", "T", "add uniform jitter of +-T to the delay"),
    ("--rate", "rate_bps", "R", "rate limit, e.g. 10mbit"),
    ("--mtu-cap", "mtu_cap", "N", "drop frames longer than N bytes"),
)


def add_device_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    g = p.add_argument_group("device")
    dev = g.add_mutually_exclusive_group(required=required)
    dev.add_argument("--tun", metavar="NAME", type=ifname, help="use (or create) TUN device NAME")
    dev.add_argument("--tap", metavar="NAME", type=ifname, help="use (or create) TAP device NAME")
    how = g.add_mutually_exclusive_group(required=required)
    how.add_argument("--addr", metavar="ADDR/PREFIX", type=interface_addr,
                     help="ustack's own address, e.g. 198.18.0.2/24")
    how.add_argument("--dhcp", action="store_true",
                     help="get the address, prefix, gateway and DNS servers by DHCP (docs/dhcp-dns.md)")
    g.add_argument("--dns", metavar="ADDR", type=ipv4_addr, action="append", default=[],
                   help="a DNS server for name lookups (repeatable; DHCP may add more)")
    g.add_argument("--peer", metavar="ADDR/PREFIX", type=interface_addr,
                   help="give the kernel side of the device this address and bring it up")
    g.add_argument("--gateway", metavar="ADDR", type=ipv4_addr, help="ustack's default gateway")
    g.add_argument("--mtu", type=mtu, default=1500, help="link MTU (default 1500)")
    g.add_argument("--addr6", metavar="ADDR/PREFIX", type=interface_addr6,
                   help="ustack's static IPv6 address, e.g. 2001:2::2/64 (docs/ipv6.md)")
    g.add_argument("--slaac", action="store_true",
                   help="IPv6 addresses and default router from router advertisements (TAP)")
    g.add_argument("--peer6", metavar="ADDR/PREFIX", type=interface_addr6,
                   help="the kernel side's IPv6 address (IPv6 stays off there without it)")
    g.add_argument("--any-net", action="store_true",
                   help="allow addresses outside 198.18.0.0/15 and 2001:2::/48 (the default refuses them)")


def add_offload_option(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("offload (docs/performance.md)")
    g.add_argument("--offload", choices=("auto", "csum", "none", "tso"), default="auto",
                   help="auto (default): checksum offload, GRO and TSO (64 KB TCP super-segments) on a "
                        "bare TUN, none with faults, pcap or trace; csum: checksum offload only; none: "
                        "every frame per segment, every checksum verified; tso: as auto, also with "
                        "--pcap, which then records the super-segments (pcapng, with a comment)")


def add_capture_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("capture and tracing")
    g.add_argument("--pcap", metavar="FILE", help="write every frame in and out to FILE (pcap)")
    g.add_argument("--trace", action="store_true",
                   help="print each frame in/out and each TCP state change, with timestamps")
    g.add_argument("--stats", action="store_true",
                   help="print the stack's counters (like netstat -s) and the fault injector's on exit")
    g.add_argument("--trace-file", metavar="FILE",
                   help="write TCP trace events (state changes, cwnd and ssthresh) as JSON lines to "
                        "FILE, for `ustack plot --kind cwnd`")


def add_fault_options(p: argparse.ArgumentParser, seed_default: str = "0") -> None:
    g = p.add_argument_group("fault injection (on the device, both directions; see docs/faults.md)")
    for opt, _key, metavar, text in FAULT_OPTIONS:
        g.add_argument(opt, metavar=metavar, help=text)
    g.add_argument("--faults", metavar="FILE|SPEC",
                   help="a scenario file (FILE.toml: bursty loss, targeted rules, scheduled link changes; "
                        'see docs/faults.md) or the options above as one spec, e.g. "loss=2%%,delay=5ms"')
    g.add_argument("--seed", type=positive_int, default=None,
                   help=f"random seed of the faults (default {seed_default})")


def fault_scenario(args: argparse.Namespace) -> Any:
    """A drivers.Scenario from the fault options, or None when no fault was asked for.

    `--faults` is a scenario file (FILE.toml) or a spec string; the shorthand options (--loss
    ...) set the same [link] faults and win over the file's; --seed replaces the seed. The
    shorthands build the same Scenario a file does. Raises UsageError with one line (for a
    file: FILE:LINE: what is wrong), in the words the user typed (`--delay fast: not a number`,
    not the FaultConfig field `delay_s`)."""
    from dataclasses import fields

    from ustack.drivers import FaultConfig, Scenario, ScenarioError, load_scenario
    from ustack.drivers.scenario import is_scenario_path

    spec = getattr(args, "faults", None) or ""
    items = []
    for opt, key, _m, _h in FAULT_OPTIONS:
        value = getattr(args, opt[2:].replace("-", "_"), None)
        if value is not None:
            check_fault_value(opt, key, value)
            items.append(f"{key}={value}")
    seed = getattr(args, "seed", None)
    scenario: Scenario
    if spec and is_scenario_path(spec):
        try:
            scenario = load_scenario(spec)
        except ScenarioError as e:
            raise UsageError(f"--faults {e}") from None
        spec = ""
    else:
        scenario = Scenario(source="options")
    try:
        shorthand = FaultConfig.from_spec(",".join([spec, *items]))
    except (ValueError, TypeError) as e:  # the options were checked one by one: it is the spec
        raise UsageError(f"--faults {spec}: {_spec_words(str(e))}") from None
    default = FaultConfig()
    changed = {f.name: getattr(shorthand, f.name) for f in fields(FaultConfig)
               if f.name != "seed" and getattr(shorthand, f.name) != getattr(default, f.name)}
    if "loss" in changed and scenario.link.loss_model is not None:
        raise UsageError(f"--loss and the [loss] model of {scenario.source} both set the loss: keep one")
    try:
        scenario = scenario.with_link(**changed)
    except ValueError as e:
        raise UsageError(f"bad fault option: {e}") from None
    if seed is not None:
        scenario = scenario.with_seed(seed)
    if scenario.is_noop and seed is None:
        return None
    return scenario


def check_fault_value(option: str, key: str, value: str) -> None:
    """UsageError in the words typed (`--delay fast: not a number: 'fast'`) unless `value` is
    good for the fault `key` (a spec key such as delay_s)."""
    from ustack.drivers import FaultConfig

    try:
        FaultConfig.from_spec(f"{key}={value}")
    except (ValueError, TypeError) as e:
        raise UsageError(f"{option} {value}: {_fault_reason(str(e), key)}") from None


def _spec_words(message: str) -> str:
    """A FaultConfig message in the spec's short keys: "delay_s must be >= 0" -> "delay must be
    >= 0"; a list of keys names each once ("delay", not "delay, delay_s")."""
    import re

    from ustack.drivers.faultconfig import SPEC_ALIASES

    short = {field: alias for alias, field in SPEC_ALIASES.items() if "_" in field}
    parts = message.split("'")  # what the user typed is quoted: left as typed
    text = "'".join(re.sub(r"\b[a-z]+(?:_[a-z]+)+\b", lambda m: short.get(m.group(0), m.group(0)), part)
                    if i % 2 == 0 else part for i, part in enumerate(parts))
    head, sep, keys = text.partition("keys: ")
    if sep:
        text = head + sep + ", ".join(dict.fromkeys(k.strip() for k in keys.split(",")))
    return text


def _fault_reason(message: str, key: str) -> str:
    """The reason of a FaultConfig error about one option, without the spec item or the field
    name it quotes: "bad value in fault spec item 'delay_s=x': not a number: 'x'" -> "not a
    number: 'x'"; "delay_s must be >= 0" -> "must be >= 0"; "loss=3.0 is not a probability in
    [0, 1]" -> "not a probability in [0, 1]"."""
    prefix = "bad value in fault spec item "
    if message.startswith(prefix):
        return message.split("': ", 1)[-1]
    if message.startswith(key + "="):
        message = message.split(" ", 1)[-1]
    elif message.startswith(key + " "):
        message = message[len(key) + 1:]
    return message.removeprefix("is ")


def check_addresses(args: argparse.Namespace) -> None:
    """The device's addresses make sense together, before anything is opened: each inside
    198.18.0.0/15 unless --any-net; --peer another host address of --addr's subnet; --gateway
    a host of that subnet. (The kernel accepts a peer off the subnet, and connect then waits
    21 s for answers that cannot come.) IPv6: --addr6/--peer6 inside 2001:2::/48 and one /64."""
    check_addresses6(args)
    if getattr(args, "dhcp", False):
        check_dhcp(args)
        return
    addr = ipaddress.IPv4Interface(args.addr)
    peer = ipaddress.IPv4Interface(args.peer) if getattr(args, "peer", None) else None
    gateway = ipaddress.IPv4Address(args.gateway) if getattr(args, "gateway", None) else None
    if not getattr(args, "any_net", False):
        for option, value, where in (("--addr", args.addr, addr.network),
                                     ("--peer", getattr(args, "peer", None), peer and peer.network),
                                     ("--gateway", getattr(args, "gateway", None), gateway)):
            if where is not None and not _in_test_net(where):
                raise UsageError(f"{option} {value} is outside 198.18.0.0/15 (the benchmarking range); "
                                 "pass --any-net to allow it")
    net = addr.network
    special = {net.network_address, net.broadcast_address} if net.prefixlen < 31 else set()
    if addr.ip in special:
        raise UsageError(f"--addr {args.addr} is the {_which(addr.ip, net)} address of {net}: "
                         f"use a host address such as {_other_host(net, addr.ip)}/{net.prefixlen}")
    if net.prefixlen == 32 and (peer is not None or gateway is not None):
        raise UsageError(f"--addr {args.addr} leaves no other address on the link for "
                         f"{'--peer' if peer is not None else '--gateway'}: use a prefix such as /24")
    example = f"{_other_host(net, addr.ip)}/{net.prefixlen}"
    if peer is not None:
        if peer.ip == addr.ip:
            raise UsageError(f"--peer {args.peer} is ustack's own address (--addr): give the kernel's side "
                             f"another address of {net}, e.g. --peer {example}")
        if peer.ip not in net:
            raise UsageError(f"--peer {args.peer} is outside --addr's subnet {net}: both sides of the link "
                             f"need addresses in it, e.g. --peer {example}")
        if peer.ip in special:
            raise UsageError(f"--peer {args.peer} is the {_which(peer.ip, net)} address of {net}: "
                             f"use a host address, e.g. --peer {example}")
    if gateway is not None:
        if gateway == addr.ip:
            raise UsageError(f"--gateway {args.gateway} is ustack's own address (--addr)")
        if gateway not in net or gateway in special:
            raise UsageError(f"--gateway {args.gateway} is not a host of --addr's subnet {net}: "
                             "the gateway must be reachable directly on the link")


def check_addresses6(args: argparse.Namespace) -> None:
    """--addr6 and --peer6: inside 2001:2::/48 unless --any-net, distinct, on one prefix;
    --slaac needs a TAP (router advertisements need a multicast link)."""
    addr = ipaddress.IPv6Interface(args.addr6) if getattr(args, "addr6", None) else None
    peer = ipaddress.IPv6Interface(args.peer6) if getattr(args, "peer6", None) else None
    if getattr(args, "slaac", False) and not getattr(args, "tap", None):
        raise UsageError("--slaac needs --tap: router advertisements come over Ethernet (a TUN has no NDP)")
    if not getattr(args, "any_net", False):
        for option, iface in (("--addr6", addr), ("--peer6", peer)):
            if iface is not None and not iface.network.subnet_of(TEST_NET6) and not iface.ip.is_link_local:
                raise UsageError(f"{option} {iface} is outside 2001:2::/48 (add --any-net to allow it)")
    if addr is not None and peer is not None:
        if addr.ip == peer.ip:
            raise UsageError(f"--peer6 {args.peer6} is ustack's own address (--addr6)")
        if peer.ip not in addr.network:
            raise UsageError(f"--peer6 {args.peer6} is outside --addr6's prefix {addr.network}")


def check_dhcp(args: argparse.Namespace) -> None:
    """With --dhcp the server gives address, prefix and gateway: --gateway is refused, --peer
    (the kernel side, where the DHCP server runs) must still be in the test range."""
    if getattr(args, "gateway", None):
        raise UsageError(f"--gateway {args.gateway} with --dhcp: the gateway comes from the DHCP server")
    peer = ipaddress.IPv4Interface(args.peer) if getattr(args, "peer", None) else None
    if peer is not None and not args.any_net and not _in_test_net(peer.network):
        raise UsageError(f"--peer {args.peer} is outside 198.18.0.0/15 (add --any-net to allow it)")


def _in_test_net(where: ipaddress.IPv4Network | ipaddress.IPv4Address) -> bool:
    if isinstance(where, ipaddress.IPv4Address):
        return where in TEST_NET
    return where.subnet_of(TEST_NET)


def _which(ip: ipaddress.IPv4Address, net: ipaddress.IPv4Network) -> str:
    return "network" if ip == net.network_address else "broadcast"


def _other_host(net: ipaddress.IPv4Network, not_this: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
    """A host address of `net` other than `not_this` (its first or second host)."""
    first = net.network_address + (1 if net.prefixlen < 31 else 0)
    return first if first != not_this else first + 1


def check_output_file(path: str | None, option: str) -> None:
    """A file the command will write (--pcap, --trace-file) must be creatable: a bad path is a
    usage error found before any device is opened, not a traceback afterwards."""
    if not path:
        return
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable")


def host_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for `ustack.Host.open` from the device/capture/fault options."""
    addr = "0.0.0.0/32" if getattr(args, "dhcp", False) else args.addr  # no address until DHCP
    kw: dict[str, Any] = {"addr": addr, "peer": args.peer, "gateway": args.gateway, "mtu": args.mtu,
                          "pcap": args.pcap, "faults": fault_scenario(args),
                          "offload": getattr(args, "offload", "auto")}
    config = {k: v for k, v in (("addr6", getattr(args, "addr6", None)),
                                ("slaac", getattr(args, "slaac", False))) if v}
    if config:
        kw["config"] = config
    if getattr(args, "peer6", None):
        kw["peer6"] = args.peer6
    if args.tun:
        kw["tun"] = args.tun
    else:
        kw["tap"] = args.tap
    return kw
