"""`ustack lab`: the tour. ustack against the Linux kernel over a real TUN/TAP link, inside a
private network namespace that disappears with the process.

The process first moves itself into a fresh network namespace (`netns.enter_private_netns`),
creates the link (kernel 198.18.0.1, ustack 198.18.0.2), starts the kernel-side services
(`labkernel`), then runs each scenario through ustack's Winsock API and checks what came back.
Teardown is `finally:` blocks plus the namespace itself: when the process ends, the device,
addresses, routes and kernel sockets go with it, also after Ctrl-C or a crash.

Exit status: 0 when every scenario behaved as expected, 1 otherwise (or when the lab could not
run here), 2 for bad options, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from . import labkernel as K
from . import netns
from .labscenarios import SCENARIOS, LabContext, Outcome, Scenario
from .labview import LabView
from .options import UsageError, check_fault_value, check_output_file, fault_scenario
from .tracefile import TraceSink

DEFAULT_SEED = 7  # the lab is reproducible run to run: same ports, same ISNs, same fault pattern
WATCHDOG_BASE_S = 120  # the whole tour normally takes 5-30 s; the watchdog only stops a hang
WATCHDOG_PER_MB_S = 4
KEEP_RUNS = 3  # default output directories kept in the temp dir (each ~43 MB with the 20 MB transfer)
OUT_PREFIX = "ustack-lab-"
OUT_MARKER = ".ustack-lab"  # only directories holding this file are ever removed


class LabFailed(Exception):
    """The lab could not be set up (no root, no TUN, ...)."""


class LabTimeout(BaseException):  # noqa: N818 - not an Exception: no scenario may swallow it
    """The watchdog fired: something hangs. Ends the whole tour."""


def selected(args: argparse.Namespace) -> list[Scenario]:
    if not args.only:
        return list(SCENARIOS)
    ids = {s.id for s in SCENARIOS}
    # an exact id picks that scenario only ("ping" is not also "ping6"); other text any id
    # containing it
    chosen = [s for s in SCENARIOS
              if any(part == s.id or (part not in ids and part in s.id) for part in args.only)]
    if not chosen:
        raise UsageError(f"--only {' '.join(args.only)}: no such scenario (see --list)")
    return chosen


def run(args: argparse.Namespace) -> int:
    scenarios = selected(args)
    if args.list:
        for s in scenarios:
            print(f"{s.id:<22} {s.title}  (expects {s.expected})")
        return 0
    if args.transfer_mb <= 0 or args.transfer_mb > 1024:
        raise UsageError("--transfer-mb must be in (0, 1024]")
    seed = args.seed if args.seed is not None else DEFAULT_SEED
    user_faults = fault_scenario(args)
    if user_faults is not None:
        user_faults = None if user_faults.is_noop else user_faults.with_seed(seed)
    from ustack.drivers import FaultConfig

    check_fault_value("--transfer-loss", "loss", args.transfer_loss)
    transfer_loss = FaultConfig.from_spec(f"loss={args.transfer_loss}")
    if args.out:
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--out {args.out}: {e.strerror}") from None
        if not os.access(args.out, os.W_OK | os.X_OK):
            raise UsageError(f"--out {args.out}: not writable")
    check_output_file(args.pcap, "--pcap")
    check_output_file(args.trace_file, "--trace-file")
    reason = netns.unavailable_reason()
    if reason is not None:
        print(f"ustack lab: cannot run here: {reason}", file=sys.stderr)
        return 1
    # Must happen before any thread exists (rich's live display starts one).
    try:
        netns.enter_private_netns()
    except netns.NetnsError as e:
        print(f"ustack lab: cannot create a private network namespace: {e}", file=sys.stderr)
        return 1

    out_dir, removed = (args.out, 0) if args.out else new_out_dir()
    pcap = args.pcap or os.path.join(out_dir, "lab.pcap")
    trace_file = args.trace_file or os.path.join(out_dir, "lab-trace.jsonl")
    view = LabView(json_mode=args.json, verbose=args.trace)
    try:
        return _tour(args, scenarios, seed, user_faults, transfer_loss, pcap, trace_file, view,
                     OutFiles(out_dir, [pcap, trace_file], kept_runs=not args.out, removed=removed))
    finally:
        view.close()  # also on Ctrl-C: the live display ends and the terminal gets its cursor back
        hand_over([out_dir, pcap, trace_file])


@dataclass
class OutFiles:
    """Where the tour's pcap and trace went, for the summary."""
    out_dir: str
    files: list[str]
    kept_runs: bool  # a default directory in the temp dir (only the last KEEP_RUNS are kept)
    removed: int  # older default directories removed to make room

    @property
    def nbytes(self) -> int:
        return sum(os.path.getsize(f) for f in self.files if os.path.isfile(f))

    def note(self) -> str:
        n = self.nbytes
        size = f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"
        text = f"{self.out_dir} holds {size}"
        if self.kept_runs:
            pattern = os.path.join(os.path.dirname(self.out_dir), OUT_PREFIX + "*")
            text += f"; the lab keeps its last {KEEP_RUNS} runs ({pattern})"
            if self.removed:
                text += f" and removed {self.removed} older"
            text += "; --out DIR keeps one elsewhere"
        return text


