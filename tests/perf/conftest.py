"""Benchmark smoke tests: the shared netns helper lives in tests/netns.py."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.netns import netns, pytest_collection_modifyitems, pytest_runtest_setup  # noqa: E402, F401
