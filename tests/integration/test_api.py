"""The API against the real emulators, in process: its OpenAPI contract under schemathesis, idempotent job
submission through Pub/Sub, paging over projected jobs in Firestore."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
import google.cloud.storage as gcs
import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from google.cloud import firestore
from schemathesis import GenerationMode, checks
from schemathesis.specs.openapi import checks as openapi_checks

from api.app import create_app
from api.wiring import Wired, build_wired
from projector.store import FirestoreJobStore
from speakerline import apikeys, events
from speakerline.bootstrap import Platform
from speakerline.events import AudioUploaded, models
from speakerline.settings import Settings
from speakerline_tools import stack, stack_keys

from .helpers import pull

pytestmark = pytest.mark.integration

UPLOADS = "speakerline-uploads"


@dataclasses.dataclass(frozen=True)
class InProcessApi:
    app: FastAPI
    client: TestClient
    key: str
    producer: str

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _wired(cfg: stack.StackConfig, tmp: Path, **settings: Any) -> Wired:
    stack_keys.ensure_signing_key(tmp / "key.json")
    return build_wired(
        Platform(
            "api",
            Settings(
                project=cfg.project,
                api_signing_key_file=tmp / "key.json",
                api_public_storage_url=f"http://{cfg.host}:{cfg.gcs_port}",
                api_sse_max_s=2.0,
                **settings,
            ),
        )
    )


@pytest.fixture(scope="module")
def api(emulators: stack.StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApi]:
    wired = _wired(
        emulators, tmp_path_factory.mktemp("api"), api_rate_limit_per_minute=100_000, api_rate_limit_burst=100_000
    )
    producer = "contract-test"
    key, _ = apikeys.FirestoreApiKeys(firestore.Client(project=emulators.project)).create(producer)
    app = create_app(wired)
    with TestClient(app) as client:
        yield InProcessApi(app, client, key, producer)


# Examples per operation and generation mode; each is a real request into the app and the emulators behind it.
EXAMPLES = 30
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
]


def test_the_openapi_contract_holds_for_generated_requests(api: InProcessApi) -> None:
    """No server error, and every answer (status, content type, headers, body) is one the document declares,
    for valid and invalid requests to every operation (schemathesis; its pytest plugin does not load under this
    pytest, so hypothesis runs each operation's strategy here)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            def call(case: Any) -> None:
                case.call_and_validate(headers=api.auth(), checks=CHECKS)

            try:
                call()
            except hypothesis.errors.Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong in a request without inputs
            except Exception as exc:
                raise AssertionError(f"{operation.label} ({mode.value}): {exc}") from exc


def test_the_openapi_document_has_examples_and_bearer_auth(api: InProcessApi) -> None:
    doc = api.client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    bodies = doc["components"]["schemas"]
    for name in ("UploadRequest", "Upload", "JobRequest", "Job", "Problem"):
        assert bodies[name].get("examples"), f"{name} has no example"


def _subscription(project: str, topic: str, name: str) -> str:
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, name)
    subscriber.create_subscription(request={"name": path, "topic": f"projects/{project}/topics/{topic}"})
    return name


def test_the_same_idempotency_key_gives_one_job_and_one_event(
    api: InProcessApi, emulators: stack.StackConfig, unique: str
) -> None:
    project = emulators.project
    watch = _subscription(project, "audio-uploaded", f"api-idempotency-{unique}")
    uri = f"gs://{UPLOADS}/by-uri/{unique}/meeting.wav"
    blob = gcs.Client(project=project).bucket(UPLOADS).blob(f"by-uri/{unique}/meeting.wav")
    blob.metadata = {"producer": api.producer}
    blob.upload_from_filename("tests/data/sample/conversation.flac", content_type="audio/flac")
    body = {"input_uri": uri, "num_speakers": 3, "correlation_id": unique}
    headers = {**api.auth(), "Idempotency-Key": f"key-{unique}"}

    first = api.client.post("/v1/jobs", json=body, headers=headers)
    again = api.client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == again.status_code == 202, first.text
    job_id = first.json()["job_id"]
    assert again.json()["job_id"] == job_id

    conflict = api.client.post("/v1/jobs", json={**body, "num_speakers": 2}, headers=headers)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"
    assert conflict.json()["code"] == "idempotency_key_reused"

    messages = pull(project, watch, want=3, timeout_s=8)
    # Only the API's announcements: the bucket upload above is announced by ingest too, when the services run.
    announced = [
        e
        for e in (events.parse_pubsub(m.data, dict(m.attributes)) for m in messages)
        if isinstance(e, AudioUploaded) and e.data.request.submitted_by == "api"
    ]
    assert [e.job_id for e in announced] == [job_id], "published once, whatever the repeats"
    request = announced[0].data.request
    assert request.producer == api.producer and request.options.num_speakers == 3
    assert request.input.generation == str(blob.generation)

    other_key = api.client.post("/v1/jobs", json=body, headers={**api.auth(), "Idempotency-Key": f"other-{unique}"})
    assert other_key.status_code == 202 and other_key.json()["job_id"] != job_id


def test_jobs_of_another_producers_object_are_refused(
    api: InProcessApi, emulators: stack.StackConfig, unique: str
) -> None:
    name = f"by-uri/{unique}/theirs.wav"
    blob = gcs.Client(project=emulators.project).bucket(UPLOADS).blob(name)
    blob.metadata = {"producer": "someone-else"}
    blob.upload_from_string(b"RIFF", content_type="audio/wav")
    answer = api.client.post("/v1/jobs", json={"input_uri": f"gs://{UPLOADS}/{name}"}, headers=api.auth())
    assert answer.status_code == 422 and answer.json()["code"] == "input_not_found"


def test_listing_pages_through_the_producers_jobs_newest_first(
    api: InProcessApi, emulators: stack.StackConfig, unique: str
) -> None:
    projector = FirestoreJobStore(firestore.Client(project=emulators.project))
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    ids = [f"job_list{unique}{i}" for i in range(5)]
    for i, job_id in enumerate(ids):
        for producer in (api.producer, "someone-else"):
            request = models.Request(
                input=models.Input(uri=f"gs://{UPLOADS}/{job_id}.wav", filename=f"{i}.wav"),
                options=models.Options(),
                producer=producer,
            )
            job = job_id if producer == api.producer else f"{job_id}x"
            event = AudioUploaded.new(models.AudioUploadedV1Data(job_id=job, request=request), source="//tests")
            projector.apply(dataclasses.replace(event, time=t0 + timedelta(minutes=i)))

    seen: list[str] = []
    token = None
    while True:
        params = {"limit": 2, **({"page_token": token} if token else {})}
        page = api.client.get("/v1/jobs", params=params, headers=api.auth()).json()
        seen += [j["job_id"] for j in page["jobs"]]
        token = page["next_page_token"]
        if not token:
            break
    mine = [job_id for job_id in seen if job_id in ids]
    assert mine == list(reversed(ids)), "newest first, each once"
    assert not any(job_id.endswith("x") for job_id in seen), "another producer's jobs are never listed"
    received = api.client.get("/v1/jobs", params={"status": "RECEIVED", "limit": 100}, headers=api.auth()).json()
    assert set(ids) <= {j["job_id"] for j in received["jobs"]}
    none = api.client.get("/v1/jobs", params={"status": "COMPLETED", "limit": 100}, headers=api.auth()).json()
    assert not set(ids) & {j["job_id"] for j in none["jobs"]}
    bad = api.client.get("/v1/jobs", params={"page_token": "job_doesnotexist1"}, headers=api.auth())
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_page_token"


def test_a_key_is_rate_limited_and_a_revoked_key_refused(
    emulators: stack.StackConfig, tmp_path: Path, unique: str
) -> None:
    keys = apikeys.FirestoreApiKeys(firestore.Client(project=emulators.project))
    key, record = keys.create(f"limited-{unique}")
    app = create_app(_wired(emulators, tmp_path, api_rate_limit_per_minute=60, api_rate_limit_burst=3))
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {key}"}
        assert [client.get("/v1/me", headers=auth).status_code for _ in range(3)] == [200, 200, 200]
        limited = client.get("/v1/me", headers=auth)
        assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert keys.revoke(record.key_id)
        time_to_refill = client.get("/v1/me", headers=auth)
        assert time_to_refill.status_code in (401, 429)
