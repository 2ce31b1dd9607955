"""The package layers of docs/ARCHITECTURE.md: which ``dropsearch`` packages each one imports, and module size.

Every import is read from the source (module level and inside functions alike), so a lazy import that breaks a
layer is caught too. The API's import-time rules (no torch, Ray or regularizers when ``dropsearch.api`` is
imported) are checked in ``tests/api/test_layering.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dropsearch

PACKAGE_DIR = Path(dropsearch.__file__).parent
MAX_MODULE_LINES = 400

#: package -> the dropsearch packages it may import (itself always).
ALLOWED: dict[str, set[str]] = {
    "regularizers": {"_entry_points"},
    "integrations": {"regularizers"},
    "search": {"regularizers", "_entry_points"},
    "controller": {"search", "regularizers"},
    "workers": {"regularizers", "search", "_entry_points"},
    "store": {"config", "search"},  # the spec (pydantic) when a stored search is changed
}


def _package(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imported(path: Path) -> set[str]:
    """The top-level ``dropsearch`` packages the module at ``path`` imports anywhere in its source."""
    return _imports_of(path.read_text(), ("dropsearch", *path.relative_to(PACKAGE_DIR).with_suffix("").parts))


def _imports_of(source: str, module_parts: tuple[str, ...]) -> set[str]:
    """The top-level ``dropsearch`` packages ``source`` (the module ``module_parts``) imports anywhere."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module_parts[: len(module_parts) - node.level]
                names = [".".join((*base, node.module or ""))]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "dropsearch" and len(parts) > 1 and parts[1]:
                found.add(parts[1])
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "alembic" not in p.relative_to(PACKAGE_DIR).parts[:2])


def test_import_scan_sees_absolute_relative_and_lazy_imports():
    source = "import dropsearch.store\nimport torch\nfrom . import x\n\ndef f():\n    from dropsearch.runner import e\n"
    assert _imports_of(source, ("dropsearch", "workers", "probe")) == {"store", "workers", "runner"}
    assert _imports_of("from ...search import spec\n", ("dropsearch", "workers", "models", "m")) == {"search"}
    assert _imported(PACKAGE_DIR / "runner" / "execution.py") >= {"store", "config"}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below_it(package):
    offenders = []
    for path in _modules():
        if _package(path) != package:
            continue
        bad = _imported(path) - ALLOWED[package] - {package}
        offenders += [f"{path.relative_to(PACKAGE_DIR)}: dropsearch.{name}" for name in sorted(bad)]
    assert offenders == []


def test_workers_never_import_the_controller_or_the_runner():
    offenders = [
        f"{path.relative_to(PACKAGE_DIR)}: dropsearch.{name}"
        for path in _modules()
        if _package(path) == "workers"
        for name in sorted(_imported(path) & {"controller", "runner", "store", "api", "cli"})
    ]
    assert offenders == []


def test_no_module_is_over_400_lines():
    long = {
        str(path.relative_to(PACKAGE_DIR)): n
        for path in _modules()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
