"""The folding checksum against the word-by-word RFC 1071 reference, and against scapy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wire_strategies import u32, wire_settings

from ustack.wire.checksum import (
    SPLIT_ABOVE,
    fold,
    internet_checksum,
    ones_sum,
    pseudo_sum,
    reference_checksum,
    verify,
    wide_sum,
)

data_strategy = st.one_of(
    st.binary(max_size=300),
    st.binary(min_size=1, max_size=9),  # short and odd lengths
    st.binary(min_size=500, max_size=1600),  # past wide_sum's split threshold (512)
    st.integers(509, 530).map(lambda n: b"\xff" * n),
    st.integers(0, 64).map(lambda n: b"\xff" * n),
    st.integers(0, 64).map(lambda n: b"\x00" * n),
)


@wire_settings
@given(data_strategy, st.integers(0, 3 * 0xFFFFFFFF + 0xFFFF))
def test_fold_matches_reference(data: bytes, initial: int) -> None:
    assert internet_checksum(data, initial) == reference_checksum(data, initial)
    assert internet_checksum(memoryview(data), initial) == reference_checksum(data, initial)
    assert internet_checksum(bytearray(data), initial) == reference_checksum(data, initial)


@pytest.mark.parametrize("n", [*range(SPLIT_ABOVE - 3, SPLIT_ABOVE + 12), 1459, 1460, 1461, 9001, 65535])
def test_wide_sum_split_boundaries(n: int) -> None:
    data = bytes((i * 37 + 11) & 0xFF for i in range(n))
    assert ~fold(wide_sum(data)) & 0xFFFF == reference_checksum(data)
    assert wide_sum(memoryview(data)) == wide_sum(data)
    assert wide_sum(data) % 0xFFFF == (int.from_bytes(data + b"\0" * (n & 1), "big")) % 0xFFFF
    assert wide_sum(bytes(n)) == 0


@wire_settings
@given(data_strategy, u32, u32)
def test_checksum_then_verify(data: bytes, src: int, dst: int) -> None:
    # append the checksum as a trailing word (on an even-length body) and the whole must verify
    if len(data) & 1:
        data += b"\0"
    initial = pseudo_sum(src, dst, 6, len(data) + 2)
    c = internet_checksum(data, initial)
    assert verify(data + c.to_bytes(2, "big"), initial)
    if data.strip(b"\0") or initial:
        # a one-bit error anywhere is always caught
        corrupt = bytes([data[0] ^ 0x01]) + data[1:] if data else b""
        if corrupt:
            assert not verify(corrupt + c.to_bytes(2, "big"), initial)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0xFFFF),
        (b"\x00\x00", 0xFFFF),
        (b"\xff\xff", 0x0000),  # sum is "negative zero": checksum 0
        (b"\xff\xff" * 7, 0x0000),
        (b"\xff", 0x00FF),  # odd: padded to 0xff00
        (b"\x00\x01\xf2\x03\xf4\xf5\xf6\xf7", 0x220D),  # RFC 1071 section 3 example (sum 0xddf2)
    ],
)
def test_edge_cases(data: bytes, expected: int) -> None:
    assert internet_checksum(data) == expected
    assert reference_checksum(data) == expected


def test_negative_zero_is_all_ones() -> None:
    # a nonzero sum congruent to 0 mod 0xffff is 0xffff (word addition never yields 0 from nonzero)
    assert ones_sum(b"\xff\xff") == 0xFFFF
    assert ones_sum(b"\x00\x00") == 0
    assert fold(0) == 0 and fold(0xFFFF) == 0xFFFF and fold(0x1FFFE) == 0xFFFF
    assert ones_sum(b"\x80\x00\x80\x00") == 0x0001  # end-around carry


def test_pseudo_sum_equals_packed_pseudo_header() -> None:
    src, dst = 0xC6120001, 0xC6120002
    packed = src.to_bytes(4, "big") + dst.to_bytes(4, "big") + bytes((0, 17)) + (1234).to_bytes(2, "big")
    assert internet_checksum(b"", pseudo_sum(src, dst, 17, 1234)) == reference_checksum(packed)


@wire_settings
@given(st.binary(max_size=200))
def test_internet_checksum_matches_scapy(data: bytes) -> None:
    from scapy.utils import checksum as scapy_checksum

    assert internet_checksum(data) == scapy_checksum(data)
