"""Run one parsed script against ustack in the Simulator, in virtual time.

The stack under test is one simulated host (198.18.0.1, packetdrill's "local" side); the
script's "remote" side is a raw port on the same in-memory link (198.19.2.1): inbound packet
lines are written to it at their script time, and what ustack sends is captured there and
matched against outbound lines. Non-blocking system calls run on the main task at their
time; a call written with an end time (START...END) runs on a task of its own while the
following lines (packets) go on, as packetdrill's syscall thread does.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ustack.runtime.simulator import SimulationError, Simulator
from ustack.tcp.profiles import profile
from ustack.wire.checksum import internet_checksum
from ustack.wire.ipv4 import ip_int

from . import commands
from .code import compile_block, run_code
from .model import (
    ABSOLUTE_RANGE,
    ANY,
    RELATIVE,
    RELATIVE_RANGE,
    DrillError,
    Event,
    Mismatch,
    PacketSpec,
    Script,
    ScriptError,
    Unsupported,
)
from .packets import (
    ICMP_UNREACH_CODES,
    MASK,
    Outbound,
    SeqMap,
    check_tcp,
    decode,
    encode_options,
    flag_bits,
    ipv4,
    tcp_segment,
)
from .syscalls import Syscalls, precheck

LOCAL_IP = "198.18.0.1"  # ustack, the system under test (packetdrill's 192.168.0.1)
REMOTE_IP = "198.19.2.1"  # the scripted peer (packetdrill's 192.0.2.1)
PREFIX = 15
BIND_PORT = 8080  # packetdrill's live bind port and connect port
FIRST_REMOTE_PORT = 40000  # remote ports of inbound connections, one per new SYN
DEFAULT_TOLERANCE_S = 0.004
TOLERANCE_PERCENT = 12.5
MAX_SCRIPT_TIME_S = 3600.0  # virtual time a script may span
MAX_WALL_S = 30.0  # wall-clock time one script may take


@dataclass
class Conn:
    """The connection under test, as the script's packets see it."""

    sock: Any = None  # the TcpSocket (listening, connecting, or the child of a listener)
    mode: str = "none"  # none, listening, connecting, conn
    lport: int = 0
    rport: int = 0
    seqmap: SeqMap = field(default_factory=SeqMap)


@dataclass
class Outcome:
    status: str  # PASS, FAIL, SKIP
    reason: str = ""
    line: int = 0


