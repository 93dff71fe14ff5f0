"""Fixtures for the compat tests: unmodified-program sockets on ustack.

`sim` gives two simulated hosts (virtual time): "a" 198.18.0.2 (the program) and "b"
198.18.0.1 (a peer), with `socket_module` copies for each. The kernel tests use the shared
netns helper (tests/netns.py) and `tls_cert` makes a self-signed certificate with openssl.
"""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from tests.netns import require_tool


@pytest.fixture
def sim():
    from ustack import Simulator
    from ustack.compat import socket_module

    s = Simulator(seed=3)
    a = s.add_host("198.18.0.2/24", name="a")
    b = s.add_host("198.18.0.1/24", name="b")
    yield SimpleNamespace(sim=s, a=a, b=b, sa=socket_module(a), sb=socket_module(b))
    s.close()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """(certfile, keyfile) of a fresh self-signed certificate for CN/SAN 198.18.0.1."""
    openssl = require_tool("openssl")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=198.18.0.1", "-addext", "subjectAltName=IP:198.18.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return str(cert), str(key)
