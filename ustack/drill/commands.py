"""Shell lines of a script (`...`), interpreted, never executed.

The init lines set sysctls; the ones ustack has a TcpConfig knob for become profile overrides,
the ones about offloads, qdiscs or metrics that do not change what ustack sends are no-ops,
and anything else is a SKIP naming it (the script depends on a behaviour ustack does not model).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from .model import Unsupported

# sysctl name -> function(value) -> TcpConfig overrides
_SYSCTL: dict[str, Any] = {
    "tcp_timestamps": lambda v: {"timestamps": v != "0"},
    "tcp_sack": lambda v: {"sack": v != "0"},
    "tcp_window_scaling": lambda v: {"window_scaling": v != "0"},
    "tcp_syn_retries": lambda v: {"syn_retries": int(v)},
    "tcp_synack_retries": lambda v: {"synack_retries": int(v)},
    "tcp_retries2": lambda v: {"data_retries": int(v)},
    "tcp_reordering": lambda v: {"dupthresh": int(v)},
    "tcp_rfc1337": lambda v: {"rfc1337": v != "0"},
    "tcp_wmem": lambda v: {"sndbuf": int(v.split()[1])},
    "tcp_rmem": lambda v: {"rcvbuf": int(v.split()[1])},
    "tcp_early_retrans": lambda v: {"tail_loss_probe": int(v) >= 3},
    "tcp_congestion_control": lambda v: _cc(v),
    "tcp_challenge_ack_limit": lambda v: {"challenge_ack_limit": int(v)},
    "tcp_fin_timeout": lambda v: {"fin_wait2_s": float(v)},
    "tcp_keepalive_time": lambda v: {"keepalive_idle_s": float(v)},
    "tcp_keepalive_intvl": lambda v: {"keepalive_interval_s": float(v)},
    "tcp_keepalive_probes": lambda v: {"keepalive_probes": int(v)},
}
# sysctls whose value does not change what ustack sends in these scripts (offload sizing,
# features the scripts leave off, defaults.sh's own values)
_NOOP = {"tcp_min_tso_segs", "tcp_tso_win_divisor", "tcp_fastopen", "tcp_fastopen_key", "tcp_frto",
         "tcp_dsack", "tcp_fack", "tcp_recovery", "tcp_syncookies", "tcp_ecn_option",
         "tcp_pacing_ss_ratio", "tcp_pacing_ca_ratio", "tcp_fastopen_blackhole_timeout_sec"}
# sysctls that are no-ops only at the value Linux's defaults.sh gives them
_NOOP_AT = {"tcp_ecn": "0", "tcp_slow_start_after_idle": "0", "tcp_notsent_lowat": "4294967295",
            "tcp_mtu_probing": "0"}


def _cc(v: str) -> dict[str, Any]:
    if v in ("cubic", "reno", "newreno"):
        return {"congestion_control": "cubic" if v == "cubic" else "newreno"}
    raise Unsupported(f"congestion control {v!r}")


def _simple_commands(text: str) -> list[list[str]]:
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.strip().startswith("#") else ""
        for part in re.split(r";|&&|\|\|", line):
            part = part.strip()
            if not part:
                continue
            try:
                words = shlex.split(part)
            except ValueError:
                raise Unsupported(f"shell command {part!r}") from None
            out.append(words)
    return out


def _assignments(words: list[str]) -> list[tuple[str, str]]:
    """name=value pairs of a sysctl or set_sysctls.py line, names without their prefix."""
    pairs = []
    for w in words[1:]:
        if w.startswith("-") or "=" not in w:
            continue
        name, value = w.split("=", 1)
        name = name.replace("/proc/sys/", "").replace("/", ".")
        if not name.startswith("net.ipv4."):
            raise Unsupported(f"sysctl {name}")
        pairs.append((name[len("net.ipv4."):], value.strip("\"'")))
    return pairs


def interpret(init_commands: list[str]) -> dict[str, Any]:
    """TcpConfig overrides for a script's init lines; Unsupported names what cannot be honoured."""
    overrides: dict[str, Any] = {}
    for text in init_commands:
        for words in _simple_commands(text):
            overrides.update(_one(words))
    return overrides


def _one(words: list[str]) -> dict[str, Any]:
    cmd = words[0]
    base = cmd.rsplit("/", 1)[-1]
    if base == "defaults.sh":
        return {}  # Linux production defaults: the linux profile itself
    if base in ("sysctl", "set_sysctls.py"):
        out: dict[str, Any] = {}
        for name, value in _assignments(words):
            if name in _SYSCTL:
                try:
                    out.update(_SYSCTL[name](value))
                except (ValueError, IndexError):
                    raise Unsupported(f"sysctl {name}={value}") from None
            elif name in _NOOP:
                continue
            elif _NOOP_AT.get(name) == value:
                continue
            else:
                raise Unsupported(f"sysctl {name}={value}")
        return out
    if base == "ethtool" and "-K" in words:
        return {}  # offloads: ustack sends MSS-sized segments either way (matched as packetdrill does)
    if base == "ip" and words[1:3] == ["tcp_metrics", "flush"]:
        return {}
    if base == "tc" and (("pfifo" in words and "limit" not in words) or "delete" in words):
        return {}  # a FIFO qdisc: no pacing, as ustack
    raise Unsupported(f"shell command {' '.join(words)!r}")


def at_runtime(text: str, line: int) -> None:
    """A command event in the middle of a script: only the no-op ones are accepted."""
    try:
        for words in _simple_commands(text):
            if _one(words):
                raise Unsupported(f"shell command {' '.join(words)!r} in the middle of a script", line)
    except Unsupported as e:
        e.line = e.line or line
        raise
