"""Vertex AI CustomJob request building and submission (no GCP needed)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from diarization.engines.vertex import VertexAIDispatcher
from diarization.engines.vertex_job import (
    ENV_ENVELOPE_JSON,
    JOB_COMMAND,
    VertexConfig,
    build_custom_job_request,
    push_envelope,
    sanitize_label,
)
from speakerline import bootstrap, events, runtime
from speakerline.settings import Settings
from tests.fakes import VERTEX_JOB, FakeJobClient, MemoryBlobStore, RecordingPublisher, handler_context

from .handler_harness import ingested

SECRET = "projects/acme-prod/secrets/speakerline-hf-token/versions/latest"
SUBSCRIPTION = "diarization-audio-ingested"
#: an envelope-shaped document (build_custom_job_request only needs JSON)
ENVELOPE = {"message": {"data": "e30=", "attributes": {"ce-id": "ev-1"}, "messageId": "ev-1"}, "deliveryAttempt": 1}


def config(**overrides: Any) -> VertexConfig:
    base: dict[str, Any] = {
        "project": "acme-prod",
        "region": "europe-west4",
        "image_uri": "europe-west4-docker.pkg.dev/acme-prod/speakerline/diarization:abc123",
        "service_account": "speakerline-diarization@acme-prod.iam.gserviceaccount.com",
        "hf_token_secret": SECRET,
        "pyannote_model": "pyannote/speaker-diarization-community-1",
        "env": {"GOOGLE_CLOUD_PROJECT": "acme-prod", "SPEAKERLINE_BUCKET_PREFIX": "acme-prod-"},
        "labels": {"Team": "Speech ML"},
    }
    base.update(overrides)
    return VertexConfig(**base)


def build(**overrides: Any) -> dict[str, Any]:
    return build_custom_job_request(
        config(**overrides), job_id="Job_2026-11-22/ABC", envelope_json=json.dumps(ENVELOPE), event_id="ev-1"
    )


def pool(request: dict[str, Any]) -> dict[str, Any]:
    pools = request["custom_job"]["job_spec"]["worker_pool_specs"]
    assert len(pools) == 1
    return dict(pools[0])


def env_of(request: dict[str, Any]) -> dict[str, str]:
    entries = pool(request)["container_spec"]["env"]
    return {e["name"]: e["value"] for e in entries}


def test_parent_is_project_and_region() -> None:
    assert build()["parent"] == "projects/acme-prod/locations/europe-west4"


def test_machine_and_accelerator() -> None:
    spec = pool(build())
    assert spec["machine_spec"] == {
        "machine_type": "g2-standard-8",
        "accelerator_type": "NVIDIA_L4",
        "accelerator_count": 1,
    }
    assert spec["replica_count"] == 1
    assert spec["disk_spec"]["boot_disk_size_gb"] == 100


def test_cpu_only_job_has_no_accelerator_fields() -> None:
    request = build(machine_type="n2-standard-8", accelerator_count=0)
    assert pool(request)["machine_spec"] == {"machine_type": "n2-standard-8"}
    assert env_of(request)["SPEAKERLINE_DIARIZATION_DEVICE"] == "cpu"


def test_image_and_command_handle_one_push_envelope() -> None:
    container = pool(build())["container_spec"]
    assert container["image_uri"].endswith("/speakerline/diarization:abc123")
    assert container["command"] == JOB_COMMAND
    assert "python -m speakerline.worker diarization --envelope" in container["command"][2]
    assert "args" not in container
    assert json.loads(env_of(build())[ENV_ENVELOPE_JSON]) == ENVELOPE


def test_job_command_writes_the_envelope_file_verbatim(tmp_path: Path) -> None:
    """The shell wrapper must hand over any JSON unchanged (quotes, $, backslashes, newlines)."""
    tricky = json.dumps({"data": {"name": 'it\'s "$(rm -rf /)" `x` \\n %s $HOME', "nl": "a\nb"}})
    script = JOB_COMMAND[2].replace("/tmp/speakerline-envelope.json", str(tmp_path / "e.json"))
    script = script.split(" && exec ")[0]
    subprocess.run([JOB_COMMAND[0], "-c", script], check=True, env={ENV_ENVELOPE_JSON: tricky})
    assert (tmp_path / "e.json").read_text() == tricky


def test_env_carries_engine_config_and_secret_reference_only() -> None:
    env = env_of(build())
    assert env["SPEAKERLINE_ENGINE"] == "auto"
    assert env["SPEAKERLINE_VERTEX_DISPATCH"] == "false"
    assert env["SPEAKERLINE_PYANNOTE_MODEL"] == "pyannote/speaker-diarization-community-1"
    assert env["SPEAKERLINE_HF_TOKEN_SECRET"] == SECRET
    assert env["SPEAKERLINE_DIARIZATION_DEVICE"] == "cuda"
    assert env["PYANNOTE_METRICS_ENABLED"] == "false"
    assert env["GOOGLE_CLOUD_PROJECT"] == "acme-prod"
    assert env["SPEAKERLINE_BUCKET_PREFIX"] == "acme-prod-"
    assert not {"HF_TOKEN", "SPEAKERLINE_HF_TOKEN"} & set(env)


def test_passthrough_env_cannot_turn_dispatch_back_on() -> None:
    env = env_of(build(env={"SPEAKERLINE_VERTEX_DISPATCH": "true", "SPEAKERLINE_ENGINE": "vertex"}))
    assert env["SPEAKERLINE_VERTEX_DISPATCH"] == "false"
    assert env["SPEAKERLINE_ENGINE"] == "auto"


@pytest.mark.parametrize("name", ["HF_TOKEN", "SPEAKERLINE_HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"])
def test_token_values_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        config(env={name: "hf_abc"})


def test_secret_must_be_a_resource_name() -> None:
    with pytest.raises(ValueError, match="resource name"):
        config(hf_token_secret="hf_abcdefghijklmnop")
    config(hf_token_secret="projects/p/secrets/s")  # version optional


def test_labels_identify_the_job_and_are_valid_gcp_labels() -> None:
    labels = build()["custom_job"]["labels"]
    assert labels["job-id"] == "job_2026-11-22-abc"
    assert labels["event-id"] == "ev-1"
    assert labels["app"] == "speakerline"
    assert labels["component"] == "diarization"
    assert labels["team"] == "speech-ml"
    for key, value in labels.items():
        assert len(key) <= 63
        assert len(value) <= 63
        assert all(c.islower() or c.isdigit() or c in "-_" for c in key + value)


def test_sanitize_label_truncates() -> None:
    assert len(sanitize_label("X" * 100)) == 63


def test_service_account_scheduling_and_display_name() -> None:
    job = build()["custom_job"]
    assert job["job_spec"]["service_account"] == "speakerline-diarization@acme-prod.iam.gserviceaccount.com"
    assert job["job_spec"]["scheduling"] == {"timeout": {"seconds": 3600}, "restart_job_on_worker_restart": False}
    assert job["display_name"] == "speakerline-diarize-Job_2026-11-22/ABC"
    assert "service_account" not in build(service_account=None)["custom_job"]["job_spec"]


def test_request_is_deterministic() -> None:
    assert build() == build()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"job_id": ""}, "job_id"),
        ({"envelope_json": "not json"}, "Expecting value"),
    ],
)
def test_invalid_inputs(kwargs: dict[str, str], match: str) -> None:
    args = {"job_id": "j", "envelope_json": "{}"} | kwargs
    with pytest.raises(ValueError, match=match):
        build_custom_job_request(config(), job_id=args["job_id"], envelope_json=args["envelope_json"])


@pytest.mark.parametrize("missing", ["project", "region", "image_uri"])
def test_required_settings(missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        config(**{missing: ""})


@pytest.mark.slow
def test_request_is_a_valid_aiplatform_proto() -> None:
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")
    request = aiplatform_v1.CreateCustomJobRequest(build())
    job = request.custom_job
    assert job.job_spec.worker_pool_specs[0].machine_spec.accelerator_type == aiplatform_v1.AcceleratorType.NVIDIA_L4
    assert job.job_spec.worker_pool_specs[0].machine_spec.machine_type == "g2-standard-8"
    assert job.job_spec.scheduling.timeout.total_seconds() == 3600
    assert job.labels["job-id"] == "job_2026-11-22-abc"


def test_dispatcher_submits_through_injected_client() -> None:
    client = FakeJobClient()
    dispatcher = VertexAIDispatcher(config(), client, subscription=SUBSCRIPTION)
    name = dispatcher.submit("J1", json.dumps(ENVELOPE), event_id="ev-1")
    assert name == VERTEX_JOB
    assert client.requests == [
        build_custom_job_request(config(), job_id="J1", envelope_json=json.dumps(ENVELOPE), event_id="ev-1")
    ]
    assert dispatcher.model == "pyannote/speaker-diarization-community-1"
    assert dispatcher.accelerator == "NVIDIA_L4"


def test_dispatch_sends_the_event_as_a_push_envelope_of_the_diarization_subscription() -> None:
    event = ingested(job_id="job_j9_vertex")
    client = FakeJobClient()
    VertexAIDispatcher(config(), client, subscription=SUBSCRIPTION).dispatch(event)
    request = client.requests[0]
    assert request["custom_job"]["labels"]["job-id"] == "job_j9_vertex"
    assert request["custom_job"]["labels"]["event-id"] == sanitize_label(event.id)
    env = {
        e["name"]: e["value"]
        for e in request["custom_job"]["job_spec"]["worker_pool_specs"][0]["container_spec"]["env"]
    }
    envelope = json.loads(env[ENV_ENVELOPE_JSON])
    assert envelope == push_envelope(event, SUBSCRIPTION)
    assert (envelope["subscription"], envelope["deliveryAttempt"]) == (SUBSCRIPTION, 1)
    message = envelope["message"]
    assert message["messageId"] == event.id
    assert message["attributes"]["ce-type"] == events.AudioIngested.TYPE  # binary content mode
    back = events.parse_pubsub(base64.b64decode(message["data"]), message["attributes"])
    assert isinstance(back, events.AudioIngested)
    assert (back.id, back.data, back.traceparent) == (event.id, event.data, event.traceparent)


def test_the_dispatched_envelope_is_what_the_worker_handles(tmp_path: Path) -> None:
    """The custom job's `--envelope FILE` goes through the push path to the diarization route, on attempt 1."""
    seen: list[tuple[Any, runtime.Context]] = []
    service = bootstrap.build_service(
        "diarization", Settings(project="p", engine="embedded"), publisher=RecordingPublisher(), blobs=MemoryBlobStore()
    )
    route = service.routes["on_audio_ingested"]
    probe = runtime.Route(lambda e, c: seen.append((e, c)) or [], route.accepts)
    service.routes = {"on_audio_ingested": probe}
    event = ingested()
    assert runtime.handle_push_envelope(service, push_envelope(event, SUBSCRIPTION)) is runtime.Outcome.ACK
    ((received, context),) = seen
    assert isinstance(received, events.AudioIngested) and received.id == event.id and received.data == event.data
    assert (context.attempt, context.final_attempt, context.subscription) == (1, False, SUBSCRIPTION)
    assert context.message_id == event.id


