"""Benchmarks must not depend on the tests: a bench imports the package (and ``bench.common``), never
``tests``, so that moving or rewriting a test helper cannot silently change what a benchmark measures,
and a benchmark runs from an installed package without the test tree."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_benchmark_imports_the_tests() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imported_modules(path) if m.split(".")[0] == "tests")
        for path in sorted((ROOT / "bench").rglob("*.py"))
    }
    assert not {k: v for k, v in offenders.items() if v}, offenders
