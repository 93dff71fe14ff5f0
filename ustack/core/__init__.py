"""ustack.core."""