def test_config_from_settings() -> None:
    cfg = VertexConfig.from_settings(
        Settings(
            project="acme-prod",
            bucket_prefix="acme-prod-",
            vertex_region="us-central1",
            vertex_image="us-docker.pkg.dev/acme/d:1",
            vertex_machine_type="g2-standard-8",
            vertex_accelerator="NVIDIA_L4",
            vertex_service_account="sa@acme.iam.gserviceaccount.com",
            hf_token_secret=SECRET,
            pyannote_model="gs://acme-models/pyannote",
            hf_token="hf_must_not_travel",
        )
    )
    assert (cfg.project, cfg.region, cfg.image_uri) == ("acme-prod", "us-central1", "us-docker.pkg.dev/acme/d:1")
    assert cfg.service_account == "sa@acme.iam.gserviceaccount.com"
    assert cfg.hf_token_secret == SECRET
    assert cfg.pyannote_model == "gs://acme-models/pyannote"
    assert dict(cfg.env) == {"GOOGLE_CLOUD_PROJECT": "acme-prod", "SPEAKERLINE_BUCKET_PREFIX": "acme-prod-"}
    env = env_of(build_custom_job_request(cfg, job_id="j", envelope_json="{}"))
    assert "hf_must_not_travel" not in json.dumps(env)


