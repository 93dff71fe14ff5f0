"""PortTable: Windows bind semantics (winsock-behaviour items 11-15) and RFC 6056 ports."""

import random

import pytest

from ustack.core.errors import UsageError
from ustack.core.ports import PortTable
from ustack.core.reasons import Reason

A = 0xC6120002  # 198.18.0.2
LO = 0x7F000001


def table(low=49152, high=65535, seed=1):
    return PortTable(random.Random(seed), low, high)


def test_same_addr_port_twice_is_addr_in_use():
    t = table()
    t.bind(A, 80, "a")
    with pytest.raises(UsageError) as e:
        t.bind(A, 80, "b")
    assert e.value.reason is Reason.ADDR_IN_USE


def test_wildcard_twice_is_addr_in_use():
    t = table()
    t.bind(0, 80, "a")
    with pytest.raises(UsageError) as e:
        t.bind(0, 80, "b")
    assert e.value.reason is Reason.ADDR_IN_USE


def test_specific_and_wildcard_coexist_specific_wins():
    t = table()
    t.bind(0, 80, "wild")
    t.bind(LO, 80, "lo")
    assert t.lookup(LO, 80) == ["lo", "wild"]
    assert t.lookup(A, 80) == ["wild"]
    assert t.lookup(A, 81) == []


def test_reuse_only_on_newcomer_is_access():
    t = table()
    t.bind(A, 80, "a")
    with pytest.raises(UsageError) as e:
        t.bind(A, 80, "b", reuse=True)
    assert e.value.reason is Reason.ACCESS


def test_reuse_on_both_binds_both():
    t = table()
    t.bind(A, 80, "a", reuse=True)
    t.bind(A, 80, "b", reuse=True)
    assert t.lookup(A, 80) == ["a", "b"]


def test_exclusive_holder_blocks_even_reuse_and_other_addresses():
    t = table()
    t.bind(0, 80, "x", exclusive=True)
    for addr, reuse in ((0, True), (A, False), (A, True)):
        with pytest.raises(UsageError) as e:
            t.bind(addr, 80, "b", reuse=reuse)
        assert e.value.reason is Reason.ACCESS


def test_reuse_and_exclusive_together_invalid():
    with pytest.raises(UsageError) as e:
        table().bind(A, 80, "a", reuse=True, exclusive=True)
    assert e.value.reason is Reason.INVALID


def test_release_frees_the_port():
    t = table()
    b = t.bind(A, 80, "a")
    t.release(b)
    t.release(b)  # idempotent
    t.bind(A, 80, "b")
    assert t.lookup(A, 80) == ["b"]


def test_ephemeral_bind_random_in_range_and_collision_free():
    t = table(low=50000, high=50999)
    ports = [t.bind(0, 0, i).port for i in range(1000)]
    assert all(50000 <= p <= 50999 for p in ports)
    assert len(set(ports)) == 1000  # every port of the range, none twice
    assert ports[:20] != sorted(ports[:20])  # randomized, not sequential
    with pytest.raises(UsageError) as e:
        t.bind(0, 0, "one too many")
    assert e.value.reason is Reason.ADDR_IN_USE


def test_ephemeral_bind_differs_per_seed():
    a = [table(seed=1).bind(0, 0, "x").port for _ in range(1)]
    b = [table(seed=2).bind(0, 0, "x").port for _ in range(1)]
    assert a != b


def test_connect_port_alg3_consecutive_ports_for_same_destination():
    t = table()
    p1 = t.connect_port(A, LO, 80)
    p2 = t.connect_port(A, LO, 80)
    # algorithm 3: same offset, counter +1 -> the next port (mod the range)
    assert (p2 - t.low) == ((p1 - t.low) + 1) % (t.high - t.low + 1)


def test_connect_port_different_destinations_spread():
    t = table()
    ports = {t.connect_port(A, 0xC6120000 + i, 80) for i in range(50)}
    assert len(ports) > 40
    assert all(t.low <= p <= t.high for p in ports)


def test_connect_port_skips_explicit_binds_and_in_use():
    t = table(low=60000, high=60009)
    t.bind(0, 60000, "w")
    t.bind(A, 60001, "a")
    t.bind(0xC6120009, 60002, "other addr")  # a different specific address does not block A
    taken = {60003, 60004}
    got = set()
    for _ in range(6):
        p = t.connect_port(A, LO, 80, lambda port: port in taken or port in got)
        got.add(p)
    assert got == {60002, 60005, 60006, 60007, 60008, 60009}
    with pytest.raises(UsageError) as e:
        t.connect_port(A, LO, 80, lambda port: port in taken or port in got)
    assert e.value.reason is Reason.ADDR_IN_USE


def test_claim_conflicts_with_explicit_bind_but_not_connections():
    t = table()
    t.claim(A, 50000, "c1")
    t.claim(A, 50000, "c2")  # two connections sharing a local port: 4-tuples differ
    with pytest.raises(UsageError) as e:
        t.bind(A, 50000, "explicit")
    assert e.value.reason is Reason.ADDR_IN_USE
    t.bind(0, 50001, "w")
    with pytest.raises(UsageError):
        t.claim(A, 50001, "c3")
    assert t.lookup(A, 50000) == []  # connections are not demuxed through lookup


def test_wildcard_bind_on_a_connections_port_is_addr_in_use():
    # Windows: a port a connection uses on A (claimed at connect) cannot be bound through 0.0.0.0
    t = table()
    c = t.claim(A, 50000, "conn")
    for addr in (0, A):
        with pytest.raises(UsageError) as e:
            t.bind(addr, 50000, "b")
        assert e.value.reason is Reason.ADDR_IN_USE
    t.bind(LO, 50000, "lo")  # another specific address does not overlap the connection's
    t.release(c)
    t.bind(0, 50000, "w")  # free again once the connection is gone


def test_reuse_newcomer_on_a_connections_port_is_access():
    # the connection's socket never set SO_REUSEADDR: item 14's rule, wildcard or specific
    t = table()
    t.claim(A, 50000, "conn")
    for addr in (0, A):
        with pytest.raises(UsageError) as e:
            t.bind(addr, 50000, "b", reuse=True)
        assert e.value.reason is Reason.ACCESS
        with pytest.raises(UsageError) as e:
            t.bind(addr, 50000, "b", exclusive=True)
        assert e.value.reason is Reason.ADDR_IN_USE


def test_explicit_specific_and_wildcard_binds_still_coexist_beside_connections():
    # item 13 is about explicit binds: it still holds, in either order, on a port nobody connects
    t = table()
    t.bind(A, 50001, "spec")
    t.bind(0, 50001, "wild")
    t.bind(LO, 50001, "lo")
    assert t.lookup(A, 50001) == ["spec", "wild"]
    t.claim(A, 50002, "conn")
    t.claim(A, 50002, "conn2")  # connections still share a local port (their 4-tuples differ)
