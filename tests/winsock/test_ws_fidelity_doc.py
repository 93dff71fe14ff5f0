"""docs/winsock-fidelity.md is generated from these tests and must be up to date."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_fidelity", ROOT / "tools" / "gen_fidelity.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_fidelity", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_fidelity_doc_is_up_to_date() -> None:
    """The committed docs/winsock-fidelity.md equals what tools/gen_fidelity.py generates now."""
    gen = _generator()
    committed = (ROOT / "docs" / "winsock-fidelity.md").read_text()
    assert committed == gen.render(), "run: .venv/bin/python tools/gen_fidelity.py"


def test_every_reference_item_has_a_test() -> None:
    """Every numbered item of the reference (and every code of the connect page) has at least one test."""
    gen = _generator()
    tests = gen.collect()
    items = {t.item for t in tests}
    wanted = {n for _, section in gen.SECTIONS for n, _ in section}
    assert wanted - items == set()
    names = [t.name for t in tests if t.item == 0]
    for code in gen.CONNECT_ERRORS:
        prefix = f"test_item_0_connect_error_{code}"
        assert any(n == prefix or n.startswith(prefix + "_") for n in names), code
    assert all(t.doc for t in tests), [t.name for t in tests if not t.doc]
