"""ustack.runtime."""
