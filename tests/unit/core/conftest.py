"""Fixtures for the core unit tests (helpers live in corehelpers.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from corehelpers import assert_no_internal_error, make  # noqa: E402


@pytest.fixture
def stack():
    s = make()
    yield s
    assert_no_internal_error(s)


@pytest.fixture
def estack():
    s = make(medium="ethernet")
    yield s
    assert_no_internal_error(s)
