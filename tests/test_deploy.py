"""The deployment files (docker-compose.yml, deploy/) say what docs/scale-out.md says.

There is no Docker engine or Kubernetes here: the same topology runs for real in
tests/cluster/ (replicas behind Debian's nginx, shared PostgreSQL); these tests keep the files
consistent with it, and check the nginx configuration with nginx itself.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT


def load(path: str):
    return yaml.safe_load((ROOT / path).read_text())


def test_compose_runs_scalable_replicas_on_a_shared_registry_and_artifact_volume():
    compose = load("docker-compose.yml")
    services = compose["services"]
    assert {"postgres", "serving", "nginx"} <= set(services)
    serving = services["serving"]
    assert "container_name" not in serving and "ports" not in serving  # `--scale serving=3` works
    env = serving["environment"]
    assert env["SCOREPUB_DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:" in env["SCOREPUB_DATABASE_URL"]
    assert env["SCOREPUB_ARTIFACT_DIR"] == "/artifacts"
    assert any(str(v).startswith("artifacts:/artifacts") for v in serving["volumes"])
    assert "artifacts" in compose["volumes"]
    assert env["SCOREPUB_ENV_DIR"] == "/envs" and "envs:/envs" in serving["volumes"] and "envs" in compose["volumes"]
    assert "/readyz" in " ".join(serving["healthcheck"]["test"])
    assert "SYS_ADMIN" in serving["cap_add"]
    assert services["nginx"]["ports"]


def test_kubernetes_manifests_probe_readiness_and_share_artifacts():
    docs = [d for f in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"} <= kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]


def test_nginx_configuration_is_valid_and_retries_scoring_calls():
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "non_idempotent" in text
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not shutil.which(nginx):
        pytest.fail("nginx is not installed (apt-get install nginx)")
    # Debian's nginx here is older than the image's 1.28: check a copy whose upstream needs no `resolve`
    local = text.replace("server serving:8080 resolve", "server 127.0.0.1:8080")
    local = local.replace("pid /var/run/nginx.pid;", "pid nginx.pid;")
    conf = ROOT / "test-output" / "nginx-check.conf"
    conf.parent.mkdir(exist_ok=True)
    conf.write_text(local)
    check = subprocess.run([nginx, "-t", "-q", "-c", str(conf), "-p", str(conf.parent)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr
