from __future__ import annotations

import subprocess
import sys


def test_store_imports_neither_torch_nor_ray() -> None:
    code = (
        "import sys, dropsearch.store, dropsearch.store.migrate; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'fastapi'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
