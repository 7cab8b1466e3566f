"""`make deploy` (infra/deploy.sh): with DRY_RUN=1 it prints the build and apply it would run, tagged with the git
sha, and runs none of it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _dry_run(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "deploy", "DRY_RUN=1", *(f"{k}={v}" for k, v in env.items())],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k not in {"PROJECT", "ENGINE", "TAG", "TF_VARS"}},
    )


def test_dry_run_prints_the_build_and_the_apply_with_the_git_sha_and_runs_nothing() -> None:
    sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=REPO)
    tag = sha.stdout.strip()
    had_terraform_dir = (REPO / "infra" / "terraform" / ".terraform").exists()
    done = _dry_run(PROJECT="demo-project", REGION="europe-west4", ENGINE="embedded")
    assert done.returncode == 0, done.stderr
    commands = [line[2:] for line in done.stdout.splitlines() if line.startswith("+ ")]
    registry = "europe-west4-docker.pkg.dev/demo-project/speakerline"
    assert commands[0].startswith("gcloud services enable cloudbuild.googleapis.com")
    assert commands[1] == "terraform -chdir=infra/terraform init -input=false"
    assert commands[2].endswith(
        "-target=google_artifact_registry_repository.images -target=google_secret_manager_secret.secret"
    )
    assert commands[3].startswith("gcloud builds submit --project demo-project --region europe-west4")
    assert "--config infra/cloudbuild.yaml" in commands[3]
    assert f"_REGISTRY={registry}\\,_TAG={tag}" in commands[3]
    assert commands[4] == (
        "terraform -chdir=infra/terraform apply -var project_id=demo-project -var region=europe-west4"
        f" -var diarization_engine=embedded -var image_tag={tag}"
    )
    assert "dry run: nothing is run" in done.stdout
    assert (REPO / "infra" / "terraform" / ".terraform").exists() == had_terraform_dir


def test_deploy_refuses_an_unknown_engine_and_a_missing_project() -> None:
    unknown = _dry_run(PROJECT="demo-project", ENGINE="whisper")
    assert unknown.returncode != 0 and "ENGINE must be" in unknown.stderr
    missing = _dry_run()
    assert missing.returncode != 0 and "set PROJECT" in missing.stderr


def test_cloud_build_builds_every_image_terraform_deploys() -> None:
    import yaml

    build = yaml.safe_load((REPO / "infra" / "cloudbuild.yaml").read_text())
    images = {image.split("/")[-1].split(":")[0] for image in build["images"]}
    services = set(yaml.safe_load((REPO / "infra" / "topology.yaml").read_text())["services"])
    # every topology service, the API, and the CPU build of the worker (diarization_engine = embedded | vertex)
    assert images == {f"speakerline-{name}" for name in services} | {"speakerline-api", "speakerline-diarization-cpu"}
    assert all(image.endswith(":${_TAG}") for image in build["images"])
    built = {step["id"] for step in build["steps"]} - {"check-substitutions"}
    assert {f"speakerline-{step}" for step in built} == images
