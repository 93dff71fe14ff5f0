"""TCP behaviour profiles: named TcpConfig presets (data, not code forks).

- ``default``: ustack's documented behaviour (Windows-like SYN timing and retries, see
  TcpConfig's docstring and docs/differences-from-linux.md).
- ``linux``: what packetdrill scripts assume of a Linux 6.x kernel after
  gtests/net/tcp/common/defaults.sh ("production defaults"): IW10, RTO min 200 ms, initial
  RTO 1 s, SYN retries 5, delayed ACK 40 ms, window scale 8 (tcp_rmem max 15 MB), buffer
  defaults of tcp_rmem/tcp_wmem, RFC 1337 off, challenge ACKs not globally limited.

``profile(name, **overrides)`` returns a fresh TcpConfig; ``PROFILES`` maps each name to its
overrides of the TcpConfig defaults, so a profile is readable (and diffable) as data.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .config import TcpConfig

LINUX: dict[str, Any] = {
    # buffers: net.ipv4.tcp_rmem = 4096 540000 15M, tcp_wmem = 4096 256K 4M (defaults.sh)
    "rcvbuf": 540000,
    "sndbuf": 256 * 1024,
    "wscale": 8,  # Linux sizes the scale for tcp_rmem[2] (15 MB), not for the current buffer
    # connection establishment: TCP_TIMEOUT_INIT 1 s, tcp_syn_retries=5, tcp_synack_retries=5
    "syn_rto_s": 1.0,
    "syn_retries": 5,
    "synack_retries": 5,
    "syn_rst_retries": 0,
    # data transfer: tcp_retries2=15, TCP_RTO_MIN 200 ms, TCP_RTO_MAX 120 s
    "data_retries": 15,
    "rto_initial_s": 1.0,
    "rto_min_s": 0.2,
    "rto_max_s": 120.0,
    "rto_min_on_variance": True,  # tcp_set_rto: srtt + rttvar, rttvar floored at tcp_rto_min
    "initial_cwnd_segments": 10,
    "congestion_control": "cubic",
    "dupthresh": 3,  # tcp_reordering=3
    "tail_loss_probe": True,  # tcp_early_retrans=4 (TLP)
    "tlp_min_s": 0.0,  # tcp_schedule_loss_probe: 2*SRTT + TCP_TIMEOUT_MIN (2 ms), no 10 ms floor
    "tlp_extra_s": 0.002,
    "persist_min_s": 0.2,
    "persist_max_s": 120.0,
    # ACK policy (values owned by the dynamics work, "dyn"): delayed ACK 40 ms (TCP_ATO_MIN),
    # an ACK at least every second full-sized segment, quick ACKs at the start
    "delack_s": 0.040,
    "delack_segments": 2,
    "ack_stretch_segments": 2,
    "quickack_segments": 16,  # TCP_MAX_QUICKACKS
    "abc_limit_segments": 0,  # tcp_slow_start counts every acknowledged segment
    "nagle_minshall": True,  # tcp_minshall_check
    "slow_start_after_idle": True,  # net.ipv4.tcp_slow_start_after_idle=1
    # keepalive: tcp_keepalive_time 7200 s, intvl 75 s, probes 9
    "keepalive_idle_s": 7200.0,
    "keepalive_interval_s": 75.0,
    "keepalive_probes": 9,
    # closing: TIME-WAIT 60 s (TCP_TIMEWAIT_LEN), tcp_fin_timeout 60 s, tcp_rfc1337=0
    "msl_s": 30.0,
    "fin_wait2_s": 60.0,
    "rfc1337": False,
    "rst_after_shutdown_rd": False,  # data after shutdown(SHUT_RD) is ACKed (tcp_rcv_state_process)
    "answer_ack_of_unsent": False,  # tcp_ack drops SEG.ACK > SND.NXT silently
    # listen: SOMAXCONN 4096 (since 5.4), tcp_max_syn_backlog
    "max_backlog": 4096,
    "max_syn_backlog": 4096,
    # tcp_challenge_ack_limit is INT_MAX since 6.0 (per-socket tcp_invalid_ratelimit instead)
    "challenge_ack_limit": 2**31 - 1,
}

PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "linux": LINUX,
}


def profile(name: str, **overrides: Any) -> TcpConfig:
    """A new TcpConfig for the named profile, with `overrides` applied on top.

    ValueError naming the profile (or the field) when it is unknown."""
    try:
        values = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown TCP profile {name!r} (known: {', '.join(sorted(PROFILES))})") from None
    known = {f.name for f in fields(TcpConfig)}
    merged = {**values, **overrides}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ValueError(f"profile {name!r}: TcpConfig has no field {', '.join(unknown)}")
    return TcpConfig(**merged)
