"""RFC 5961 challenge ACKs are limited per connection with a random budget each second (as Linux
does since it dropped the host-wide limit of CVE-2016-5696): one connection's challenges neither
use up another's budget nor show through it to an off-path observer."""

from __future__ import annotations

from tcphelpers import PEER_ISS, REMOTE, RPORT, Harness, seg

from ustack.wire.tcp import ACK


def two_connections(**cfg):
    """A victim and an observer connection on one stack (the observer's is the attacker's own)."""
    h = Harness(seed=5, **cfg)
    ports = []
    for rport in (RPORT, RPORT + 1):
        s = h.socket()
        s.connect(REMOTE, rport, h.now)
        syn = h.take()[0]
        h.peer_sends(h.now, seg("S.", PEER_ISS, syn.seq + 1, sport=rport, dport=syn.sport))
        h.take()
        ports.append((rport, syn.sport))
    return h, ports


def observe(spoof: bool, seconds: int = 6, **cfg) -> tuple[list[int], list[int]]:
    """Each second: (maybe) 500 spoofed in-window RSTs hit the victim, then the observer sends 200
    in-window RSTs on its own connection and counts the challenge ACKs it gets back."""
    h, ((v_rport, v_lport), (o_rport, o_lport)) = two_connections(**cfg)
    seen, victim = [], []
    for sec in range(seconds):
        t = 1.0 + sec
        if spoof:
            for i in range(500):
                h.peer_sends(t, seg("R", PEER_ISS + 2 + i, 0, sport=v_rport, dport=v_lport))
        victim.append(sum(1 for g in h.take() if g.dport == v_rport and g.flags == ACK))
        for i in range(200):
            h.peer_sends(t + 0.5, seg("R", PEER_ISS + 2 + i, 0, sport=o_rport, dport=o_lport))
        seen.append(sum(1 for g in h.take() if g.dport == o_rport and g.flags == ACK))
    h.assert_no_internal_error()
    return seen, victim


def test_off_path_observer_learns_nothing_from_counting_challenge_acks():
    quiet, _ = observe(spoof=False)
    attacked, victim = observe(spoof=True)
    assert attacked == quiet  # exactly the same counts, second by second
    assert all(v > 0 for v in victim)  # the victim did send (limited) challenge ACKs meanwhile
    assert all(n > 0 for n in quiet)


def test_budget_is_random_each_second_around_the_limit():
    seen, _ = observe(spoof=False, seconds=40, challenge_ack_limit=10)
    assert all(5 <= n <= 14 for n in seen), seen  # Linux's range: [limit/2, limit*3/2)
    assert len(set(seen)) >= 4, seen  # not a fixed number an observer could calibrate against


def test_budgets_differ_between_connections():
    h, ((v_rport, v_lport), (o_rport, o_lport)) = two_connections(challenge_ack_limit=10)
    counts = {v_rport: [], o_rport: []}
    for sec in range(20):
        for rport, lport in ((v_rport, v_lport), (o_rport, o_lport)):
            for i in range(50):
                h.peer_sends(1.0 + sec, seg("R", PEER_ISS + 2 + i, 0, sport=rport, dport=lport))
            counts[rport].append(sum(1 for g in h.take() if g.flags == ACK))
    assert counts[v_rport] != counts[o_rport]
