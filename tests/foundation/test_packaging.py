"""Packaging (issue 3): PEP 621 metadata with setuptools, `drivers/` installed as `ustack.drivers`,
the `ustack` console script, the `test` extra, runtime dependencies, Python >= 3.11."""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import ustack

ROOT = Path(__file__).resolve().parents[2]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in reqs}


def test_pep621_metadata_with_setuptools():
    p = pyproject()
    assert p["build-system"]["build-backend"] == "setuptools.build_meta"
    proj = p["project"]
    assert proj["name"] == "ustack" and proj["requires-python"] == ">=3.11"
    assert {"python-pytun", "dpkt"} <= names(proj["dependencies"])
    assert {"pytest", "pytest-timeout", "hypothesis", "scapy"} <= names(proj["optional-dependencies"]["test"])
    assert "scapy" not in names(proj["dependencies"])  # tests only, never in the stack
    assert proj["scripts"]["ustack"] == "ustack.cli.main:main"
    setuptools = p["tool"]["setuptools"]
    assert setuptools["package-dir"]["ustack.drivers"] == "drivers"
    assert "ustack.drivers" in setuptools["packages"]


def test_installed_drivers_package_is_the_drivers_directory():
    import ustack.drivers

    assert Path(ustack.drivers.__file__).resolve().parent == ROOT / "drivers"
    assert Path(ustack.__file__).resolve().parent == ROOT / "ustack"


def test_console_script_is_installed():
    dist = importlib.metadata.distribution("ustack")
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"ustack": "ustack.cli.main:main"}
    assert (Path(sys.executable).parent / "ustack").exists()


def test_public_entry_points():
    assert ustack.Host.__name__ == "Host" and ustack.Simulator.__name__ == "Simulator"
    assert ustack.Stack.__module__ == "ustack.core.stack"
    assert sys.version_info >= (3, 11)
