"""The bounded SACK scoreboard (tcp/sender.py): the same answers as a byte-by-byte model, and
bounded against a receiver that SACKs single bytes (the CVE-2019-11478 class)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tcphelpers import PEER_ISS, Harness

from ustack.core.counters import Counters
from ustack.tcp.sender import SACK_SMALL_FREE, Sender
from ustack.wire.tcp import TcpOptions

MASK = 0xFFFFFFFF


def sender(una: int, top: int, mss: int = 100, sack_max: int = 256, counters=None) -> Sender:
    snd = Sender(una - 1, 1 << 20, 1.0, 0.2, 60.0, sack_max=sack_max,
                 count=counters.inc if counters is not None else None)
    snd.snd_una = una
    snd.snd_max = snd.snd_nxt = top & MASK
    snd.mss = mss
    return snd


def model_ranges(marked: set[int], una: int) -> list[list[int]]:
    out: list[list[int]] = []
    for off in sorted(marked):
        if out and out[-1][1] == off:
            out[-1][1] = off + 1
        else:
            out.append([off, off + 1])
    return [[(una + a) & MASK, (una + b) & MASK] for a, b in out]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, MASK), st.lists(st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 400)),
                                               max_size=4), max_size=30),
       st.lists(st.integers(0, 200), max_size=5))
def test_scoreboard_matches_a_byte_model(una, acks, advances):
    """With room enough and full-size blocks, the board is exactly the set of SACKed bytes; pipe,
    lost_end, skip_sacked agree with a recount (sequence numbers wrap)."""
    snd = sender(una, una + 3000, mss=1)
    marked: set[int] = set()
    adv = list(advances)
    for blocks in acks:
        seq_blocks = tuple(((una + a) & MASK, (una + a + n) & MASK) for a, n in blocks)
        snd.add_sack(seq_blocks)
        for a, n in blocks:
            if a + n <= 3000:  # a block beyond SND.MAX is ignored whole
                marked.update(range(a, a + n))
        if adv:
            step = adv.pop()
            base = (snd.snd_una - una) & MASK
            if base + step <= 3000:
                snd.ack_data((snd.snd_una + step) & MASK)
                marked = {o for o in marked if o >= base + step}
        base = (snd.snd_una - una) & MASK
        want = model_ranges({o for o in marked if o >= base}, una)
        assert snd.sacked == want
        assert snd.sacked_bytes() == len([o for o in marked if o >= base])
        # skip_sacked from every offset agrees with the model
        for off in range(base, 3000, 97):
            s = (una + off) & MASK
            got, nxt = snd.skip_sacked(s)
            o = off
            while o in marked:
                o += 1
            assert got == (una + o) & MASK
            later = [m for m in sorted(marked) if m > o]
            assert nxt == ((una + later[0]) & MASK if later else None)
            # unsacked bytes below s
            assert snd._unsacked_between(snd.snd_una, s) == sum(
                1 for x in range(base, off) if x not in marked)


def test_one_byte_sack_flood_is_bounded_and_counted():
    c = Counters()
    snd = sender(1, 1 + 2_000_000, mss=1448, counters=c)
    blocks = [(1 + 2 * i + 100, 1 + 2 * i + 101) for i in range(30_000)]  # 1-byte islands
    for k in range(0, len(blocks), 4):
        snd.add_sack(tuple(blocks[k:k + 4]))
        assert len(snd.sacked) <= SACK_SMALL_FREE
    assert c.get("tcp.sack_small_ignored") == 30_000 - SACK_SMALL_FREE


def test_full_segment_blocks_capped_by_sack_max():
    c = Counters()
    snd = sender(1, 1 + 10_000_000, mss=100, sack_max=50, counters=c)
    for i in range(200):  # full-size blocks with 1-byte holes between
        snd.add_sack(((1 + 101 * i + 1, 1 + 101 * i + 101),))
    assert len(snd.sacked) == 50
    assert c.get("tcp.sack_board_full") == 150
    # merging with what is held still works when full
    assert snd.add_sack(((1 + 1, 1 + 101 * 10),))
    assert len(snd.sacked) == 41


def test_sub_mss_block_reaching_snd_max_is_kept():
    snd = sender(1, 100_001, mss=1000)
    for i in range(SACK_SMALL_FREE):
        snd.add_sack(((1 + 2000 * (i + 1), 1 + 2000 * (i + 1) + 1000),))
    assert snd.add_sack(((100_001 - 10, 100_001),))  # the tail segment, shorter than an MSS
    assert snd.sacked[-1] == [100_001 - 10, 100_001]


def test_sack_flood_against_a_connection_keeps_it_working():
    """A peer acknowledging 1-byte SACK islands across 1 MB in flight: the board stays within
    its bounds, nothing breaks, and a cumulative ACK finishes the transfer."""
    h = Harness(sack=True, sndbuf=1 << 21, window_scaling=True, initial_cwnd_segments=2000)
    s, c = h.established(options=TcpOptions(mss=1000, sack_perm=True, wscale=7), window=65535)
    base = c.iss + 1
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, base, window=65535))  # 8 MB, scaled
    s.send(bytes(1_000_000), 1.0)
    h.out(1.0)
    top = c.snd.snd_max
    assert (top - base) & MASK == 1_000_000
    k = 0
    while (base + 2 * k + 2001 - top) & MASK >= 0x80000000 and k < 40_000:
        blocks = tuple(((base + 2 * (k + j) + 2000) & MASK, (base + 2 * (k + j) + 2001) & MASK)
                       for j in range(4))
        h.peer_sends(1.01, h.pseg(".", PEER_ISS + 1, base, window=65535,
                                  options=TcpOptions(sack=blocks)))
        k += 4
    assert k >= 40_000 or (base + 2 * k + 2001 - top) & MASK < 0x80000000
    assert len(c.snd.sacked) <= SACK_SMALL_FREE
    assert h.stack.counters.get("tcp.sack_small_ignored") >= k - SACK_SMALL_FREE
    h.peer_sends(1.5, h.pseg(".", PEER_ISS + 1, top, window=65535))
    assert c.snd.snd_una == top and not c.snd.sacked and c.snd.sacked_bytes() == 0
    assert h.stack.counters.get("tcp.internal_error") == 0
