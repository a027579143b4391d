"""The house rules DESIGN.md sets that no linter checks: private names (a leading underscore) do not
cross packages, and no module of the package grows past ~600 lines (650 is the hard stop)."""

from __future__ import annotations

import ast
from pathlib import Path

import keeper

PACKAGE = Path(keeper.__file__).parent
MAX_LINES = 650


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE).parts
    return rel[0].removesuffix(".py") if len(rel) > 1 else "(top)"


def test_private_names_stay_in_their_package():
    crossings = []
    for path in _modules():
        here = _package_of(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("keeper."):
                continue
            parts = node.module.split(".")
            there = parts[1] if len(parts) > 2 else "(top)"
            for alias in node.names:
                if alias.name.startswith("_") and there != here:
                    crossings.append(f"{path.relative_to(PACKAGE.parent)}: {node.module}.{alias.name}")
    assert crossings == []


def test_no_module_is_a_drawer():
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in _modules()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
