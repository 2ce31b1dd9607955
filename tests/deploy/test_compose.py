"""docker-compose.yml, .env.example and the Dockerfile: the services, ports, healthchecks, volumes and settings.

Compose interpolation (``${VAR:-default}``, ``${VAR:?message}``) is resolved here the way compose does it, so
the settings the API container gets are validated by :class:`dropsearch.config.Settings` itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from dropsearch.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
RAY_SERVICES = ("ray-head", "ray-worker", "ray-worker-gpu", "api")
VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")
SETTING_NAMES = {f"DROPSEARCH_{name.upper()}" for name in Settings.model_fields}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's substitution: the variable, else the ``:-`` default; ``:?`` fails when it is unset or empty."""

    def one(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return VAR.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source (a named volume or a host path) of a service's short-syntax volumes."""
    out = {}
    for entry in service.get("volumes", []):
        source, target, *_ = interpolate(entry, {}).split(":")
        out[target] = source
    return out


def env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"bad .env.example line {line!r}"
            out[key] = value
    return out


def test_services_are_postgres_ray_head_scalable_workers_a_gpu_profile_and_the_api():
    assert set(SERVICES) == {"postgres", "ray-head", "ray-worker", "ray-worker-gpu", "api"}
    images = {SERVICES[name]["image"] for name in RAY_SERVICES}
    assert len(images) == 1  # every Ray node and the driver run the same image (same Ray, same Python)
    for name in RAY_SERVICES:
        assert SERVICES[name]["build"]["context"] == "."
        assert set(SERVICES[name]["build"]["args"]) == {"BASE", "TORCH_INDEX"}


def test_postgres_keeps_its_data_in_a_named_volume_and_is_healthchecked_and_not_published():
    pg = SERVICES["postgres"]
    assert pg["image"].startswith("postgres:")
    assert mounts(pg)["/var/lib/postgresql/data"] in COMPOSE["volumes"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert "ports" not in pg
    assert pg["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_ray_head_serves_the_dashboard_on_8265_on_loopback_only_with_token_auth_and_a_healthcheck():
    head = SERVICES["ray-head"]
    assert head["ports"] == ["127.0.0.1:8265:8265"]
    command = head["command"]
    assert command[:3] == ["ray", "start", "--head"] and "--block" in command
    assert {"--port=6379", "--dashboard-port=8265", "--dashboard-host=0.0.0.0"} <= set(command)
    check = " ".join(head["healthcheck"]["test"])
    assert "http://127.0.0.1:8265/api/gcs_healthz" in check  # the route token auth leaves open
    for name in RAY_SERVICES:
        env = SERVICES[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?"), name  # refused when unset


def test_workers_join_the_head_and_scale_and_the_gpu_profile_reserves_nvidia_devices():
    for name in ("ray-worker", "ray-worker-gpu"):
        worker = SERVICES[name]
        assert worker["command"][:3] == ["ray", "start", "--address=ray-head:6379"] and "--block" in worker["command"]
        assert "container_name" not in worker and "ports" not in worker  # `--scale ray-worker=N` works
        assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"
        assert mounts(worker)["/datasets"] == "./datasets" and worker["volumes"][0].endswith(":ro")
    assert "profiles" not in SERVICES["ray-worker"] and "deploy" not in SERVICES["ray-worker"]
    gpu = SERVICES["ray-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == "all"


def test_api_runs_serve_plus_runner_joined_to_the_head_with_postgres():
    api = SERVICES["api"]
    assert api["command"] == ["dropsearch", "serve", "--host", "0.0.0.0", "--ray-address", "ray-head:6379"]
    env = api["environment"]
    assert env["RAY_JOIN_ADDRESS"] == "ray-head:6379"  # the entrypoint makes the container a 0-CPU Ray node
    assert env["DROPSEARCH_RAY_ADDRESS"] == "ray-head:6379"
    assert api["init"] is True  # PID 1 is an init: it reaps children and forwards SIGTERM
    assert [p.rsplit(":", 2)[1:] for p in api["ports"]] == [["8000", "8000"]]
    assert "http://127.0.0.1:8000/healthz" in " ".join(api["healthcheck"]["test"])
    assert {name: dep["condition"] for name, dep in api["depends_on"].items()} == {
        "postgres": "service_healthy",
        "ray-head": "service_healthy",
    }
    assert mounts(api)["/data"] in COMPOSE["volumes"] and mounts(api)["/datasets"] == "./datasets"


def test_compose_puts_the_postgres_password_into_the_database_url_unencoded():
    env = SERVICES["api"]["environment"]
    assert "DROPSEARCH_DATABASE_URL" not in env  # the settings assemble it from parts, encoding the password
    password = "p@ss/w:rd%40#?"
    values = {k: interpolate(str(v), {"POSTGRES_PASSWORD": password}) for k, v in env.items() if "DATABASE" in k}
    url = Settings(**{k.removeprefix("DROPSEARCH_").lower(): v for k, v in values.items()}).resolved_database_url
    assert url == "postgresql+psycopg://dropsearch:p%40ss%2Fw%3Ard%2540%23%3F@postgres:5432/dropsearch"
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    assert (parsed.password, parsed.host, parsed.port, parsed.database) == (password, "postgres", 5432, "dropsearch")


def test_a_database_password_file_is_read_and_encoded(tmp_path):
    secret = tmp_path / "pg-password"
    secret.write_text("a@b/c:d%e\n")
    url = Settings(database_host="db", database_password_file=secret).resolved_database_url
    assert url == "postgresql+psycopg://dropsearch:a%40b%2Fc%3Ad%25e@db:5432/dropsearch"


def test_every_dropsearch_variable_of_the_compose_file_is_a_real_setting_with_a_valid_value(monkeypatch):
    set_anywhere = {k for s in SERVICES.values() for k in s.get("environment", {}) if k.startswith("DROPSEARCH_")}
    assert set_anywhere and set_anywhere <= SETTING_NAMES, set_anywhere - SETTING_NAMES
    env = SERVICES["api"]["environment"]
    for key in list(os.environ):
        if key.startswith("DROPSEARCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(ROOT / "tests")  # no stray .env file
    for key, value in env.items():
        if key.startswith("DROPSEARCH_"):
            monkeypatch.setenv(key, interpolate(value, {"POSTGRES_PASSWORD": "pw"}))
    settings = Settings()
    assert settings.host == "0.0.0.0" and settings.port == 8000
    assert settings.ray_address == "ray-head:6379" and str(settings.data_dir) == "/data"
    assert [str(p) for p in settings.dataset_roots] == ["/datasets"]
    assert settings.resolved_database_url.startswith("postgresql+psycopg://")


def test_env_example_names_only_real_settings_and_every_variable_the_compose_file_reads(monkeypatch):
    example = env_example()
    prefixed = {k for k in example if k.startswith("DROPSEARCH_")}
    assert prefixed and prefixed <= SETTING_NAMES, prefixed - SETTING_NAMES
    for key in list(os.environ):
        if key.startswith("DROPSEARCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(ROOT / "tests")
    for key in prefixed:
        monkeypatch.setenv(key, example[key])
    Settings()  # the example values validate
    text = (ROOT / "docker-compose.yml").read_text()
    read = {m["name"] for m in VAR.finditer(text.replace("$$", ""))}
    assert read <= set(example), read - set(example)
    required = {m["name"] for m in VAR.finditer(text) if m["op"] == ":?"}
    assert required == {"POSTGRES_PASSWORD", "RAY_AUTH_TOKEN"}
    assert all(example[name] == "" for name in required)  # secrets are never shipped, compose refuses empty ones
    with pytest.raises(KeyError, match="RAY_AUTH_TOKEN"):
        interpolate(SERVICES["ray-head"]["environment"]["RAY_AUTH_TOKEN"], example)


def test_the_cli_has_the_flags_the_compose_commands_use():
    from typer.testing import CliRunner

    from dropsearch.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0 and "--ray-address" in result.output and "--host" in result.output
    result = CliRunner().invoke(app, ["runner", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0 and "--ray-address" in result.output


def test_dockerfile_builds_cpu_torch_by_default_and_takes_a_cuda_base_as_a_build_argument():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.\d+-slim", text, re.M) and "FROM ${BASE}" in text
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in text and "ARG TORCH_VERSION=2.13.0" in text
    assert '"torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"' in text
    assert 'pip install ".[service,postgres]"' in text  # the service extra; psycopg for postgresql+psycopg://
    entrypoint = ROOT / "deploy" / "docker" / "entrypoint.sh"
    assert f"COPY {entrypoint.relative_to(ROOT)} " in text and os.access(entrypoint, os.X_OK)
    assert 'ray start --address="${RAY_JOIN_ADDRESS}" --num-cpus=0 --num-gpus=0' in entrypoint.read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".venv" in ignored and "dropsearch" not in ignored
