"""ustack.winsock."""
