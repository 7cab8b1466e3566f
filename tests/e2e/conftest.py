"""The whole stack as separate processes (`stack up`: emulators, every service, the API), shared by the e2e tests."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import google.cloud.storage as gcs
import pytest
from google.cloud import firestore

from speakerline import apikeys, topology
from speakerline_tools import stack
from tests.conftest import WebhookReceiver

from .bad_input import write_report
from .faults import SAMPLE, Failpoints


@pytest.fixture(scope="session")
def team_channel() -> Iterator[WebhookReceiver]:
    """The stack's Slack channel (every job outcome is posted there too): a second channel per job, so that the
    fault tests can stop the notification service between two channels."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="session")
def pipeline(emulators: stack.StackConfig, team_channel: WebhookReceiver) -> Iterator[stack.StackConfig]:
    """No webhook signing key is configured: the stack generates one, as it does for a new user."""
    cfg = dataclasses.replace(
        emulators,
        services=True,
        service_env={
            "SPEAKERLINE_ENGINE": "embedded",
            # limits low enough for test_bad_uploads to go just past them with small files
            "SPEAKERLINE_MAX_UPLOAD_BYTES": "8388608",
            "SPEAKERLINE_MAX_DURATION_S": "600",
            "PYANNOTE_METRICS_ENABLED": "false",
            "HF_HUB_OFFLINE": "1",
            "SPEAKERLINE_SLACK_WEBHOOK_URL": team_channel.url("/slack"),
            # fault injection for tests/e2e/test_faults*.py (speakerline.failpoints); nothing is armed by default
            "SPEAKERLINE_FAILPOINTS_FILE": str(emulators.root / "failpoints.json"),
        },
    )
    stack.up(cfg, say=lambda _: None, timeout_s=240)
    yield cfg  # the emulators fixture stops everything, services included


@dataclasses.dataclass(frozen=True)
class ApiHandle:
    url: str  # the API and the studio (at /)
    key: str  # an API key of producer "studio-test"
    other_key: str  # a key of another producer
    producer: str = "studio-test"

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}


@pytest.fixture(scope="session")
def api(pipeline: stack.StackConfig) -> ApiHandle:
    """The running API of the stack, with keys made as `speakerline apikey create` makes them."""
    keys = apikeys.FirestoreApiKeys(firestore.Client(project=pipeline.project))
    key, _ = keys.create("studio-test", "e2e")
    other, _ = keys.create("someone-else", "e2e")
    return ApiHandle(url=pipeline.api_url, key=key, other_key=other)


@pytest.fixture(scope="module")
def bad_input_report() -> Iterator[None]:
    """After each bad input module: the table of every case tried so far (the modules record into one registry)."""
    yield
    write_report()


@pytest.fixture(scope="module")
def failpoints(pipeline: stack.StackConfig) -> Iterator[Failpoints]:
    points = Failpoints(Path(pipeline.service_env["SPEAKERLINE_FAILPOINTS_FILE"]))
    yield points
    points.path.unlink(missing_ok=True)  # nothing stays armed for the tests after these


@pytest.fixture(scope="module")
def recording(pipeline: stack.StackConfig) -> str:
    """Real speech in the work bucket (which starts no job when written to)."""
    bucket = topology.load().bucket("work")
    blob = gcs.Client(project=pipeline.project).bucket(bucket).blob(f"e2e-fixtures/{uuid.uuid4().hex}.flac")
    blob.upload_from_filename(str(SAMPLE))
    return f"gs://{bucket}/{blob.name}"


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.server.shutdown()
