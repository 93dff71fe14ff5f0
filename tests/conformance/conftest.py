"""Fixtures for the conformance bench: `dut` (ustack or linux) and `bench`, in a private netns.

Every test runs against both DUTs unless it narrows `dut` with
`@pytest.mark.parametrize("dut", ["ustack"], indirect=True)`. Without a private netns the test
skips, or fails under CI=true (tests/netns.py); a ustack that does not import fails it.
"""

import pytest

from tests.conformance.bench import make_dut


@pytest.fixture(params=["ustack", "linux"])
def dut(request, netns):  # netns: this thread runs in a private namespace
    d, bench = make_dut(request.param)
    d.bench = bench
    try:
        yield d
    finally:
        try:
            bench.close()
        finally:
            d.close_all()


@pytest.fixture
def bench(dut):
    return dut.bench


@pytest.fixture(params=["ustack", "linux"])
def dut6(request, netns):  # noqa: F811 - IPv6 cases (bench6.py): the same two DUTs
    from tests.conformance.bench6 import make_dut6

    d, bench = make_dut6(request.param)
    d.bench = bench
    try:
        yield d
    finally:
        try:
            bench.close()
        finally:
            d.close()


@pytest.fixture
def bench6(dut6):
    return dut6.bench
