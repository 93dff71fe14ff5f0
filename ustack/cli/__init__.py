"""ustack.cli."""
