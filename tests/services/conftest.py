"""Service tests: the netns fixture and hooks (private namespace per test; fails instead of
skipping under CI=true) for the dnsmasq tests."""

from tests.netns import (  # noqa: F401
    netns,
    pytest_collection_modifyitems,
    pytest_runtest_setup,
)
