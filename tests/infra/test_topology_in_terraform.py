"""Every topic, subscription, dead-letter topic and subscription, and bucket of infra/topology.yaml is created by
infra/terraform with the topology's settings, and nothing else is: the instances come from Terraform's own
evaluation of the module's HCL (tests/infra/terraform_module.py), compared with speakerline.topology's reading of
the file (the same reading the runtime and `speakerline stack up` use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from speakerline import topology as topology_module
from tests.infra.terraform_module import Module

REPO = Path(__file__).resolve().parents[2]
PROJECT = "demo-project"
VARIABLES = {"project_id": PROJECT}


@pytest.fixture(scope="module")
def module() -> Module:
    return Module.load(REPO / "infra" / "terraform")


@pytest.fixture(scope="module")
def topology() -> topology_module.Topology:
    return topology_module.load(REPO / "infra" / "topology.yaml")


def _names(instances: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Instance key => the name it is created with."""
    return {key: attrs["name"] for key, attrs in instances.items()}


def test_topics_are_exactly_the_topology_topics_and_one_dead_letter_topic_per_subscription(
    module: Module, topology: topology_module.Topology
) -> None:
    assert module.resource_names("google_pubsub_topic") == {"topic", "dead_letter"}
    topics = module.instances("google_pubsub_topic", "topic", {"name": "name"}, VARIABLES)
    assert _names(topics) == {name: name for name in topology.topics}
    dead_letter = module.instances("google_pubsub_topic", "dead_letter", {"name": "name"}, VARIABLES)
    assert _names(dead_letter) == {s.name: s.dead_letter_topic for s in topology.subscriptions.values()}


def test_every_subscription_is_created_with_the_topology_settings(
    module: Module, topology: topology_module.Topology
) -> None:
    created = module.instances(
        "google_pubsub_subscription",
        "service",
        {
            "name": "name",
            "topic": "topic",
            "ack_deadline_s": "ack_deadline_seconds",
            "retention": "message_retention_duration",
            "min_backoff": "retry_policy.minimum_backoff",
            "max_backoff": "retry_policy.maximum_backoff",
            "dead_letter_topic": "dead_letter_policy.dead_letter_topic",
            "max_delivery_attempts": "dead_letter_policy.max_delivery_attempts",
            "ordering": "enable_message_ordering",
        },
        VARIABLES,
    )
    expected = {
        sub.name: {
            "name": sub.name,
            "topic": f"google_pubsub_topic.topic[{sub.topic}]",
            "ack_deadline_s": sub.ack_deadline_s,
            "retention": f"{sub.message_retention_s}s",
            "min_backoff": f"{sub.retry.minimum_backoff_s}s",
            "max_backoff": f"{sub.retry.maximum_backoff_s}s",
            "dead_letter_topic": f"google_pubsub_topic.dead_letter[{sub.name}]",
            "max_delivery_attempts": sub.max_delivery_attempts,
            "ordering": False,
        }
        for sub in topology.subscriptions.values()
    }
    assert created == expected


def test_every_dead_letter_topic_has_its_inspection_subscription(
    module: Module, topology: topology_module.Topology
) -> None:
    assert module.resource_names("google_pubsub_subscription") == {"service", "dead_letter"}
    created = module.instances(
        "google_pubsub_subscription", "dead_letter", {"name": "name", "topic": "topic"}, VARIABLES
    )
    assert created == {
        sub.name: {"name": sub.dead_letter_subscription, "topic": f"google_pubsub_topic.dead_letter[{sub.name}]"}
        for sub in topology.subscriptions.values()
    }


def test_every_bucket_is_created_prefixed_with_the_project_and_its_lifecycle(
    module: Module, topology: topology_module.Topology
) -> None:
    assert module.resource_names("google_storage_bucket") == {"bucket"}
    attributes = {"name": "name", "delete_after_days": "lifecycle_rule.condition.age"}
    created = module.instances("google_storage_bucket", "bucket", attributes, VARIABLES)
    # Results keep var.results_retention_days (default 30); uploads and work keep the topology's value.
    retention = module.evaluate("var.results_retention_days", VARIABLES)
    assert created == {
        key: {
            "name": f"{PROJECT}-{bucket.name}",
            "delete_after_days": retention if key == "results" else bucket.lifecycle_delete_after_days,
        }
        for key, bucket in topology.buckets.items()
    }
    assert module.evaluate("var.results_retention_days", {**VARIABLES, "results_retention_days": "7"}) == 7