def new_out_dir() -> tuple[str, int]:
    """A new directory for this run's files in the temp dir, after removing the earlier default
    ones beyond the newest KEEP_RUNS - 1 (only those this code made: they hold OUT_MARKER).
    Readable by everyone, so `ustack plot` works without sudo. Returns (path, how many removed)."""
    import shutil

    top = tempfile.gettempdir()
    sudo = sudo_user()
    owners = {os.geteuid(), sudo[0] if sudo else os.geteuid()}  # hand_over() gave them to the user
    earlier = []
    for name in os.listdir(top):
        path = os.path.join(top, name)
        if name.startswith(OUT_PREFIX) and os.path.isfile(os.path.join(path, OUT_MARKER)) \
                and not os.path.islink(path) and os.stat(path).st_uid in owners:
            earlier.append((os.stat(path).st_mtime, path))
    earlier.sort(reverse=True)
    removed = 0
    for _, path in earlier[KEEP_RUNS - 1:]:
        shutil.rmtree(path, ignore_errors=True)
        removed += not os.path.exists(path)
    out = tempfile.mkdtemp(prefix=OUT_PREFIX)
    os.chmod(out, 0o755)
    with open(os.path.join(out, OUT_MARKER), "w") as f:
        f.write("made by `ustack lab`; removed when newer runs need the room\n")
    return out, removed


def sudo_user() -> tuple[int, int] | None:
    """(uid, gid) of the user who ran us through sudo, when we run as root that way."""
    try:
        ids = int(os.environ["SUDO_UID"]), int(os.environ["SUDO_GID"])
    except (KeyError, ValueError):
        return None
    return ids if os.geteuid() == 0 else None


def hand_over(paths: list[str]) -> None:
    """Under sudo, give the files the lab wrote to the user who ran it (SUDO_UID/SUDO_GID), so
    they can plot, move and delete them without root."""
    sudo = sudo_user()
    if sudo is None:
        return
    uid, gid = sudo
    for p in paths:
        try:
            if os.path.exists(p):
                os.chown(p, uid, gid)
                if os.path.isdir(p):
                    for name in os.listdir(p):
                        os.chown(os.path.join(p, name), uid, gid)
        except OSError:
            pass  # best effort: the summary still says where the files are


def _tour(args: argparse.Namespace, scenarios: list[Scenario], seed: int, user_faults: Any,
          transfer_loss: Any, pcap: str, trace_file: str, view: LabView, out: OutFiles) -> int:
    watchdog_s = args.watchdog or int(WATCHDOG_BASE_S + WATCHDOG_PER_MB_S * args.transfer_mb)

    def on_alarm(signum: int, frame: Any) -> None:
        raise LabTimeout(f"the lab took longer than {watchdog_s} s")

    old_alarm = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(watchdog_s)
    results: list[tuple[Scenario, Outcome]] = []
    setup_error: str | None = None
    ctx: LabContext | None = None
    started = time.monotonic()
    try:
        ctx = _setup(args, seed, user_faults, transfer_loss, pcap, trace_file, view,
                     ipv6=any(sc.ipv6 for sc in scenarios))
        view.header(ctx)
        for sc in scenarios:
            results.append((sc, _run_one(sc, ctx, view)))
    except LabFailed as e:
        setup_error = str(e)
    except LabTimeout as e:
        setup_error = f"{e} (after {len(results)} scenarios; aborted)"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_alarm)
        if ctx is not None:
            ctx.snapshot()
            ctx.close()
    elapsed = time.monotonic() - started
    if setup_error is not None:
        view.setup_failed(setup_error)
        if args.json:
            print(json.dumps({"ok": False, "error": setup_error}))
        return 1
    ok = all(o.passed for _, o in results)
    view.summary(results, pcap, trace_file, elapsed, ok, files=out.note())
    if args.stats and ctx is not None:
        view.stats(ctx.counters, ctx.faults_done)
    if args.json:
        report = _json_report(ctx, results, pcap, trace_file, elapsed, ok)
        report.update(out_dir=out.out_dir, out_bytes=out.nbytes)
        print(json.dumps(report, indent=2))
    return 0 if ok else 1


