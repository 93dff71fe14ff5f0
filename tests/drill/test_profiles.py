"""TCP profiles are TcpConfig presets; the linux one is what packetdrill scripts assume."""

from __future__ import annotations

import pytest

from ustack import Simulator
from ustack.tcp import TcpConfig
from ustack.tcp.profiles import PROFILES, profile


def test_default_profile_is_the_tcpconfig_defaults():
    assert profile("default") == TcpConfig()


def test_linux_profile_values():
    cfg = profile("linux")
    assert (cfg.syn_rto_s, cfg.syn_retries, cfg.rto_min_s, cfg.initial_cwnd_segments) == (1.0, 5, 0.2, 10)
    assert (cfg.delack_s, cfg.wscale, cfg.rfc1337) == (0.040, 8, False)
    assert profile("linux", syn_retries=2).syn_retries == 2
    assert set(PROFILES) == {"default", "linux"}


def test_unknown_profile_or_field_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown TCP profile 'bsd'"):
        profile("bsd")
    with pytest.raises(ValueError, match="no field nonsense"):
        profile("linux", nonsense=1)


@pytest.mark.parametrize(("cfg", "want"), [(TcpConfig(rcvbuf=1 << 20), 5), (TcpConfig(), 7),
                                           (TcpConfig(wscale=8), 8)])
def test_offered_window_scale_follows_the_wscale_knob(cfg, want):
    """The SYN carries the configured scale; None keeps the one that covers rcvbuf (1 MB: 5,
    the default 6 MB: 7)."""
    sim = Simulator(seed=1)
    a = sim.add_host("198.18.0.2/24", tcp=cfg)
    b = sim.add_host("198.18.0.1/24")
    lst = b.call(b.stack.tcp.open)
    b.call(lst.bind, 0, 80)
    b.call(lst.listen, 4)
    s = a.call(a.stack.tcp.open)
    a.call(s.connect, b.stack.addr, 80, sim.now)
    sim.run_for(0.1)
    assert s.state.name == "ESTABLISHED"
    assert s.conn.rcv.wscale == want
