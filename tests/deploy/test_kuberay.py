"""deploy/kuberay/dropsearch.yaml: a token-auth RayCluster (CPU head, GPU workers) and the API joined to it."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from dropsearch.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / "kuberay" / "dropsearch.yaml").read_text())}
CLUSTER, API = DOCS["RayCluster"], DOCS["Deployment"]
HEAD_SVC = f"{CLUSTER['metadata']['name']}-head-svc:6379"  # the head Service KubeRay creates


def _containers():
    spec = CLUSTER["spec"]
    yield spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    for group in spec["workerGroupSpecs"]:
        yield group["template"]["spec"]["containers"][0]
    yield API["spec"]["template"]["spec"]["containers"][0]


def test_the_cluster_runs_the_installed_ray_version_with_token_auth_from_one_secret():
    import ray

    spec = CLUSTER["spec"]
    assert spec["rayVersion"] == ray.__version__
    assert spec["authOptions"] == {"mode": "token", "secretName": "dropsearch-ray-token"}
    env = {e["name"]: e for e in API["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "dropsearch-ray-token", "key": "auth_token"}
    assert len({c["image"] for c in _containers()}) == 1  # same Ray and Python on every node


def test_head_schedules_only_and_serves_the_dashboard_and_a_gpu_group_requests_whole_gpus():
    head = CLUSTER["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    ports = {p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert ports == {"gcs-server": 6379, "dashboard": 8265, "client": 10001}
    groups = {g["groupName"]: g for g in CLUSTER["spec"]["workerGroupSpecs"]}
    gpu = groups["gpu"]["template"]["spec"]
    limits = gpu["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1" and gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert groups["gpu"]["minReplicas"] <= groups["gpu"]["replicas"] <= groups["gpu"]["maxReplicas"]
    for group in groups.values():
        mounts = {m["mountPath"] for m in group["template"]["spec"]["containers"][0]["volumeMounts"]}
        assert {"/dev/shm", "/datasets"} <= mounts


def test_api_deployment_joins_the_head_service_and_sets_only_real_valid_settings(monkeypatch):
    container = API["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["dropsearch-entrypoint"]
    assert container["args"] == ["dropsearch", "serve", "--host", "0.0.0.0", "--ray-address", HEAD_SVC]
    env = {e["name"]: e for e in container["env"]}
    assert env["RAY_JOIN_ADDRESS"]["value"] == HEAD_SVC
    assert env["DROPSEARCH_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "dropsearch-db", "key": "url"}
    settings_names = {f"DROPSEARCH_{name.upper()}" for name in Settings.model_fields}
    prefixed = {name for name in env if name.startswith("DROPSEARCH_")}
    assert prefixed <= settings_names, prefixed - settings_names
    for key in list(os.environ):
        if key.startswith("DROPSEARCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(ROOT / "tests")
    for name in prefixed:
        monkeypatch.setenv(name, env[name].get("value", "postgresql+psycopg://u:p@db:5432/dropsearch"))
    settings = Settings()
    assert settings.ray_address == HEAD_SVC and settings.host == "0.0.0.0"
    assert [str(p) for p in settings.dataset_roots] == ["/datasets"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert DOCS["Service"]["spec"]["selector"] == API["spec"]["selector"]["matchLabels"]


def test_api_keeps_its_data_on_a_volume_claim_and_takes_the_admin_key_from_a_secret_file(monkeypatch):
    pod = API["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    env = {e["name"]: e for e in container["env"]}

    # The data directory survives restarts: a PersistentVolumeClaim of this manifest, not an emptyDir.
    data = volumes[mounts[env["DROPSEARCH_DATA_DIR"]["value"]]["name"]]
    claim = DOCS["PersistentVolumeClaim"]
    assert "emptyDir" not in data and data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and API["spec"]["strategy"]["type"] == "Recreate"

    # The admin key is the operator's, read from a mounted Secret (never made, never printed, same on restart).
    key_path = Path(env["DROPSEARCH_ADMIN_KEY_FILE"]["value"])
    mount = mounts[str(key_path.parent)]
    assert mount["readOnly"] is True
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == "dropsearch-admin-key"
    assert {"key": "admin_key", "path": key_path.name} in secret["items"]
    assert secret["defaultMode"] & 0o007 == 0  # not world-readable
    assert pod["securityContext"]["fsGroup"] == 1000 and secret["defaultMode"] & 0o040  # the image's user reads it
    for key in list(os.environ):
        if key.startswith("DROPSEARCH_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DROPSEARCH_ADMIN_KEY_FILE", str(key_path))
    assert Settings().admin_key_file == key_path