class Run:
    def __init__(self, script: Script, profile_name: str = "linux", tolerance_s: float | None = None,
                 seed: int = 1, wall_limit_s: float = MAX_WALL_S,
                 overrides: dict[str, Any] | None = None) -> None:
        self.script = script
        opts = script.options
        try:
            if "tolerance_usecs" in opts and tolerance_s is None:
                tolerance_s = int(opts["tolerance_usecs"]) / 1e6
            self.tolerance_percent = float(opts.get("tolerance_percent", TOLERANCE_PERCENT))
        except ValueError:
            raise ScriptError("--tolerance_usecs / --tolerance_percent need a number") from None
        self.tolerance_s = DEFAULT_TOLERANCE_S if tolerance_s is None else tolerance_s
        for name in opts:
            if name in ("ip_version",) and opts[name] != "ipv4":
                raise Unsupported(f"--ip_version={opts[name]}")
            if name not in ("tolerance_usecs", "tolerance_percent", "local_ip", "remote_ip", "ip_version",
                            "strict_segments", "tcp_ts_ecr_scaled", "tcp_ts_tick_usecs", "mss"):
                raise Unsupported(f"option --{name}")
        self.strict_segments = "strict_segments" in opts
        try:
            tick_us = int(opts.get("tcp_ts_tick_usecs") or 0)
        except ValueError:
            raise ScriptError("--tcp_ts_tick_usecs needs a number") from None
        self.ts_tick_s = tick_us / 1e6
        self.script_local = opts.get("local_ip", "192.168.0.1")
        self.script_remote = opts.get("remote_ip", "192.0.2.1")
        for ip in (self.script_local, self.script_remote):
            if ":" in ip:
                raise Unsupported("IPv6 addresses")
        self.cfg = profile(profile_name, **{**commands.interpret(script.init_commands), **(overrides or {})})
        self.wall_deadline = time.monotonic() + wall_limit_s
        self.sim = Simulator(seed=seed, wall_limit_s=wall_limit_s, time_limit_s=MAX_SCRIPT_TIME_S,
                             lease_s=None)
        # the link carries packets up to 64 KB, as packetdrill's tun takes GRO/TSO-sized ones
        self.sim.link("default", mtu=65535)
        self.host = self.sim.add_host(f"{LOCAL_IP}/{PREFIX}", name="sut", tcp=self.cfg)
        self.port = self.sim.link("default").attach("remote")
        self.out: deque[Outbound] = deque()
        self.port.on_pending = self._captured
        self.local_ip = ip_int(LOCAL_IP)
        self.remote_ip = ip_int(REMOTE_IP)
        self.conn = Conn()
        self.next_rport = FIRST_REMOTE_PORT
        self.ip_ident = 0
        self.syscalls = Syscalls(self)
        self.last_time = 0.0  # script time of the previous event
        self.event: Event | None = None

    # -- plumbing ----------------------------------------------------------------------------
    def _captured(self, port: Any, due: float) -> None:
        for frame in port.recv_batch(due, 1 << 30):
            pkt = decode(frame, due)
            if pkt is not None:
                self.out.append(pkt)

    @property
    def now(self) -> float:
        return self.sim.now

    def check_wall(self) -> None:
        if time.monotonic() > self.wall_deadline:
            raise Mismatch("wall-clock time limit of the script reached")

    def advance_to(self, t: float) -> None:
        self.check_wall()
        if t > MAX_SCRIPT_TIME_S:
            raise Unsupported(f"script time {t:.0f} s beyond the {MAX_SCRIPT_TIME_S:.0f} s limit")
        if t > self.now:
            self.host.sleep(t - self.now)
        self.host.sleep(0)

    def wait_until(self, predicate: Any, deadline: float) -> bool:
        """Run the network until predicate() or the virtual deadline."""
        self.check_wall()
        if predicate():
            return True
        if deadline <= self.now:
            return False
        return self.host.wait(predicate, deadline - self.now)

    def tolerance(self, script_t: float) -> float:
        """packetdrill: max(tolerance_usecs, tolerance_percent of the time since the last event)."""
        return max(self.tolerance_s, self.tolerance_percent / 100 * max(0.0, script_t - self.last_time))

    def check_time(self, what: str, script_t: float, actual: float, end: float | None = None) -> None:
        tol = self.tolerance(script_t)
        hi = script_t if end is None else end
        if actual < script_t - tol - 1e-9 or actual > hi + tol + 1e-9:
            when = f"at {script_t:.6f}" if end is None else f"in {script_t:.6f}~{end:.6f}"
            raise Mismatch(f"timing error: expected {what} {when} sec but happened at {actual:.6f} sec; "
                           f"tolerance {tol:.6f} sec")

    def script_addr(self, text: str) -> int:
        """An address written in the script, as the simulation's."""
        if text == self.script_local:
            return self.local_ip
        if text == self.script_remote:
            return self.remote_ip
        if text in ("0.0.0.0", "127.0.0.1"):
            return ip_int(text)
        raise Unsupported(f"address {text} (only the script's local and remote addresses)")

    # -- the run -----------------------------------------------------------------------------
    def precheck(self) -> None:
        """Skip, before running, a script that needs a call, option or tcp_info field ustack
        does not have (packetdrill's corpus is measured over the scripts that need none)."""
        for ev in self.script.events:
            if ev.kind == "syscall":
                precheck(ev)
            elif ev.kind == "code":
                compile_block(ev.text, ev.line)
            elif ev.kind == "command":
                commands.at_runtime(ev.text, ev.line)

    def run(self) -> Outcome:
        try:
            try:
                self.precheck()
                for ev in self.script.events:
                    self.event = ev
                    try:
                        self.run_event(ev)
                    except DrillError as e:
                        if not e.line:
                            e.line = ev.line
                        raise
                self.syscalls.finish()
                return Outcome("PASS")
            except SimulationError as e:
                line = self.event.line if self.event else 0
                return Outcome("FAIL", f"simulation stopped: {e}", line)
        except Unsupported as e:
            return Outcome("SKIP", e.message, e.line)
        except DrillError as e:
            return Outcome("FAIL", e.message, e.line)
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.sim.close()
        except Exception:  # noqa: BLE001 - closing must not hide the outcome
            pass

    def event_time(self, ev: Event) -> tuple[float, float | None]:
        t = ev.time
        if t.kind in (RELATIVE, RELATIVE_RANGE):
            start = self.last_time + t.start
            end = None if t.end is None else self.last_time + t.end
        elif t.kind == ANY:
            return self.last_time, None
        else:
            start, end = t.start, t.end
        if t.kind in (ABSOLUTE_RANGE, RELATIVE_RANGE) and end is not None and end < start:
            raise ScriptError("time range is backwards", ev.line)
        return start, end

    def run_event(self, ev: Event) -> None:
        start, end = self.event_time(ev)
        if ev.kind == "packet":
            assert ev.packet is not None
            if ev.packet.direction == "<":
                self.advance_to(start)
                self.inject(ev.packet)
            else:
                actual = self.expect(ev.packet, start, end, ev.time.kind == ANY)
                if ev.time.kind == ANY:
                    start = actual
        elif ev.kind == "syscall":
            assert ev.syscall is not None
            self.advance_to(start)
            blocking_end = None
            if ev.syscall.end is not None:
                blocking_end = (self.last_time + ev.syscall.end if ev.time.kind == RELATIVE
                                else ev.syscall.end)
            self.syscalls.call(ev, start, blocking_end)
        elif ev.kind == "code":
            self.advance_to(start)
            run_code(ev.text, self, ev.line)
        elif ev.kind == "command":
            self.advance_to(start)
            commands.at_runtime(ev.text, ev.line)
        self.last_time = start

    # -- the connection under test (packetdrill's "socket under test") ----------------------
    def listening(self, sock: Any) -> None:
        self.conn = Conn(sock=sock, mode="listening", lport=sock.local[1] if sock.local else BIND_PORT)

    def connecting(self, sock: Any) -> None:
        self.conn = Conn(sock=sock, mode="connecting")

    def accepted(self, sock: Any) -> None:
        pass  # packets already go to the child the inbound SYN created

    def sut_connection(self) -> Any:
        c = self.conn
        if c.mode != "conn":
            return None
        return self.host.stack.tcp.conns.get((self.local_ip, c.lport, self.remote_ip, c.rport))

    # -- inbound -----------------------------------------------------------------------------
    def new_passive_conn(self, pkt: PacketSpec) -> None:
        listener = self.conn.sock if self.conn.mode == "listening" else None
        lport = BIND_PORT
        if listener is not None and listener.local is not None:
            lport = listener.local[1]
        self.conn = Conn(sock=listener, mode="conn", lport=lport, rport=self.next_rport)
        self.next_rport += 1

    def inject(self, pkt: PacketSpec) -> None:
        if pkt.protocol == "icmp":
            self.inject_icmp(pkt)
            return
        flags = flag_bits(pkt.flags)
        if flags & 0x02 and not flags & 0x10 and self.conn.mode in ("none", "listening"):
            self.new_passive_conn(pkt)
        if self.conn.mode == "connecting" and not self.conn.rport:
            raise Mismatch("inbound packet before ustack sent its SYN")
        if self.conn.mode in ("none", "listening"):
            # no connection yet: packetdrill aims it at the listening port from a fresh port
            self.new_passive_conn(pkt)
        c = self.conn
        if pkt.win is None:
            raise ScriptError("inbound packets need a window (win N)")
        opts = encode_options(pkt.options or [], c.seqmap, 0)
        ack = c.seqmap.local_to_live(pkt.ack) if flags & 0x10 and pkt.ack is not None else 0
        seg = tcp_segment(self.remote_ip, self.local_ip, c.rport, c.lport, pkt.seq, ack, flags,
                          pkt.win, opts, bytes(pkt.length), pkt.urg)
        tos = {"ect0": 2, "ect1": 1, "ce": 3}.get(pkt.tos or "", 0)
        self.send_frame(ipv4(self.remote_ip, self.local_ip, 6, seg, tos, self.next_ident()))

    def next_ident(self) -> int:
        self.ip_ident = (self.ip_ident + 1) & 0xFFFF
        return self.ip_ident

    def send_frame(self, frame: bytes) -> None:
        self.port.send(frame, self.now)
        self.host.sleep(0)  # deliver it now: ustack's answers are stamped with this instant

    def inject_icmp(self, pkt: PacketSpec) -> None:
        c = self.conn
        if pkt.icmp_type in ("unreachable", "dest_unreachable", "destination_unreachable"):
            itype = 3
            if pkt.icmp_code not in ICMP_UNREACH_CODES:
                raise Unsupported(f"ICMP unreachable code {pkt.icmp_code!r}")
            code = ICMP_UNREACH_CODES[pkt.icmp_code]
        elif pkt.icmp_type == "time_exceeded":
            itype = 11
            code = {"": 0, "ttl_exceeded": 0, "frag_reassembly_time_exceeded": 1}.get(pkt.icmp_code, 0)
        else:
            raise Unsupported(f"ICMP type {pkt.icmp_type!r}")
        rest = (pkt.icmp_mtu or 0) & 0xFFFF if itype == 3 and code == 4 else 0
        # the quoted packet: one ustack sent (local -> remote), its sequence number mapped
        seq = c.seqmap.local_to_live(pkt.seq)
        quoted_tcp = struct.pack("!HHI", c.lport, c.rport, seq)
        quoted = ipv4(self.local_ip, self.remote_ip, 6, quoted_tcp + bytes(12 + pkt.length))[:28]
        body = struct.pack("!BBHI", itype, code, 0, rest) + quoted
        csum = internet_checksum(body)
        body = body[:2] + struct.pack("!H", csum) + body[4:]
        self.send_frame(ipv4(self.remote_ip, self.local_ip, 1, body, 0, self.next_ident()))

    # -- outbound ----------------------------------------------------------------------------
    def next_outbound(self, deadline: float) -> Outbound | None:
        if not self.out:
            self.wait_until(lambda: bool(self.out), deadline)
        return self.out.popleft() if self.out else None

    def expect(self, pkt: PacketSpec, start: float, end: float | None, any_time: bool) -> float:
        if pkt.protocol != "tcp":
            raise Unsupported(f"outbound {pkt.protocol} packets")
        tol = self.tolerance(start)
        latest = (end if end is not None else start) + tol
        if any_time:
            latest = self.now + 3600.0
        live = self.next_outbound(latest)
        if live is None:
            raise Mismatch(f"expected outbound packet {describe_spec(pkt)} at {start:.6f} sec "
                           f"but ustack sent nothing by {latest:.6f} sec")
        c = self.conn
        flags = live.flags
        if flags & 0x02 and c.mode == "connecting":
            c.lport, c.rport = live.sport, live.dport
            c.mode = "conn"
        if flags & 0x02 and c.seqmap.local_offset is None:
            c.seqmap.local_offset = (live.seq - pkt.seq) & MASK
        if c.mode == "conn" and (live.sport, live.dport) != (c.lport, c.rport):
            raise Mismatch(f"outbound packet on ports {live.sport}>{live.dport}, not the connection "
                           f"under test ({c.lport}>{c.rport}): {live.describe(c.seqmap)}")
        if self.ts_tick_s:
            # packetdrill: the TS tolerance grows with the time since the script started
            c.seqmap.ts_check = (self.ts_tick_s, max(self.tolerance_s, self.tolerance_percent / 100 * start))
        first = live
        got = len(live.payload)
        try:
            if got < pkt.length and not self.strict_segments and not flags & 0x02:
                # packetdrill accepts several segments for one scripted (TSO/GSO) packet
                check_tcp(pkt, live, c.seqmap, final=False, payload_len=pkt.length)
                while got < pkt.length:
                    nxt = self.next_outbound(self.now + tol)
                    if nxt is None:
                        raise Mismatch(f"expected {pkt.length} bytes in {describe_spec(pkt)}, "
                                       f"ustack sent {got} in time")
                    if c.seqmap.local_to_script(nxt.seq) != (pkt.seq + got) & MASK:
                        raise Mismatch(f"expected {describe_spec(pkt)}, got a discontiguous "
                                       f"{nxt.describe(c.seqmap)} after {got} bytes")
                    live = nxt
                    got += len(nxt.payload)
                    part = PacketSpec(">", flags=pkt.flags, seq=(pkt.seq + got - len(nxt.payload)) & MASK,
                                      ack=pkt.ack, win=pkt.win, urg=pkt.urg, options=pkt.options, tos=pkt.tos)
                    check_tcp(part, nxt, c.seqmap, final=got >= pkt.length, payload_len=len(nxt.payload))
            else:
                check_tcp(pkt, live, c.seqmap, final=True, payload_len=got)
            if got != pkt.length:
                raise Mismatch(f"expected {pkt.length} bytes of data, got {got}")
        except Mismatch as e:
            raise Mismatch(f"{e.message}; script: {describe_spec(pkt)}; ustack sent: "
                           f"{first.describe(c.seqmap)} at {first.at:.6f} sec") from None
        if not any_time:
            self.check_time("outbound packet", start, first.at, end)
        return first.at


