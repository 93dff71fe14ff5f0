"""Section A of the reference: constants carry Winsock's real values."""

from __future__ import annotations

import ctypes

import ustack.winsock as W
from ustack.winsock import WSAGETSELECTERROR, WSAGETSELECTEVENT, WSAMAKESELECTREPLY


def test_item_1_error_codes_have_winsock_values() -> None:
    """Error codes carry their Winsock numbers (WSAEINTR 10004 ... WSA_IO_PENDING 997)."""
    expected = {
        "WSAEINTR": 10004, "WSAEBADF": 10009, "WSAEACCES": 10013, "WSAEFAULT": 10014,
        "WSAEINVAL": 10022, "WSAEMFILE": 10024, "WSAEWOULDBLOCK": 10035, "WSAEINPROGRESS": 10036,
        "WSAEALREADY": 10037, "WSAENOTSOCK": 10038, "WSAEDESTADDRREQ": 10039, "WSAEMSGSIZE": 10040,
        "WSAEPROTOTYPE": 10041, "WSAENOPROTOOPT": 10042, "WSAEPROTONOSUPPORT": 10043,
        "WSAESOCKTNOSUPPORT": 10044, "WSAEOPNOTSUPP": 10045, "WSAEAFNOSUPPORT": 10047,
        "WSAEADDRINUSE": 10048, "WSAEADDRNOTAVAIL": 10049, "WSAENETDOWN": 10050,
        "WSAENETUNREACH": 10051, "WSAENETRESET": 10052, "WSAECONNABORTED": 10053,
        "WSAECONNRESET": 10054, "WSAENOBUFS": 10055, "WSAEISCONN": 10056, "WSAENOTCONN": 10057,
        "WSAESHUTDOWN": 10058, "WSAETIMEDOUT": 10060, "WSAECONNREFUSED": 10061,
        "WSAEHOSTDOWN": 10064, "WSAEHOSTUNREACH": 10065, "WSANOTINITIALISED": 10093,
        "WSATRY_AGAIN": 11002, "WSA_IO_PENDING": 997,
    }
    for name, value in expected.items():
        assert getattr(W, name) == value, name
    assert W.wsa_name(10061) == "WSAECONNREFUSED"


def test_item_2_socket_error_and_invalid_socket() -> None:
    """SOCKET_ERROR is -1; INVALID_SOCKET is all bits set at 64-bit pointer width."""
    assert W.SOCKET_ERROR == -1
    assert W.INVALID_SOCKET == 2**64 - 1 == ctypes.c_uint64(~0).value


def test_item_3_fd_bits() -> None:
    """FD_* event bits are 1 << index for the ten indices; FD_MAX_EVENTS is 10."""
    names = ["READ", "WRITE", "OOB", "ACCEPT", "CONNECT", "CLOSE", "QOS", "GROUP_QOS",
             "ROUTING_INTERFACE_CHANGE", "ADDRESS_LIST_CHANGE"]
    for i, n in enumerate(names):
        assert getattr(W, f"FD_{n}_BIT") == i
        assert getattr(W, f"FD_{n}") == 1 << i
    assert (W.FD_READ, W.FD_CONNECT, W.FD_CLOSE, W.FD_ADDRESS_LIST_CHANGE) == (0x01, 0x10, 0x20, 0x200)
    assert W.FD_MAX_EVENTS == 10


def test_item_4_wait_constants() -> None:
    """WSAWaitForMultipleEvents constants have their Windows values."""
    assert (W.WSA_WAIT_EVENT_0, W.WSA_WAIT_IO_COMPLETION, W.WSA_WAIT_TIMEOUT) == (0, 0xC0, 258)
    assert W.WSA_WAIT_FAILED == W.WSA_INFINITE == 0xFFFFFFFF
    assert (W.WSA_MAXIMUM_WAIT_EVENTS, W.WSA_INVALID_HANDLE, W.WSA_INVALID_PARAMETER) == (64, 6, 87)


def test_item_5_async_select_lparam_packing() -> None:
    """The WSAAsyncSelect lParam packs event in the low word, error in the high word."""
    lp = WSAMAKESELECTREPLY(W.FD_CONNECT, W.WSAECONNREFUSED)
    assert lp == 0x274D0010
    assert WSAGETSELECTEVENT(lp) == W.FD_CONNECT
    assert WSAGETSELECTERROR(lp) == 10061


