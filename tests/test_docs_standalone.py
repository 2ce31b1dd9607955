"""The docs stand alone: no file of the repository points to design notes that are not in it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Names of documents outside the repository (spelled in pieces so that this file does not match itself).
OUTSIDE = tuple(name + ".md" for name in ("DESIGN", "ALGORITHMS", "STYLE")) + ("/work/" + "shared",)
SUFFIXES = {".py", ".md", ".toml", ".js", ".html", ".yaml", ".yml", ".cfg", ".txt"}


def _files() -> list[Path]:
    roots = [ROOT / name for name in ("dropsearch", "docs", "benchmarks", "tests", "examples", "scripts")]
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for root in roots:
        if root.exists():
            files += [p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    return sorted(files)


def test_no_file_points_to_documents_outside_the_repository():
    offenders = []
    for path in _files():
        text = path.read_text(errors="replace")
        offenders += [f"{path.relative_to(ROOT)}: {name}" for name in OUTSIDE if name in text]
    assert offenders == []


def test_the_readme_links_every_document_under_docs():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"docs/{p.name}" not in readme]
    assert missing == []