def test_config_from_settings_reads_the_deployment_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "GOOGLE_CLOUD_PROJECT": "acme-prod",
        "SPEAKERLINE_BUCKET_PREFIX": "acme-prod-",
        "SPEAKERLINE_LOG_LEVEL": "DEBUG",
        "SPEAKERLINE_MODEL_CACHE_DIR": "/models",
        "SPEAKERLINE_VERTEX_REGION": "us-central1",
        "SPEAKERLINE_VERTEX_IMAGE": "us-docker.pkg.dev/acme/d:1",
        "SPEAKERLINE_VERTEX_ACCELERATOR_COUNT": "2",
        "SPEAKERLINE_VERTEX_WORKER_ENGINE": "pyannote",
        "SPEAKERLINE_HF_TOKEN_SECRET": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    cfg = VertexConfig.from_settings(Settings())
    assert (cfg.project, cfg.region, cfg.accelerator_count, cfg.worker_engine) == (
        "acme-prod",
        "us-central1",
        2,
        "pyannote",
    )
    assert cfg.hf_token_secret == SECRET
    assert dict(cfg.env) == {
        "GOOGLE_CLOUD_PROJECT": "acme-prod",
        "SPEAKERLINE_BUCKET_PREFIX": "acme-prod-",
        "SPEAKERLINE_LOG_LEVEL": "DEBUG",
        "SPEAKERLINE_MODEL_CACHE_DIR": "/models",
    }


def test_a_vertex_worker_dispatches_through_the_topologys_subscription() -> None:
    client = FakeJobClient()
    settings = Settings(project="acme-prod", vertex_dispatch=True, vertex_region="europe-west4", vertex_image="img:1")
    service = bootstrap.build_service(
        "diarization", settings, publisher=RecordingPublisher(), blobs=MemoryBlobStore(), vertex_jobs=client
    )
    route = service.routes["on_audio_ingested"]
    assert service.warm_up is None  # nothing to load: the custom job diarizes
    event = ingested()

    (started,) = route.handler(event, handler_context())

    assert isinstance(started, events.DiarizationStarted)
    assert started.payload()["engine"] == {"name": "vertex", "model": settings.pyannote_model, "device": "NVIDIA_L4"}
    (request,) = client.requests
    envelope = json.loads(env_of(request)[ENV_ENVELOPE_JSON])
    (sub,) = settings.topology.subscriptions_of("diarization")
    assert envelope == push_envelope(event, sub.name) and sub.handler == "on_audio_ingested"
    assert env_of(request)["SPEAKERLINE_VERTEX_DISPATCH"] == "false"
