"""Readiness events a stack socket reports to its watcher (bit flags, cheap to combine)."""

READ = 0x01  # data, EOF, or a datagram is available
WRITE = 0x02  # send buffer has room (and the connection is established)
OOB = 0x04
ACCEPT = 0x08  # a completed connection waits in the accept queue
CONNECT = 0x10  # a connect attempt finished (success or failure: check sock.error)
CLOSE = 0x20  # the peer closed (FIN) or the connection was reset/aborted
ERROR = 0x40  # a pending error was recorded (ICMP error on UDP, etc.)