def test_bucket_notifications_publish_to_the_topology_topic(module: Module, topology: topology_module.Topology) -> None:
    created = module.instances(
        "google_storage_notification",
        "bucket",
        {"bucket": "bucket", "topic": "topic", "format": "payload_format", "events": "event_types"},
        VARIABLES,
    )
    assert created == {
        key: {
            "bucket": f"google_storage_bucket.bucket[{key}]",
            "topic": f"google_pubsub_topic.topic[{bucket.notification.topic}]",
            "format": bucket.notification.payload_format,
            "events": list(bucket.notification.event_types),
        }
        for key, bucket in topology.buckets.items()
        if bucket.notification is not None
    }


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ("pyannote", {"gpu": True, "engine": "auto", "cpu": "8", "memory": "32Gi", "vertex": False}),
        ("embedded", {"gpu": False, "engine": "embedded", "cpu": "1", "memory": "4Gi", "vertex": False}),
        ("vertex", {"gpu": False, "engine": "vertex", "cpu": "1", "memory": "4Gi", "vertex": True}),
    ],
)
def test_the_diarization_engine_decides_the_worker(module: Module, engine: str, expected: dict[str, Any]) -> None:
    worker = module.evaluate(
        "{gpu = local.worker_gpu, engine = local.worker_engine, cpu = local.worker_cpu, memory = local.worker_memory,"
        " vertex = local.vertex_dispatch}",
        {**VARIABLES, "diarization_engine": engine},
    )
    assert worker == expected
    apis = module.evaluate("local.apis", {**VARIABLES, "diarization_engine": engine})
    assert ("aiplatform.googleapis.com" in apis) is expected["vertex"]


def test_an_unknown_engine_is_refused_by_the_variable_validation(module: Module) -> None:
    with pytest.raises(AssertionError, match="diarization_engine must be"):
        module.evaluate("local.worker_engine", {**VARIABLES, "diarization_engine": "whisper"})


def test_a_webhook_key_rotation_gives_the_notification_service_both_versions(module: Module) -> None:
    secret = "google_secret_manager_secret.secret[webhook-signing-key]"
    steady = module.evaluate("local.secret_env.notification", VARIABLES)
    assert steady["SPEAKERLINE_WEBHOOK_SIGNING_KEY_SECRET"] == f"{secret}/versions/latest"
    assert "SPEAKERLINE_WEBHOOK_SIGNING_KEY_PREVIOUS_SECRET" not in steady
    rotating = module.evaluate(
        "local.secret_env",
        {**VARIABLES, "webhook_signing_key_version": "4", "webhook_signing_key_previous_version": "3"},
    )
    assert rotating["notification"]["SPEAKERLINE_WEBHOOK_SIGNING_KEY_SECRET"] == f"{secret}/versions/4"
    assert rotating["notification"]["SPEAKERLINE_WEBHOOK_SIGNING_KEY_PREVIOUS_SECRET"] == f"{secret}/versions/3"
    # only the notification service reads the signing key
    assert [name for name, env in rotating.items() if any("WEBHOOK_SIGNING" in key for key in env)] == ["notification"]


def test_every_service_gets_its_identity_and_its_entrypoint_decides_its_cloud_run_service(
    module: Module, topology: topology_module.Topology
) -> None:
    accounts = module.instances("google_service_account", "service", {"name": "account_id"}, VARIABLES)
    assert _names(accounts) == {name: f"speakerline-{name}" for name in topology.services}
    http = {name for name, svc in topology.services.items() if svc.entrypoint == "http"}
    assert http == {"api"}
    public = module.instances("google_cloud_run_v2_service", "http", {"name": "name"}, VARIABLES)
    assert _names(public) == {name: f"speakerline-{name}" for name in http}  # speakerline-api, as before the move
    push = module.instances("google_cloud_run_v2_service", "push", {"name": "name"}, VARIABLES)
    worker = module.instances("google_cloud_run_v2_service", "worker", {"name": "name"}, VARIABLES)
    assert set(push) | set(worker) == set(topology.services) - http and not set(push) & set(worker)


def test_the_api_publishes_to_and_reads_only_what_its_endpoints_need(module: Module) -> None:
    publishers = module.instances("google_pubsub_topic_iam_member", "service_publisher", {"topic": "topic"}, VARIABLES)
    assert {key: attrs["topic"] for key, attrs in publishers.items() if key.startswith("api/")} == {
        "api/audio-uploaded": "google_pubsub_topic.topic[audio-uploaded]",
        "api/job-outcomes": "google_pubsub_topic.topic[job-outcomes]",
    }
    datastore = module.instances("google_project_iam_member", "service_datastore", {"role": "role"}, VARIABLES)
    assert set(datastore) == {"projector", "notification", "api"}
    signers = module.instances("google_service_account_iam_member", "sign_as_self", {"role": "role"}, VARIABLES)
    assert set(signers) == {"api"}
