"""`ustack run`: a Python program on ustack's sockets, on a TUN/TAP device, with faults.

The program runs in this process after `ustack.patched(host)` (docs/run.md): its AF_INET
sockets are ustack's, its stdin/stdout/stderr are ours, its exit status is ours. The device,
the pcap and the stack go away when it ends. Ctrl-C is the program's: an unhandled
KeyboardInterrupt ends the process by SIGINT as the interpreter does. Nothing is printed on
stdout but the program's own output.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .hosting import open_host
from .options import UsageError


def run(args: argparse.Namespace) -> int:
    from ustack.compat import patched
    from ustack.compat.runner import NotPython, execute, parse_command

    command = list(args.program)
    if command[:1] == ["--"]:
        command = command[1:]
    try:
        prog = parse_command(command)  # refused before any device is opened
    except NotPython as e:
        raise UsageError(str(e)) from None
    interrupted = False
    with open_host(args) as opened:
        with patched(opened.host):
            try:
                status = execute(prog)
            except KeyboardInterrupt:
                interrupted = True
                status = 130
    if interrupted:  # after the device and the pcap are closed: die of SIGINT, as python does
        sys.stdout.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return status
