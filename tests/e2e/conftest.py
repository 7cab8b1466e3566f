"""The whole stack as separate processes (`stack up`: emulators, every service, the API), shared by the e2e tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from google.cloud import firestore

from speakerline import apikeys
from speakerline_tools import stack

SECRET = "e2e-signing-secret"


@pytest.fixture(scope="session")
def pipeline(emulators: stack.StackConfig) -> Iterator[stack.StackConfig]:
    cfg = dataclasses.replace(
        emulators,
        services=True,
        service_env={
            "SPEAKERLINE_WEBHOOK_SIGNING_KEY": SECRET,
            "SPEAKERLINE_ENGINE": "embedded",
            "PYANNOTE_METRICS_ENABLED": "false",
            "HF_HUB_OFFLINE": "1",
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
