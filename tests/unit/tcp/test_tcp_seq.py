"""Sequence arithmetic modulo 2**32 (RFC 9293 3.4)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from ustack.tcp import seq

u32 = st.integers(0, 2**32 - 1)
step = st.integers(1, 2**31 - 1)


def test_wrap_examples():
    assert seq.lt(0xFFFFFFFF, 0) and seq.gt(0, 0xFFFFFFFF)
    assert seq.add(0xFFFFFFFF, 2) == 1
    assert seq.diff(1, 0xFFFFFFFF) == 2 and seq.diff(0xFFFFFFFF, 1) == -2
    assert seq.smax(0xFFFFFFF0, 5) == 5 and seq.smin(0xFFFFFFF0, 5) == 0xFFFFFFF0
    assert seq.in_window(3, 0xFFFFFFFE, 10) and not seq.in_window(9, 0xFFFFFFFE, 10)
    assert seq.le(7, 7) and seq.ge(7, 7) and not seq.lt(7, 7) and not seq.gt(7, 7)


@settings(max_examples=200)
@given(u32, step)
def test_order_is_consistent_across_wrap(a, n):
    b = seq.add(a, n)
    assert seq.lt(a, b) and seq.le(a, b) and seq.gt(b, a) and seq.ge(b, a)
    assert not seq.lt(b, a) and not seq.gt(a, b)
    assert seq.diff(b, a) == n and seq.diff(a, b) == -n
    assert seq.smax(a, b) == b and seq.smin(a, b) == a


@settings(max_examples=200)
@given(u32, st.integers(0, 2**31), st.integers(0, 2**31))
def test_in_window(lo, off, size):
    assert seq.in_window(seq.add(lo, off), lo, size) == (off < size)
