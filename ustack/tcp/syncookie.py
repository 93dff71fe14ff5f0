"""SYN cookies (RFC 4987 3.6), laid out as Linux lays them out (net/ipv4/syncookies.c).

When a listener's SYN queue is full, the SYN-ACK's ISN carries what the handshake must remember,
and nothing is stored:

    ISN = H0(4-tuple) + peer ISN + (minute << 24) + ((H1(4-tuple, minute) + mss_index) mod 2**24)

H0, H1 are keyed hashes (BLAKE2s, secrets from the stack's RNG) of the 4-tuple (over IPv6 with
the 128-bit addresses, as Linux's cookie_v6_init_sequence hashes them); `minute` counts 60 s of `now`;
`mss_index` picks the largest entry of MSS_TABLE not above the peer's MSS. The final ACK
acknowledges ISN + 1: subtracting H0 and the peer's ISN gives the minute (accepted when this or
the previous one, MAX_AGE), and then H1 must leave an index below 4 in the low 24 bits.

The peer's other SYN options travel in the low 6 bits of our millisecond clock, to which the
connection's timestamp offset (a keyed hash of the 4-tuple, `ts_offset`) is then added, giving
the SYN-ACK's TSval; the peer echoes it in every TSecr: window scale (4 bits, 0xF = none), SACK
(bit 4), ECN (bit 5). Without timestamps they cannot travel, so a cookie SYN-ACK then offers
neither window scaling nor SACK.
"""

from __future__ import annotations

import hashlib
import struct
from typing import NamedTuple

from ..core.family import is_ipv6

MSS_TABLE = (536, 1300, 1440, 1460)  # Linux's msstab: common MSS values, 2 bits in the cookie
MAX_AGE = 2  # minutes a cookie stays valid (this minute and the one before)
COOKIE_BITS = 24
COOKIE_MASK = (1 << COOKIE_BITS) - 1
TS_BITS = 6
TS_MASK = (1 << TS_BITS) - 1
TS_WSCALE_NONE = 0xF
TS_SACK = 1 << 4
TS_ECN = 1 << 5

_TUPLE = struct.Struct("!IHIHI")
_TUPLE6 = struct.Struct("!16sH16sHI")  # the IPv6 variant: 128-bit addresses in the hash input


class CookieOptions(NamedTuple):
    """The peer's SYN options as recovered from the echoed timestamp."""

    wscale: int | None
    sack: bool
    ecn: bool


class SynCookies:
    """Makes and checks cookies for one TCP layer. Stateless apart from its secrets."""

    __slots__ = ("_keys",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 48:
            raise ValueError("SYN cookie secret must be at least 48 bytes")
        self._keys = (secret[:16], secret[16:32], secret[32:48])

    def _hash(self, which: int, laddr: int, lport: int, raddr: int, rport: int, count: int) -> int:
        if is_ipv6(raddr):
            data = _TUPLE6.pack(laddr.to_bytes(16, "big"), lport, raddr.to_bytes(16, "big"), rport,
                                count & 0xFFFFFFFF)
        else:
            data = _TUPLE.pack(laddr, lport, raddr, rport, count & 0xFFFFFFFF)
        h = hashlib.blake2s(data, key=self._keys[which], digest_size=4)
        return int.from_bytes(h.digest(), "big")

    @staticmethod
    def minute(now: float) -> int:
        return int(now // 60)

    @staticmethod
    def mss_index(peer_mss: int) -> int:
        i = len(MSS_TABLE) - 1
        while i and peer_mss < MSS_TABLE[i]:
            i -= 1
        return i

    def isn(self, laddr: int, lport: int, raddr: int, rport: int, peer_isn: int, peer_mss: int,
            now: float) -> int:
        """The cookie to use as our ISN in the SYN-ACK."""
        count = self.minute(now)
        data = self.mss_index(peer_mss)
        return (self._hash(0, laddr, lport, raddr, rport, 0) + peer_isn + (count << COOKIE_BITS)
                + ((self._hash(1, laddr, lport, raddr, rport, count) + data) & COOKIE_MASK)) & 0xFFFFFFFF

    def check(self, laddr: int, lport: int, raddr: int, rport: int, peer_isn: int, cookie: int,
              now: float) -> int | None:
        """The peer's MSS (a MSS_TABLE value) when `cookie` (SEG.ACK - 1 of the final ACK, whose
        SEG.SEQ - 1 is `peer_isn`) is one of ours and fresh; None otherwise."""
        count = self.minute(now)
        rest = (cookie - self._hash(0, laddr, lport, raddr, rport, 0) - peer_isn) & 0xFFFFFFFF
        age = (count - (rest >> COOKIE_BITS)) & (0xFFFFFFFF >> COOKIE_BITS)
        if age >= MAX_AGE:
            return None
        data = (rest - self._hash(1, laddr, lport, raddr, rport, count - age)) & COOKIE_MASK
        return MSS_TABLE[data] if data < len(MSS_TABLE) else None

    def ts_offset(self, laddr: int, lport: int, raddr: int, rport: int) -> int:
        """The timestamp clock offset of a cookie connection: a keyed hash of the 4-tuple (like
        Linux's ts_off), so the connection made from the final ACK continues the SYN-ACK's clock."""
        return self._hash(2, laddr, lport, raddr, rport, 0)


def encode_ts(tsval: int, options: CookieOptions) -> int:
    """Our SYN-ACK's TSval: the clock `tsval` with its low 6 bits replaced by the options, never
    ahead of the clock (the next segments' TSvals must not go backwards)."""
    bits = (TS_WSCALE_NONE if options.wscale is None else options.wscale)
    bits |= (TS_SACK if options.sack else 0) | (TS_ECN if options.ecn else 0)
    ts = (tsval & ~TS_MASK & 0xFFFFFFFF) | bits
    if (ts - tsval) & 0xFFFFFFFF and ((ts - tsval) & 0xFFFFFFFF) < 0x80000000:  # ts after tsval
        ts = (ts - (1 << TS_BITS)) & 0xFFFFFFFF
    return ts


def decode_ts(tsecr: int) -> CookieOptions:
    """The options from the echoed TSval (4 bits hold scales 0-14, or 0xF for none)."""
    ws = tsecr & TS_WSCALE_NONE
    return CookieOptions(None if ws == TS_WSCALE_NONE else ws, bool(tsecr & TS_SACK),
                         bool(tsecr & TS_ECN))
