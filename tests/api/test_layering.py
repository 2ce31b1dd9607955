from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dropsearch.api

API_DIR = Path(dropsearch.api.__file__).parent


def test_importing_the_api_loads_neither_torch_nor_ray() -> None:
    code = (
        "import sys, dropsearch.api, dropsearch.api.app, dropsearch.client; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'matplotlib'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_api_modules_import_neither_sqlalchemy_torch_nor_ray_at_module_level() -> None:
    offenders = []
    for path in sorted(API_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: lazy imports inside functions are allowed
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("sqlalchemy", "torch", "ray")]
    assert offenders == []
    sources = "\n".join(p.read_text() for p in API_DIR.rglob("*.py"))
    assert "import sqlalchemy" not in sources and "from sqlalchemy" not in sources
