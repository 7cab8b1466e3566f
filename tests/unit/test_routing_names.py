"""Routing names say what they handle: a subscription's `handler:` in infra/topology.yaml is the name of the handler
function its route calls, and a route that takes one event class is named after it (`on_audio_ingested` takes
`AudioIngested`)."""

from __future__ import annotations

import functools
import re

import pytest

from speakerline import bootstrap, topology
from speakerline.settings import Settings
from tests.fakes import MemoryBlobStore, RecordingPublisher

# services fed by subscriptions (an http-only service, the API, routes no events)
SERVICES = sorted({sub.service for sub in topology.load().subscriptions.values()})


def _snake(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


@pytest.mark.parametrize("name", SERVICES)
def test_each_route_is_named_as_its_handler_and_its_event(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # clients are built, never called
    settings = Settings(project="p", engine="embedded", webhook_signing_key="k")
    service = bootstrap.build_service(name, settings, publisher=RecordingPublisher(), blobs=MemoryBlobStore())
    assert service.routes
    for route_name, route in service.routes.items():
        assert isinstance(route.handler, functools.partial), route_name  # a handler function with its deps bound
        assert route.handler.func.__name__ == route_name
        assert route.handler.func.__module__ == f"{name}.handlers"
        if len(route.accepts) == 1:
            assert route_name == f"on_{_snake(route.accepts[0].__name__)}"


def test_the_snake_case_of_an_event_class() -> None:
    assert _snake("DiarizationCompleted") == "diarization_completed" and _snake("JobFailed") == "job_failed"
