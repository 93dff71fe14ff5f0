"""Opening a ustack Host from command-line options, with tracing wired in.

`--trace` prints each frame in and out (the drivers' Tracer) and each TCP state change (the TCP
layer's trace hook) to stderr; `--trace-file FILE` writes TCP trace events as JSON lines (see
`ustack.cli.tracefile`) for `ustack plot --kind cwnd`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from ustack.wire.ipv4 import ip_str

from .options import CommandError, UsageError, check_addresses, check_output_file, host_kwargs


class OpenedHost:
    """A started Host plus what the CLI attached to it; a context manager that closes all."""

    def __init__(self, host: Any, args: argparse.Namespace, trace_sink: Any = None) -> None:
        self.host = host
        self.args = args
        self.trace_sink = trace_sink
        self.dhcp: Any = None  # the DhcpService with --dhcp

    def describe(self) -> str:
        a = self.args
        kind, name = ("tun", a.tun) if a.tun else ("tap", a.tap)
        if getattr(a, "dhcp", False):
            lease = self.dhcp.client.lease if self.dhcp is not None else None
            parts = [f"{kind}={name}", f"addr={lease.cidr if lease else '(none)'} (DHCP)"]
            if lease is not None and lease.router:
                parts.append(f"gateway={ip_str(lease.router)}")
        else:
            parts = [f"{kind}={name}", f"addr={a.addr}"]
        dns = list(getattr(self.host.stack, "dns_servers", []))
        if dns:
            parts.append("dns=" + ",".join(ip_str(d) for d in dns))
        if a.peer:
            parts.append(f"peer={a.peer}")
        if a.gateway:
            parts.append(f"gateway={a.gateway}")
        if getattr(a, "addr6", None):
            parts.append(f"addr6={a.addr6}")
        if getattr(a, "slaac", False):
            parts.append("slaac")
        if getattr(a, "peer6", None):
            parts.append(f"peer6={a.peer6}")
        parts.append(f"mtu={a.mtu}")
        if a.pcap:
            parts.append(f"pcap={a.pcap}")
        return " ".join(parts)

    def alive(self) -> bool:
        return bool(getattr(self.host, "running", True))

    def stats_lines(self) -> list[str]:
        """The stack's counters grouped by protocol, then what the fault injector did."""
        lines = []
        try:
            table = self.host.call(self.host.stack.counters.table)
        except Exception:  # noqa: BLE001 - stats are best effort at exit
            table = []
        proto = None
        for p, name, value in table:
            if p != proto:
                lines.append(f"{p}:")
                proto = p
            lines.append(f"    {value:>12}  {name}")
        from ustack.drivers import FaultInjector

        dev = getattr(self.host, "device", None)
        for _ in range(8):
            if dev is None:
                break
            if isinstance(dev, FaultInjector):
                for n in ("tx", "rx"):
                    done = {k: v for k, v in dev.lane_stats(n).items() if v}
                    what = ", ".join(f"{k} {v}" for k, v in done.items()) or "nothing"
                    lines.append(f"faults {n}: {what}")
                for text, matched, fired in dev.engine.rule_counts:
                    lines.append(f"faults rule '{text}': matched {matched}, fired {fired}")
                break
            dev = getattr(dev, "inner", None)
        return lines

    def close(self) -> None:
        if getattr(self.args, "stats", False):
            for line in self.stats_lines():
                sys.stderr.write(line + "\n")
            sys.stderr.flush()
        try:
            if self.dhcp is not None and not getattr(self.host, "closed", False):
                self.host.call(self.dhcp.release, self.host.now())  # give the lease back (RFC 2131 4.4.6)
                # closing a TAP deletes the interface with what the kernel has not delivered yet:
                # give the RELEASE a moment to reach the server first
                time.sleep(RELEASE_GRACE_S)
            self.host.close()
        finally:
            if self.trace_sink is not None:
                self.trace_sink.close()

    def __enter__(self) -> OpenedHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stderr_line(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def device_error(e: BaseException, kind: str, name: str) -> str:
    """One line saying why the TUN/TAP device could not be opened and what to do about it
    (the bare errno text alone, "[Errno 22] Invalid argument", tells a new user nothing)."""
    import errno

    from ustack.drivers import interface_exists

    what = f"cannot open {kind.upper()} device {name}"
    code = getattr(e, "errno", None)
    if code == errno.ENOENT:
        return (f"{what}: /dev/net/tun is missing (load the driver: modprobe tun; in a container, "
                "pass the device in, e.g. docker run --device /dev/net/tun --cap-add NET_ADMIN)")
    if code == errno.EACCES:
        return f"{what}: /dev/net/tun is not open to you (run as root, or with sudo)"
    if code == errno.EPERM:
        return f"{what}: creating network devices needs root or CAP_NET_ADMIN (run with sudo)"
    if code == errno.EBUSY:
        return (f"{what}: another process has it open (another `ustack serve`?); stop that one or "
                f"pick another name with --{kind}")
    if code == errno.EINVAL:
        if interface_exists(name):
            return (f"{what}: an interface named {name} already exists and is not a {kind.upper()} device "
                    f"(see `ip -d link show {name}`); pick another name with --{kind}")
        return f"{what}: the kernel refused the name or flags ({e}); try another name with --{kind}"
    if isinstance(e, RuntimeError):  # configuring the kernel's side with `ip` failed
        return f"{what}: setting up the kernel's side failed: {e}"
    return f"{what}: {getattr(e, 'strerror', None) or e}"


def open_host(args: argparse.Namespace, *, trace_out: TextIO | None = None, **extra: Any) -> OpenedHost:
    """`ustack.Host.open(...)` from parsed options; UsageError for what the user got wrong."""
    from ustack import Host

    from .tracefile import TraceSink

    check_addresses(args)
    check_output_file(getattr(args, "pcap", None), "--pcap")
    check_output_file(getattr(args, "trace_file", None), "--trace-file")
    kw = host_kwargs(args)
    kw.update(extra)
    clock_origin = time.monotonic()
    if getattr(args, "trace", False):
        kw["trace"] = trace_out if trace_out is not None else stderr_line
    sink = TraceSink.from_args(args, clock_origin=clock_origin,
                               echo=(kw.get("trace") if getattr(args, "trace", False) else None))
    try:
        host = Host.open(**kw)
    except BaseException as e:
        if sink:
            sink.close()
        if isinstance(e, (ValueError, TypeError)):
            raise UsageError(str(e)) from None
        if isinstance(e, (OSError, RuntimeError)):
            kind, name = ("tun", args.tun) if args.tun else ("tap", args.tap)
            raise CommandError(device_error(e, kind, name)) from None
        raise
    if sink is not None:
        sink.attach(host)
    opened = OpenedHost(host, args, sink)
    try:
        configure_names(opened, args)
    except BaseException:
        opened.close()
        raise
    return opened


DHCP_TIMEOUT_S = 30.0
RELEASE_GRACE_S = 0.2


def configure_names(opened: OpenedHost, args: argparse.Namespace) -> None:
    """--dns servers into the stack; with --dhcp, run the DHCP client until it holds a lease
    (CommandError after DHCP_TIMEOUT_S)."""
    from ustack.wire.ipv4 import ip_int

    host = opened.host
    servers = [ip_int(a) for a in getattr(args, "dns", None) or []]
    if servers:
        host.call(lambda: setattr(host.stack, "dns_servers", servers))
    if not getattr(args, "dhcp", False):
        return
    from ustack.services.dhcp import BOUND, DhcpService

    svc = DhcpService(host.stack)
    opened.dhcp = svc
    host.call(svc.start, host.now())
    if not host.wait(lambda: svc.client.state == BOUND, DHCP_TIMEOUT_S):
        raise CommandError(f"--dhcp: no lease after {DHCP_TIMEOUT_S:.0f} s "
                           f"(state {svc.client.state}; is a DHCP server on the link?)")
