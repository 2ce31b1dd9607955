"""Help, import weight, the key file and the demo spec."""

from __future__ import annotations

import ast
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import dropsearch.cli
from dropsearch.cli._common import read_key_file, resolve_url, write_key_file
from dropsearch.config import Settings
from dropsearch.demo import DEMO_SPEC, demo_spec
from dropsearch.search.spec import SearchSpec

CLI_DIR = Path(dropsearch.cli.__file__).parent
COMMANDS = [
    [],
    ["serve"],
    ["runner"],
    ["submit"],
    ["watch"],
    ["best"],
    ["list"],
    ["cancel"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["db"],
    ["db", "upgrade"],
    ["db", "current"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "dropsearch")
def test_every_command_has_help(cli, command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: dropsearch" in result.stdout and "--help" in result.stdout


def test_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"dropsearch {dropsearch.__version__}"


def test_importing_the_cli_loads_no_heavy_package() -> None:
    code = (
        "import sys, dropsearch.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'ray', 'uvicorn', 'fastapi', 'sqlalchemy', 'httpx', 'matplotlib'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_modules_import_neither_torch_nor_ray_at_module_level() -> None:
    offenders = []
    for path in sorted(CLI_DIR.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("torch", "ray", "uvicorn")]
    assert offenders == []


def test_key_file_is_owner_only_and_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "admin.key"
    assert read_key_file(path) is None
    write_key_file(path, "ds_first")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and read_key_file(path) == "ds_first"
    path.chmod(0o644)  # a loosened file is tightened again on rewrite
    write_key_file(path, "ds_second")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "ds_second\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["admin.key"]  # no temporary file left


def test_resolve_url_prefers_the_option_then_the_settings() -> None:
    assert resolve_url("http://h:1/", Settings()) == "http://h:1"
    assert resolve_url(None, Settings(host="10.0.0.5", port=9000)) == "http://10.0.0.5:9000"
    assert resolve_url(None, Settings(host="0.0.0.0", port=8001)) == "http://127.0.0.1:8001"  # bind-all: local


def test_demo_spec_is_valid_and_overridable() -> None:
    spec = SearchSpec.model_validate(demo_spec({}))
    assert spec.model.name == "convnet" and spec.dataset.name == "digits"
    assert spec.controller.name == "reinforce" and spec.controller.batch_size == 4
    assert spec.budget.max_concurrent == 2 and spec.budget.early_stopping == "asha"
    assert set(spec.space.variants) == {"bernoulli", "dropblock", "autodropout", "ydrop", "gsnr"}
    assert 8 <= spec.budget.trials <= 16

    small = SearchSpec.model_validate(demo_spec({"DROPSEARCH_DEMO_TRIALS": "1", "DROPSEARCH_DEMO_EPOCHS": "2"}))
    assert (small.budget.trials, small.budget.epochs_per_trial) == (1, 2)
    assert small.budget.max_concurrent == 1 and small.controller.batch_size == 1
    assert DEMO_SPEC["budget"]["trials"] == spec.budget.trials  # the constant is not modified
    for bad in ("0", "-3", "two"):
        with pytest.raises(ValueError, match="DROPSEARCH_DEMO_TRIALS must be a positive integer"):
            demo_spec({"DROPSEARCH_DEMO_TRIALS": bad})
