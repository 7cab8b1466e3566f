"""Static checks of the Terraform files against infra/topology.yaml (Dockerfiles and docker-compose.yml:
test_deploy_containers.py).

Nothing here talks to the cloud. terraform (formatting) runs for real when installed (`make infra-tools`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from speakerline import uploads as upload_contract

from .deploy_files import (
    TERRAFORM,
    TF_FILES,
    for_each,
    local_block,
    resource_block,
    resource_blocks,
)

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
    assert for_each(resource_block(tf, rtype, name)) == expected


def test_every_subscription_is_derived_not_hand_copied(tf: str, topology: dict[str, Any]) -> None:
    # Subscriptions (and their dead-letter topics) exist in Terraform only through for_each over the topology:
    # a literal name in a .tf file would be a hand copy that can drift.
    for name in topology["subscriptions"]:
        assert f'"{name}' not in tf, f"subscription {name!r} is spelled out in infra/terraform"
    service_sub = resource_block(tf, "google_pubsub_subscription", "service")
    assert "dead_letter_policy" in service_sub
    assert "retry_policy" in service_sub
    assert "each.value.ack_deadline_s" in service_sub
    assert "each.value.max_delivery_attempts" in service_sub
    assert "each.value.message_retention_s" in service_sub
    assert re.search(r'dead_letter_topic\s*=\s*"\$\{name\}-dead-letter"', local_block(tf, "subscriptions"))


def test_every_push_service_has_a_cloud_run_service_and_gpu_services_pull(topology: dict[str, Any], tf: str) -> None:
    gpu = {name for name, svc in topology["services"].items() if svc.get("gpu")}
    assert gpu, "the topology should mark the diarization worker as gpu: true"
    worker = resource_block(tf, "google_cloud_run_v2_service", "worker")
    # The L4 is there for diarization_engine = "pyannote" (the default); test_topology_in_terraform evaluates it.
    assert re.search(r'for_each\s*=\s*local\.worker_gpu \? \["nvidia-l4"\] : \[\]', worker)
    push = resource_block(tf, "google_cloud_run_v2_service", "push")
    for block in (worker, push):
        assert re.search(r'^\s*ingress\s*=\s*"INGRESS_TRAFFIC_INTERNAL_ONLY"', block, re.M)
    # The GPU worker takes no requests: nobody gets run.invoker on it.
    assert "google_cloud_run_v2_service.worker" not in resource_block(
        tf, "google_cloud_run_v2_service_iam_member", "push_invoker"
    )
    # Nothing public but the API's front door: no allUsers / allAuthenticatedUsers member anywhere else.
    code = re.sub(r"#.*", "", tf)
    http_public = resource_block(code, "google_cloud_run_v2_service_iam_member", "http_public")
    assert "allUsers" not in code.replace(http_public, "") and "allAuthenticatedUsers" not in code


def test_publisher_table_covers_every_service_and_names_real_topics(tf: str, topology: dict[str, Any]) -> None:
    block = local_block(tf, "service_publishes").split("{", 1)[1]
    table = dict(re.findall(r"^\s*(\w+)\s*=\s*\[([^\]]*)\]", block, re.M))
    assert set(table) == set(topology["services"]), "local.service_publishes must list every topology service"
    for service, topics in table.items():
        for topic in re.findall(r'"([^"]+)"', topics):
            assert topic in topology["topics"], (service, topic)


def test_bucket_access_names_real_buckets_and_services(tf: str, topology: dict[str, Any]) -> None:
    block = local_block(tf, "bucket_access").split("{", 1)[1]
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
    api = resource_block(tf, "google_cloud_run_v2_service", "http")
    assert for_each(api) == "local.http_services"
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
    invoker = resource_block(tf, "google_cloud_run_v2_service_iam_member", "http_public")
    assert for_each(invoker) == "local.http_services"
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
    publishes = dict(re.findall(r"^\s*(\w+)\s*=\s*\[([^\]]*)\]", local_block(tf, "service_publishes"), re.M))
    assert re.findall(r'"([^"]+)"', publishes["api"]) == ["audio-uploaded", "job-outcomes"]
    assert "io.speakerline.job.deleted.v1" in topology["topics"]["job-outcomes"]["event_types"]
    # Storage: per bucket; uploads may be written (signed PUT URLs act as the API), work and results only read
    # and deleted.
    access = local_block(tf, "bucket_access")
    api_access = re.search(r"^\s*api\s*=\s*\{([^}]*)\}", access, re.M)
    assert api_access, "local.bucket_access has no api row"
    roles = dict(re.findall(r"^\s*(\w+)\s*=\s*(\S+)", api_access.group(1), re.M))
    assert roles == {
        "uploads": '"roles/storage.objectUser"',
        "work": "google_project_iam_custom_role.api_object_reader_deleter.name",
        "results": "google_project_iam_custom_role.api_object_reader_deleter.name",
    }
    custom = resource_block(tf, "google_project_iam_custom_role", "api_object_reader_deleter")
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
    datastore = resource_block(tf, "google_project_iam_member", "service_datastore")
    assert for_each(datastore) == "toset(local.firestore_users)" and '"roles/datastore.user"' in datastore
    telemetry = resource_block(tf, "google_project_iam_member", "telemetry")
    assert set(re.findall(r'"(roles/[^"]+)"', telemetry)) == {"roles/cloudtrace.agent", "roles/monitoring.metricWriter"}
    for rtype in ("google_project_iam_binding", "google_project_iam_policy"):
        assert not re.search(rf'resource\s+"{rtype}"', tf), rtype
    # Signs V4 URLs as itself: token creator on its own service account, not project-wide.
    signers = re.search(r"^\s*url_signers\s*=\s*\[([^\]]*)\]", tf, re.M)
    assert signers and re.findall(r'"([^"]+)"', signers.group(1)) == ["api"]
    sign = resource_block(tf, "google_service_account_iam_member", "sign_as_self")
    assert for_each(sign) == "toset(local.url_signers)"
    assert re.search(r"service_account_id\s*=\s*google_service_account\.service\[each\.key\]\.name", sign)
    assert '"roles/iam.serviceAccountTokenCreator"' in sign
    assert '"iamcredentials.googleapis.com"' in tf
    # No resource names an identity of its own outside the per-service account.
    assert not re.search(r'resource\s+"google_service_account"\s+"api"', tf)


def test_results_bucket_lifecycle_uses_the_retention_variable(tf: str) -> None:
    buckets = local_block(tf, "buckets")
    assert re.search(
        r'lifecycle_delete_after_days\s*=\s*key\s*==\s*"results"\s*\?\s*var\.results_retention_days\s*:'
        r"\s*bucket\.lifecycle_delete_after_days",
        buckets,
    )
    bucket = resource_block(tf, "google_storage_bucket", "bucket")
    assert re.search(r"age\s*=\s*each\.value\.lifecycle_delete_after_days", bucket)
    variable = re.search(r'variable\s+"results_retention_days"\s*\{(.*?)\n\}', tf, re.S)
    assert variable and re.search(r"default\s*=\s*30\b", variable.group(1))


def test_upload_and_results_buckets_allow_the_studio_cors(tf: str) -> None:
    bucket = resource_block(tf, "google_storage_bucket", "bucket")
    assert 'dynamic "cors"' in bucket
    assert re.search(r"origin\s*=\s*var\.studio_origins", bucket)
    assert re.search(r"max_age_seconds\s*=\s*3600", bucket)
    cors = local_block(tf, "bucket_cors")
    uploads = local_block(cors, "uploads")
    assert re.findall(r'"([A-Z]+)"', re.search(r"methods\s*=\s*\[([^\]]*)\]", uploads).group(1)) == [  # type: ignore[union-attr]
        "PUT",
        "GET",
        "OPTIONS",
    ]
    # Exactly the headers the API signs (speakerline.uploads), or browsers' preflights fail in the cloud.
    for header in ("Content-Type", *upload_contract.UPLOAD_HEADERS):
        assert f'"{header}"' in uploads, header
    assert '"GET"' in local_block(cors, "results")
    assert re.search(r'variable\s+"studio_origins"\s*\{[^}]*list\(string\)[^}]*default\s*=\s*\["\*"\]', tf)


def test_firestore_indexes_serve_the_api_job_list(tf: str) -> None:
    indexes = {
        tuple(re.findall(r'field_path\s*=\s*"([^"]+)"\s*\n\s*order\s*=\s*"(\w+)"', block))
        for block in resource_blocks(tf, "google_firestore_index").values()
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


def test_every_subscription_has_a_backlog_alert_and_every_dead_letter_one_alert() -> None:
    text = (TERRAFORM / "monitoring.tf").read_text()
    assert "oldest_unacked_message_age" in text and "num_undelivered_messages" in text
    assert text.count('resource "google_monitoring_alert_policy"') == 2
    assert text.count("for_each = local.subscriptions") == 2
    assert "SPEAKERLINE_TELEMETRY" in (TERRAFORM / "main.tf").read_text()
    iam = (TERRAFORM / "iam.tf").read_text()
    assert "roles/cloudtrace.agent" in iam and "roles/monitoring.metricWriter" in iam
