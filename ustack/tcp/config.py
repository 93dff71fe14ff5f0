"""TCP tunables. Defaults follow Windows where Winsock behaviour depends on them (SYN timing,
data retries, keepalive), and Linux elsewhere (delayed ACK 40 ms, IW10, SACK/timestamps on)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TcpConfig:
    # buffers
    # Linux's autotuning ceilings (tcp_wmem[2] 4 MB, tcp_rmem[2] 6 MB): a long fat path needs
    # cwnd-sized buffers, or the window, not the congestion control, sets the pace
    sndbuf: int = 4 << 20
    rcvbuf: int = 6 << 20
    # options offered in our SYN
    window_scaling: bool = True
    sack: bool = True
    timestamps: bool = True
    mss: int | None = None  # None: interface MTU - 40
    wscale: int | None = None  # window scale we offer; None: the smallest that covers rcvbuf
    # connection establishment (Windows: initial SYN RTO 3 s, 2 retries -> fails after 21 s)
    syn_rto_s: float = 3.0
    syn_retries: int = 2
    synack_retries: int = 2
    syn_rst_retries: int = 0  # Windows retries SYN after RST (item 25); the Winsock layer sets this
    syn_rst_retry_s: float = 0.5
    # data transfer
    data_retries: int = 5  # Windows TcpMaxDataRetransmissions
    rto_initial_s: float = 1.0  # RFC 6298 2.1
    rto_min_s: float = 0.2
    rto_max_s: float = 60.0
    rto_min_on_variance: bool = False  # True: RTO = SRTT + max(4*RTTVAR, rto_min), as Linux
    nodelay: bool = False
    nagle_minshall: bool = True  # Nagle holds a small tail only behind an unacked small segment (Linux)
    delack_s: float = 0.040
    delack_segments: int = 2  # ACK at least every second full-sized segment (RFC 5681 4.2)...
    ack_stretch_segments: int = 32  # ...but within one receive batch, one ACK for up to this many
    quickack_segments: int = 16  # ACK each of the first data segments at once (Linux's quick ACKs)
    initial_cwnd_segments: int = 10  # RFC 6928
    abc_limit_segments: int = 0  # RFC 3465 L in slow start; 0: no limit, as Linux
    slow_start_after_idle: bool = True  # RFC 5681 4.1: restart cwnd after an RTO of silence
    congestion_control: str = "cubic"  # or "newreno"
    dupthresh: int = 3
    max_dupthresh: int = 10  # D-SACKs (spurious retransmissions) raise the threshold up to this
    tail_loss_probe: bool = True  # RFC 8985 TLP: probe a silent tail before the RTO fires
    tlp_min_s: float = 0.01  # floor of the probe timeout (PTO)
    tlp_extra_s: float = 0.0  # added to 2*SRTT when more than one segment is in flight
    persist_min_s: float = 0.2
    persist_max_s: float = 60.0
    ooo_max_segments: int = 1024  # out-of-order ranges held at most (also bounded by rcvbuf)
    # memory (docs/robustness.md "Memory and queues"): the receive and out-of-order queues of a
    # connection hold at most 2 * rcvbuf + 64 KB of true size; under the stack's memory
    # pressure (StackConfig.mem_pressure) the window offered is clamped to this many MSS
    pressure_window_segments: int = 4
    sack_max_blocks: int = 256  # SACK scoreboard entries at most (blocks beyond are ignored)
    # keepalive (Windows: 2 h idle, 1 s interval, 10 probes)
    keepalive: bool = False
    keepalive_idle_s: float = 7200.0
    keepalive_interval_s: float = 1.0
    keepalive_probes: int = 10
    # closing
    msl_s: float = 30.0  # TIME-WAIT lasts 2*MSL
    fin_wait2_s: float = 60.0  # orphaned FIN-WAIT-2 lifetime (application closed the socket)
    rfc1337: bool = True  # ignore RST in TIME-WAIT
    # data arriving after the application shut down receiving resets the connection (Windows);
    # False: it is still taken and acknowledged while ESTABLISHED (Linux resets only once it
    # has sent its FIN too)
    rst_after_shutdown_rd: bool = True
    # an ACK of data never sent (SEG.ACK > SND.NXT) is answered with an ACK (RFC 9293, RFC 5961
    # 5.2); False: dropped without a word, as Linux (tcp_ack: ACK_UNSENT_DATA)
    answer_ack_of_unsent: bool = True
    # listen
    max_backlog: int = 200  # Windows clamps SOMAXCONN to 200
    max_syn_backlog: int = 256  # half-open connections per listener, apart from the backlog
    syncookies: bool = True  # beyond max_syn_backlog: SYN cookies (RFC 4987); off: evict the oldest
    # RFC 5961 challenge ACKs per connection per second: a random budget in [limit/2, limit*3/2)
    # each second, like Linux's (which is per socket too since it dropped the host-wide limit)
    challenge_ack_limit: int = 10

    def __post_init__(self) -> None:
        if self.congestion_control not in ("cubic", "newreno"):
            raise ValueError(f"unknown congestion control {self.congestion_control!r} "
                             "(cubic or newreno)")
