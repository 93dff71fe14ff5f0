"""What `ustack lab` shows: one line per scenario, a summary table, the pcap path.

Uses rich: colour and a live progress bar only on a terminal; plain text when piped (no escape
codes, no wrapping of the scenario lines); nothing at all with --json (stdout is the JSON).
"""

from __future__ import annotations

import sys
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .wscalls import format_duration


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """`ustack lab | head`: rich would exit 1 at once; let the tour's teardown run and the
        command end the way every ustack command does when its reader leaves (exit 141)."""
        self.quiet = True
        raise BrokenPipeError


class LabView:
    def __init__(self, json_mode: bool = False, verbose: bool = False, file: Any = None) -> None:
        self.json_mode = json_mode
        self.verbose = verbose
        out = file or (sys.stderr if json_mode else sys.stdout)
        tty = out.isatty()
        # Piped: no colour, no live display, wide enough that lines are not folded.
        self.console = _Console(file=out, highlight=False, soft_wrap=not tty, width=None if tty else 160)
        self.tty = self.console.is_terminal
        self.quiet = json_mode
        self._progress: Progress | None = None
        self._task: Any = None
        self._steps: dict[str, Any] = {}  # long steps (the transfer): their own byte progress bars
        self._total = 0
        self._finished = 0
        # Frame trace lines that arrive before the header (a TAP's gratuitous ARP when the
        # device opens) wait for it, so the header stays the first thing printed.
        self._held: list[str] | None = []

    # -- progress -------------------------------------------------------------------------------
    def header(self, ctx: Any) -> None:
        d = ctx.describe()
        if self.quiet:
            return
        faults = d["faults"] or f"none (the bulk transfer adds {ctx.transfer_faults.loss:.0%} loss)"
        self.console.print(f"[bold]ustack lab[/bold]  {d['device'].upper()} {d['ifname']}: "
                           f"kernel {d['kernel']}"
                           f"  <->  ustack {d['ustack']}, MTU {d['mtu']}, private network namespace")
        self.console.print(f"faults: {escape(faults)};  TCP: {d['syn_schedule']} (lab setting)")
        self.console.print()
        held, self._held = self._held or [], None
        for line in held:
            self.trace_line(line)
        from .labscenarios import SCENARIOS

        self._total = len(SCENARIOS) if not ctx.args.only else sum(
            1 for s in SCENARIOS if any(p in s.id for p in ctx.args.only))
        if self.tty:
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[count]}"), TimeElapsedColumn(),
                                      console=self.console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task("starting", total=self._total, count=f"0/{self._total}")

    def start(self, sc: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=sc.title)

    def step(self, name: str, done: int, total: int) -> None:
        """Progress of a long step inside a scenario (bytes of a transfer); TTY only."""
        if self._progress is None:
            return
        task = self._steps.get(name)
        count = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"
        if task is None:
            task = self._steps[name] = self._progress.add_task(f"  {name}", total=total, count=count)
        self._progress.update(task, completed=done, count=count)

    def done(self, sc: Any, outcome: Any) -> None:
        if self._progress is not None:
            for task in self._steps.values():
                self._progress.remove_task(task)
            self._steps.clear()
            self._finished += 1
            self._progress.update(self._task, completed=self._finished,
                                  count=f"{self._finished}/{self._total}")
        if self.quiet:
            return
        mark = "[green]PASS[/green]" if outcome.passed else "[bold red]FAIL[/bold red]"
        key = outcome.key or outcome.calls[-1:]
        calls = "; ".join(c.line() for c in key)
        # One timed call is the whole scenario (a connect that fails after 2 s): its [time] says it.
        took = "" if len(key) == 1 and key[0].seconds >= 0.0005 else \
            f"  [dim]({format_duration(outcome.seconds)})[/dim]"
        self.console.print(f"{mark} [bold]{sc.id:<21}[/bold] {escape(calls)}{took}")
        if not outcome.passed:
            self.console.print(f"     [red]expected {escape(sc.expected)}, got {escape(outcome.got)}[/red]")
        if self.verbose or not outcome.passed:
            for c in outcome.calls:
                self.console.print(f"       {escape(c.line())}", style="dim")

    def trace_line(self, line: str) -> None:
        if self.quiet:
            return
        if self._held is not None:
            if len(self._held) < 1000:
                self._held.append(line)
            return
        self.console.print(escape(line), style="dim", soft_wrap=True)

    # -- end ------------------------------------------------------------------------------------
    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def close(self) -> None:
        """Stop the live display whatever happened (Ctrl-C included): the terminal gets its
        cursor back and later lines are not overwritten."""
        self._stop_progress()

    def setup_failed(self, message: str) -> None:
        self._stop_progress()
        Console(file=sys.stderr, highlight=False, soft_wrap=True).print(
            f"[bold red]ustack lab: {escape(message)}[/bold red]")

    def summary(self, results: list[tuple[Any, Any]], pcap: str, trace_file: str, elapsed: float,
                ok: bool, files: str = "") -> None:
        self._stop_progress()
        if self.quiet:
            return
        self.console.print()
        table = Table(box=box.SIMPLE_HEAD if self.tty else box.ASCII, show_lines=False, pad_edge=False)
        table.add_column("scenario", no_wrap=True)
        table.add_column("expected")
        table.add_column("got")
        table.add_column("pass", no_wrap=True)
        for sc, o in results:
            table.add_row(sc.id, escape(sc.expected), escape(o.got),
                          "[green]yes[/green]" if o.passed else "[bold red]NO[/bold red]")
        self.console.print(table)
        passed = sum(1 for _, o in results if o.passed)
        verdict = "[bold green]all scenarios behaved[/bold green]" if ok else \
            f"[bold red]{len(results) - passed} scenario(s) misbehaved[/bold red]"
        self.console.print(f"{passed}/{len(results)} passed in {elapsed:.1f} s: {verdict}")
        self.console.print(f"pcap:  {pcap}   (ustack plot {pcap} -o seq.png)")
        self.console.print(f"trace: {trace_file}   (ustack plot {trace_file} --kind cwnd -o cwnd.png)")
        if files:
            self.console.print(f"files: {escape(files)}")

    def stats(self, counters: dict[str, int], faults: dict[str, int]) -> None:
        """The stack's counters grouped by protocol (netstat -s style), then the faults."""
        if self.quiet:
            return
        self.console.print()
        proto = None
        for name in sorted(counters, key=lambda n: (n.split(".")[0], n)):
            p, _, rest = name.partition(".")
            if p != proto:
                self.console.print(f"[bold]{escape(p)}:[/bold]")
                proto = p
            self.console.print(f"    {counters[name]:>12}  {escape(rest)}")
        done = ", ".join(f"{k} {v}" for k, v in faults.items() if v) or "nothing"
        self.console.print(f"[bold]faults:[/bold] {escape(done)}")
