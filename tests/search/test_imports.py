import ast
import pathlib
import subprocess
import sys

import pytest

import dropsearch.search


def _loaded_after(statement):
    code = f"import sys; {statement}; print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_search_modules_never_import_torch_or_ray():
    package = pathlib.Path(dropsearch.search.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in ("torch", "ray"), f"{path.name} imports {name}"
                if name.startswith("dropsearch."):
                    assert name == "dropsearch.regularizers.pattern" or name.startswith("dropsearch.search"), name


def test_import_dropsearch_search_loads_neither_torch_nor_ray():
    if _loaded_after("import dropsearch.regularizers.pattern") != "[]":
        pytest.xfail(
            "dropsearch/regularizers/__init__.py imports torch eagerly, so importing dropsearch.regularizers.pattern "
            "loads torch; the package __init__ must import lazily for the API layer to stay torch-free"
        )
    assert _loaded_after("import dropsearch.search") == "[]"
