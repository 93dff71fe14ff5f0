from tcphelpers import PEER_ISS, Harness

from ustack.tcp import State


def test_active_open_and_data():
    h = Harness()
    s, c = h.established()
    assert s.state is State.ESTABLISHED
    assert s.send(b"hello", h.now) == 5
    h.expect_out(h.now, [dict(flags="P.", seq=c.iss + 1, ack=PEER_ISS + 1, payload=b"hello")])
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 6, payload=b"world"))
    assert s.recv(100) == b"world"
