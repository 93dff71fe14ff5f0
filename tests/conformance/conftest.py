"""Fixtures for the conformance bench: `dut` (ustack or linux) and `bench`, in a private netns.

Every test runs against both DUTs unless it narrows `dut` with
`@pytest.mark.parametrize("dut", ["ustack"], indirect=True)`. Without a private netns the test
skips, or fails under CI=true (tests/netns.py); a ustack that does not import fails it.
"""

import sys
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.conformance.bench import make_dut  # noqa: E402
from tests.netns import (  # noqa: E402, F401
    netns,
    pytest_collection_modifyitems,
    pytest_runtest_setup,
    skip_or_fail,
)


@pytest.fixture(params=["ustack", "linux"])
def dut(request, netns):  # noqa: F811 - the netns fixture moves this thread into a private namespace
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