def _setup(args: argparse.Namespace, seed: int, user_faults: Any, transfer_loss: Any, pcap: str,
           trace_file: str, view: LabView, ipv6: bool = False) -> LabContext:
    from ustack import Host
    from ustack.drivers import FaultConfig

    # A FaultInjector is always in the chain (a no-op until asked) so the bulk transfer can turn
    # loss on for itself when the whole tour is not already running under the user's faults.
    faults = user_faults if user_faults is not None else FaultConfig(seed=seed)
    kind = {"tap": args.ifname} if args.tap else {"tun": args.ifname}
    clock_origin = time.monotonic()
    sink = TraceSink(open(trace_file, "w", buffering=1 << 16), view.trace_line if args.trace else None,  # noqa: SIM115
                     clock_origin)
    try:
        # IPv6 on both sides only for a tour with an IPv6 scenario (ping6): the others see the
        # link exactly as before
        v6: dict[str, Any] = {"peer6": f"{K.KERNEL6}/{K.PREFIX6}",
                              "config": {"addr6": f"{K.USTACK6}/{K.PREFIX6}"}} if ipv6 else {}
        host = Host.open(**kind, addr=f"{K.USTACK}/{K.PREFIX}", peer=f"{K.KERNEL}/{K.PREFIX}", mtu=args.mtu,
                         pcap=pcap, faults=faults, trace=view.trace_line if args.trace else None,
                         seed=seed, offload=getattr(args, "offload", "auto"), **v6)
    except Exception as e:  # noqa: BLE001 - any failure to build the link ends the lab
        sink.close()
        from .hosting import device_error

        kind = "tap" if args.tap else "tun"
        if isinstance(e, (OSError, RuntimeError)):
            raise LabFailed(device_error(e, kind, args.ifname).replace(f"--{kind}", "--ifname")) from e
        raise LabFailed(f"cannot open the {kind.upper()} device: {type(e).__name__}: {e}") from e
    ctx = LabContext(args=args, host=host, sink=sink, user_faults=user_faults, transfer_faults=transfer_loss,
                     transfer_bytes=int(args.transfer_mb * 1_000_000), pcap=pcap)
    ctx.step = view.step
    try:
        sink.attach(host)
        ctx.configure_tcp()
        ctx.kernel = K.KernelSide(args.ifname, host.device.medium, ctx.transfer_bytes)
        ctx.kernel.start()
        ctx.start_winsock()
    except Exception as e:  # noqa: BLE001
        ctx.close()
        raise LabFailed(f"lab set-up failed: {type(e).__name__}: {e}") from e
    return ctx


def _run_one(sc: Scenario, ctx: LabContext, view: LabView) -> Outcome:
    view.start(sc)
    t0 = time.monotonic()
    try:
        outcome = sc.fn(ctx)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - a broken scenario is a failed scenario, not a crash
        rec = ctx.last_recorder
        outcome = Outcome(False, f"{type(e).__name__}: {e}", rec.calls if rec else [])
    outcome.seconds = time.monotonic() - t0
    view.done(sc, outcome)
    return outcome


def _json_report(ctx: LabContext | None, results: list[tuple[Scenario, Outcome]], pcap: str, trace_file: str,
                 elapsed: float, ok: bool) -> dict[str, Any]:
    return {
        "ok": ok,
        "seconds": round(elapsed, 3),
        "pcap": pcap,
        "trace_file": trace_file,
        "link": ctx.describe() if ctx is not None else None,
        "counters": ctx.counters if ctx is not None else {},
        "faults_done": ctx.faults_done if ctx is not None else {},
        "scenarios": [
            {"id": sc.id, "title": sc.title, "expected": sc.expected, "got": o.got, "pass": o.passed,
             "seconds": round(o.seconds, 4), "calls": [c.as_dict() for c in o.calls], "info": o.info}
            for sc, o in results
        ],
    }
