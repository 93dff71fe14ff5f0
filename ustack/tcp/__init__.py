"""ustack.tcp."""
