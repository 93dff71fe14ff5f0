"""Private network namespaces for the lab: enter one, run `ip` and sysctls inside it.

`enter_private_netns()` moves the calling process (it must still be single-threaded, so call it
first) into a fresh network namespace with `unshare(CLONE_NEWNET)`. Everything created there —
the TUN/TAP device, addresses, routes, kernel sockets — disappears when the process exits, so
teardown after Ctrl-C or a crash is the kernel's job and cannot be forgotten. Python 3.11 has no
`os.unshare`, hence ctypes.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import threading

CLONE_NEWNET = 0x40000000


class NetnsError(RuntimeError):
    """The private namespace could not be created or configured."""


def netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def unavailable_reason() -> str | None:
    """None when a private namespace with TUN/TAP can be made here, else why not."""
    if not os.path.exists("/proc/self/ns/net"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "the lab needs root (it creates a network namespace and a TUN/TAP device)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (load the tun module, or give the container the device)"
    if ip_cmd() is None:
        return "the iproute2 `ip` command is missing (apt-get install iproute2)"
    return None


def ip_cmd() -> str | None:
    return shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p)), None)


def enter_private_netns() -> int:
    """Move this (single-threaded) process into a fresh network namespace; bring `lo` up.

    Returns the new namespace's inode. Raises NetnsError when it cannot."""
    if threading.active_count() != 1:
        raise NetnsError("enter_private_netns() must run before any thread is started")
    before = netns_inode()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise NetnsError(f"unshare(CLONE_NEWNET) failed: {os.strerror(e)}")
    after = netns_inode()
    if after == before:  # pragma: no cover - would mean unshare silently did nothing
        raise NetnsError("unshare(CLONE_NEWNET) left the process in its namespace")
    names = [n for _, n in socket.if_nameindex()]
    if names != ["lo"]:  # pragma: no cover - a fresh namespace has only lo
        raise NetnsError(f"the new namespace is not empty: {names}")
    ip("link", "set", "lo", "up")
    return after


def ip(*args: str) -> str:
    """Run `ip ARGS` (in the current namespace); NetnsError with its message on failure."""
    exe = ip_cmd()
    if exe is None:
        raise NetnsError("the iproute2 `ip` command is missing")
    r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {r.stderr.strip() or r.returncode}")
    return r.stdout


def sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise NetnsError(f"sysctl {key}={value}: {e}") from None


def snmp_counter(proto: str, name: str) -> int | None:
    """A counter of this namespace's kernel from /proc/net/snmp (e.g. "Tcp", "RetransSegs")."""
    try:
        with open("/proc/net/snmp") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith(proto + ":") and vals.startswith(proto + ":"):
            keys, values = head.split()[1:], vals.split()[1:]
            if name in keys:
                return int(values[keys.index(name)])
    return None
