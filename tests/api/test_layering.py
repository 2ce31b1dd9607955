from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import dropsearch.api

API_DIR = Path(dropsearch.api.__file__).parent
#: dropsearch packages the API may only import inside functions (they import torch).
_LAZY_ONLY = ("dropsearch.regularizers", "dropsearch.workers", "dropsearch.runner", "dropsearch.controller")


def test_importing_the_api_loads_neither_torch_nor_ray_nor_the_regularizer_modules() -> None:
    code = (
        "import json, sys, dropsearch.api, dropsearch.api.app, dropsearch.client; "
        "print(json.dumps([sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'matplotlib'}), "
        "sorted(m for m in sys.modules if m.startswith(('dropsearch.regularizers', 'dropsearch.workers')))]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, loaded = json.loads(out)
    assert heavy == []
    # dropsearch.search (the spec) reads the variant registry, which is standard library only; no regularizer
    # module (they import torch) and nothing of dropsearch.workers is loaded
    registry = ("dropsearch.regularizers", "dropsearch.regularizers.pattern", "dropsearch.regularizers.registry")
    assert [m for m in loaded if m not in registry and not m.startswith("dropsearch.regularizers.variants")] == []


def test_api_modules_import_neither_sqlalchemy_torch_ray_nor_the_regularizers_at_module_level() -> None:
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
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(_LAZY_ONLY)]
    assert offenders == []
    sources = "\n".join(p.read_text() for p in API_DIR.rglob("*.py"))
    assert "import sqlalchemy" not in sources and "from sqlalchemy" not in sources