def test_item_6_ioctl_and_option_numbers() -> None:
    """ioctl codes and option numbers are Winsock's (FIONBIO 0x8004667E, SO_EXCLUSIVEADDRUSE =
    ~SO_REUSEADDR, ...)."""
    assert W.FIONBIO == 0x8004667E and W.SIO_UDP_CONNRESET == 0x9800000C
    assert W.SOMAXCONN == 0x7FFFFFFF and W.SOL_SOCKET == 0xFFFF and W.SO_ERROR == 0x1007
    assert W.SO_EXCLUSIVEADDRUSE == ~W.SO_REUSEADDR == -5
    got = (W.SO_REUSEADDR, W.SO_BROADCAST, W.SO_LINGER, W.SO_SNDBUF, W.SO_RCVBUF)
    assert got == (4, 0x20, 0x80, 0x1001, 0x1002)
    assert (W.SO_TYPE, W.SO_ACCEPTCONN, W.TCP_NODELAY, W.IPPROTO_TCP) == (0x1008, 2, 1, 6)


def test_item_6_sockaddr_in_layout_and_byte_order_helpers() -> None:
    """SOCKADDR_IN is 16 bytes in Windows layout; htons/inet_addr/inet_ntoa behave as on Windows."""
    s = W.SOCKADDR_IN.make("198.18.0.1", 80)
    assert ctypes.sizeof(s) == 16
    # 64-bit Windows sizes (LONG and u_long are 32 bits there, whatever the host's C long is)
    assert ctypes.sizeof(W.TIMEVAL) == 8 and ctypes.sizeof(W.LINGER) == 4
    assert ctypes.sizeof(W.WSANETWORKEVENTS) == 44 and W.WSANETWORKEVENTS.iErrorCode.offset == 4
    assert ctypes.sizeof(W.WSADATA) == 408 and W.WSADATA.szDescription.offset == 16
    assert ctypes.sizeof(W.u_long) == 4 and ctypes.sizeof(W.IN_ADDR) == 4
    assert bytes(s) == bytes.fromhex("0200" "0050" "c6120001") + bytes(8)
    assert W.htons(0x1234) == 0x3412 and W.ntohs(0x3412) == 0x1234
    assert W.htonl(0x01020304) == 0x04030201 and W.ntohl(0x04030201) == 0x01020304
    assert W.inet_addr("198.18.0.1") == s.sin_addr.S_addr
    assert W.inet_ntoa(s.sin_addr) == "198.18.0.1"
    assert W.inet_addr("bogus") == W.INADDR_NONE
    assert W.inet_ntoa(W.inet_addr("0x7f.1")) == "127.0.0.1"  # BSD short forms


def test_reason_table_covers_every_reason() -> None:
    """errors.py maps every core Reason to a WSA code, with the quirks in one place."""
    from ustack.core.reasons import Reason
    from ustack.winsock import errors as E

    assert set(E.REASON_TO_WSA) == set(Reason)
    assert E.connect_error(Reason.ALREADY, version=(1, 1), was_bound=True) == W.WSAEINVAL
    assert E.connect_error(Reason.ALREADY, version=(2, 2), was_bound=True) == W.WSAEALREADY
    assert E.connect_error(Reason.ADDR_IN_USE, version=(2, 2), was_bound=False) == W.WSAENOBUFS
    assert E.connect_error(Reason.ADDR_IN_USE, version=(2, 2), was_bound=True) == W.WSAEADDRINUSE
    assert E.fd_close_error(None) == 0
    assert E.fd_close_error(Reason.RESET) == W.WSAECONNABORTED
    assert E.broken_error(Reason.KEEPALIVE_FAILED) == W.WSAENETRESET
    assert E.broken_error(Reason.TIMED_OUT) == W.WSAECONNABORTED
    assert E.fd_close_error(Reason.KEEPALIVE_FAILED) == W.WSAECONNABORTED
    assert E.wsa_code(Reason.PORT_UNREACH) == W.WSAECONNRESET


def test_winsock_error_posix_mapping() -> None:
    """WinsockError maps every WSAE code to a POSIX errno and picks the matching OSError subclass."""
    import errno

    from ustack.winsock.errors import WSA_NAMES, WinsockError

    for code, name in WSA_NAMES.items():
        if name.startswith("WSAE"):
            e = WinsockError(code)
            assert e.winerror == code and e.wsa_name == name and e.errno != errno.EIO, name
    assert isinstance(WinsockError(W.WSAETIMEDOUT), TimeoutError)
    assert isinstance(WinsockError(W.WSAECONNRESET), ConnectionResetError)
    assert isinstance(WinsockError(W.WSAEWOULDBLOCK), BlockingIOError)