def describe_spec(p: PacketSpec) -> str:
    s = f"{p.flags or '-'} {p.seq}:{p.end_seq}({p.length})"
    if p.ack is not None and "." in p.flags:
        s += f" ack {p.ack}"
    if p.win is not None:
        s += f" win {p.win}"
    return s


def run_script(script: Script, profile_name: str = "linux", tolerance_s: float | None = None,
               wall_limit_s: float = MAX_WALL_S, overrides: dict[str, Any] | None = None) -> Outcome:
    """Run one script; `overrides` are TcpConfig fields set on top of the profile and the
    script's init lines."""
    try:
        r = Run(script, profile_name, tolerance_s, wall_limit_s=wall_limit_s, overrides=overrides)
    except Unsupported as e:
        return Outcome("SKIP", e.message, e.line)
    except DrillError as e:
        return Outcome("FAIL", e.message, e.line)
    except ValueError as e:  # a TcpConfig value the script's init lines set out of range
        return Outcome("FAIL", f"init lines: {e}")
    try:
        return r.run()
    except Exception as e:  # noqa: BLE001 - a bug of drill's own: one line, counted, not a traceback
        global internal_errors
        internal_errors += 1
        line = r.event.line if r.event is not None else 0
        return Outcome("FAIL", f"drill internal error: {type(e).__name__}: {e}", line)


internal_errors = 0  # runs that ended in an exception of drill's own (tests assert it stays 0)
