"""``import dropsearch.regularizers`` stays light: torch only, no service dependencies (docs/ARCHITECTURE.md)."""

import json
import subprocess
import sys

HEAVY = ("ray", "fastapi", "sqlalchemy", "pydantic", "starlette", "alembic")


def _loaded_after(statement: str) -> dict:
    code = (
        "import json, sys\n"
        f"{statement}\n"
        f"print(json.dumps({{'heavy': sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r})), "
        "'torch': 'torch' in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_regularizers_import_no_ray_fastapi_or_sqlalchemy():
    loaded = _loaded_after("import dropsearch.regularizers, dropsearch.regularizers._apply")
    assert loaded["torch"]  # the probe sees modules: torch is there
    assert loaded["heavy"] == []


def test_top_level_package_is_lazy_and_apply_loads_only_the_regularizers():
    assert _loaded_after("import dropsearch") == {"heavy": [], "torch": False}
    loaded = _loaded_after("import dropsearch\nassert callable(dropsearch.apply)")
    assert loaded == {"heavy": [], "torch": True}
