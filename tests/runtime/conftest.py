"""Runtime tests: the netns fixture and hooks from tests/netns.py (private namespace per test;
fails instead of skipping under CI=true)."""

from tests.netns import (  # noqa: F401
    netns,
    pytest_collection_modifyitems,
    pytest_runtest_setup,
)
