"""A read-only, tcp_info-like view of one connection (Linux's struct tcp_info field names).

Only fields ustack really has are given; `UNAVAILABLE` names the Linux fields it does not
track (per-segment loss marks, retransmitted-and-unacked counts, limited-time accounting...),
so a caller can say which one it lacks instead of inventing a value. Counts Linux keeps in
packets are derived from bytes and the sender's MSS (rounded up), as a TSO-less Linux would
count them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .state import State

if TYPE_CHECKING:
    from .connection import Connection

# Linux include/net/tcp_states.h
LINUX_STATE = {State.ESTABLISHED: 1, State.SYN_SENT: 2, State.SYN_RCVD: 3, State.FIN_WAIT_1: 4,
               State.FIN_WAIT_2: 5, State.TIME_WAIT: 6, State.CLOSED: 7, State.CLOSE_WAIT: 8,
               State.LAST_ACK: 9, State.LISTEN: 10, State.CLOSING: 11}
# enum tcp_ca_state
TCP_CA_OPEN, TCP_CA_DISORDER, TCP_CA_CWR, TCP_CA_RECOVERY, TCP_CA_LOSS = range(5)
CA_STATES = {"TCP_CA_Open": TCP_CA_OPEN, "TCP_CA_Disorder": TCP_CA_DISORDER, "TCP_CA_CWR": TCP_CA_CWR,
             "TCP_CA_Recovery": TCP_CA_RECOVERY, "TCP_CA_Loss": TCP_CA_LOSS}
TCPI_OPT_TIMESTAMPS, TCPI_OPT_SACK, TCPI_OPT_WSCALE = 1, 2, 4
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF

UNAVAILABLE = frozenset({
    "tcpi_lost", "tcpi_retrans", "tcpi_delivered", "tcpi_delivered_ce", "tcpi_busy_time",
    "tcpi_rwnd_limited", "tcpi_sndbuf_limited", "tcpi_reord_seen", "tcpi_fackets",
    "tcpi_pacing_rate", "tcpi_max_pacing_rate", "tcpi_delivery_rate", "tcpi_notsent_bytes",
    "tcpi_data_segs_in", "tcpi_data_segs_out", "tcpi_dsack_dups", "tcpi_last_ack_sent",
    "tcpi_last_ack_recv", "tcpi_last_data_sent", "tcpi_min_rtt",
    "tcpi_rcv_rtt", "tcpi_rcv_space", "tcpi_rcv_ssthresh", "tcpi_pmtu", "tcpi_ato",
    "tcpi_snd_wnd", "tcpi_rcv_wnd", "tcpi_bytes_sent", "tcpi_bytes_retrans",
    "tcpi_delivery_rate_app_limited", "tcpi_fastopen_client_fail", "tcpi_rehash",
    "tcpi_total_rto", "tcpi_total_rto_recoveries", "tcpi_total_rto_time", "tcpi_bytes_acked",
})


TCP_INFO_FIELDS = frozenset({
    "tcpi_state", "tcpi_ca_state", "tcpi_retransmits", "tcpi_probes", "tcpi_backoff", "tcpi_options",
    "tcpi_snd_wscale", "tcpi_rcv_wscale", "tcpi_rto", "tcpi_snd_mss", "tcpi_rcv_mss", "tcpi_advmss",
    "tcpi_unacked", "tcpi_sacked", "tcpi_rtt", "tcpi_rttvar", "tcpi_snd_ssthresh", "tcpi_snd_cwnd",
    "tcpi_reordering", "tcpi_total_retrans", "tcpi_bytes_received", "tcpi_segs_in", "tcpi_segs_out",
    "tcpi_last_data_recv",
})  # what tcp_info() returns


def _segments(nbytes: int, mss: int) -> int:
    return -(-nbytes // mss) if nbytes > 0 else 0


def tcp_info(conn: Connection, now: float) -> dict[str, int]:
    """The tcpi_* values ustack can give for `conn` at time `now`, read from its public state."""
    snd, rcv = conn.snd, conn.rcv
    mss = max(snd.mss, 1)
    cc = snd.cc
    cwnd = _segments(cc.cwnd, mss) if cc is not None else 10
    ssthresh = TCP_INFINITE_SSTHRESH
    if cc is not None and cc.ssthresh < (1 << 30):
        ssthresh = cc.ssthresh // mss
    data_out = snd.outstanding()
    if snd.fin_sent and data_out > 0 and snd.snd_max == ((snd.buf_end + 1) & 0xFFFFFFFF):
        data_out -= 1  # the FIN's sequence number is not a packet of data of its own
    sacked = sum((r - left) & 0xFFFFFFFF for left, r in snd.sacked)
    if snd.in_recovery:
        ca_state = TCP_CA_RECOVERY
    elif snd.rto_streak:
        ca_state = TCP_CA_LOSS
    elif snd.dupacks or snd.sacked:
        ca_state = TCP_CA_DISORDER
    else:
        ca_state = TCP_CA_OPEN
    options = ((TCPI_OPT_TIMESTAMPS if conn.ts_ok else 0) | (TCPI_OPT_SACK if conn.sack_ok else 0)
               | (TCPI_OPT_WSCALE if snd.wscale or rcv.wscale else 0))
    srtt = snd.srtt
    return {
        "tcpi_state": LINUX_STATE[conn.state],
        "tcpi_ca_state": ca_state,
        "tcpi_retransmits": snd.rto_streak,
        "tcpi_probes": conn.persist_unanswered + conn.keepalive_sent,
        "tcpi_backoff": snd.backoff,
        "tcpi_options": options,
        "tcpi_snd_wscale": snd.wscale,
        "tcpi_rcv_wscale": rcv.wscale,
        "tcpi_rto": int(snd.rto * 1e6),
        "tcpi_snd_mss": snd.mss,
        "tcpi_rcv_mss": rcv.mss,
        "tcpi_advmss": conn.our_mss - (12 if conn.ts_ok else 0),
        "tcpi_unacked": _segments(data_out, mss),
        "tcpi_sacked": _segments(sacked, mss),
        "tcpi_rtt": int(srtt * 1e6) if srtt is not None else 0,
        "tcpi_rttvar": int(snd.rttvar * 1e6),
        "tcpi_snd_ssthresh": ssthresh,
        "tcpi_snd_cwnd": cwnd,
        "tcpi_reordering": snd.dupthresh,
        "tcpi_total_retrans": snd.retransmits,
        "tcpi_bytes_received": rcv.delivered,
        "tcpi_segs_in": conn.segs_in,
        "tcpi_segs_out": conn.segs_out,
        "tcpi_last_data_recv": round((now - conn.last_data_at) * 1000),
    }
