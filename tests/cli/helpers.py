"""Helpers for CLI tests: run `python -m ustack` and read its lines with bounded waits."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

USTACK = [sys.executable, "-m", "ustack"]

# What `ustack serve` sends, written out here rather than taken from ustack.cli.services, so the
# tests compare against an independent statement of it.
RFC864_LINE0 = (b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg\r\n")


def chargen_lines(n: int) -> bytes:
    """The first n lines of RFC 864's pattern: 72 of the 95 printable characters (space to
    tilde) per line, each line starting one character further, CRLF."""
    ring = bytes(range(0x20, 0x7F)) * 2
    return b"".join(ring[i % 95:i % 95 + 72] + b"\r\n" for i in range(n))


def http_body(n: int) -> bytes:
    """The first n bytes of every /bytes/N body: byte k is k mod 256."""
    return bytes(k & 0xFF for k in range(n))


def ustack(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*USTACK, *args], capture_output=True, text=True, timeout=timeout, **kw)


class Proc:
    """A `ustack` subprocess in its own session (killed by process group on exit)."""

    def __init__(self, *args: str) -> None:
        self.p = subprocess.Popen([*USTACK, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        self.lines: list[str] = []

    def wait_line(self, prefix: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.p.stdout], [], [], 0.2)
            if r:
                line = self.p.stdout.readline()
                if not line:
                    break
                self.lines.append(line.rstrip("\n"))
                if line.startswith(prefix):
                    return line.rstrip("\n")
            elif self.p.poll() is not None:
                break
        err = self.p.stderr.read() if self.p.poll() is not None else "(still running)"
        raise AssertionError(f"no line starting with {prefix!r}; stdout={self.lines!r} stderr={err!r}")

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 15) -> tuple[int, str, str]:
        self.p.send_signal(sig)
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            out, err = self.p.communicate()
            raise AssertionError(f"ustack did not exit {timeout} s after signal {sig}: {err}") from None
        return self.p.returncode, out, err

    def kill(self) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait(10)
