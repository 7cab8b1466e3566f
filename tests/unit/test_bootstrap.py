"""One bootstrap: typed settings read once, `build_service` wiring every service the same way, two entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from speakerline import bootstrap, events, runtime, topology
from speakerline.settings import Settings, or_default
from tests.fakes import MemoryBlobStore, RecordingPublisher

SERVICES = sorted(topology.load().services)


def test_settings_come_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-env")
    monkeypatch.setenv("SPEAKERLINE_MERGE_GAP_S", "0.75")
    monkeypatch.setenv("SPEAKERLINE_ALLOW_PRIVATE_WEBHOOKS", "true")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    settings = Settings()
    assert (settings.project, settings.merge_gap_s, settings.allow_private_webhooks) == ("from-env", 0.75, True)
    assert settings.hf_token == "hf_secret" and "hf_secret" not in repr(settings)
    assert settings.min_segment_s is None  # unset tuning: the service's own default applies
    # Tests (and anyone embedding a service) pass values directly: no environment needed.
    assert Settings(project="given", merge_gap_s=1.0).merge_gap_s == 1.0


def test_a_bad_setting_is_refused_at_start_up_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKERLINE_MAX_DURATION_S", "a day")
    with pytest.raises(ValueError, match="SPEAKERLINE_MAX_DURATION_S"):
        Settings()


def test_a_secret_field_prefers_its_value() -> None:
    settings = Settings(project="p", webhook_signing_key="k", webhook_signing_key_secret="projects/p/secrets/s")
    assert settings.secret("webhook_signing_key") == "k"
    assert Settings(project="p").secret("slack_webhook_url") is None


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_wired_by_build_service(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # clients are built, never called
    settings = Settings(project="p", engine="embedded", webhook_signing_key="k")
    service = bootstrap.build_service(name, settings, publisher=RecordingPublisher(), blobs=MemoryBlobStore())
    handlers = {sub.handler for sub in settings.topology.subscriptions_of(name)}
    assert handlers and set(service.routes) == handlers
    for route in service.routes.values():
        assert route.accepts and all(issubclass(cls, events.Event) for cls in route.accepts)
    assert service.name == name


def test_build_service_refuses_a_wiring_that_misses_a_subscription(monkeypatch: pytest.MonkeyPatch) -> None:
    import postprocess.wiring

    real = postprocess.wiring.wire
    monkeypatch.setattr(postprocess.wiring, "wire", lambda platform: bootstrap.Wiring(routes={}))
    with pytest.raises(ValueError, match="diarization"):
        bootstrap.build_service("postprocess", Settings(project="p"), publisher=RecordingPublisher())
    assert real is not postprocess.wiring.wire
    with pytest.raises(KeyError, match="nosuch"):
        bootstrap.build_service("nosuch", Settings(project="p"))


def test_the_push_function_answers_bad_requests_without_handling_them() -> None:
    class Request:
        path = "/"

        def __init__(self, body: object) -> None:
            self.body = body

        def get_json(self, silent: bool = False) -> object:
            return self.body

    unset = bootstrap.push_http_handler(Settings(project="p", service=""))
    assert unset(Request({"message": {}}))[1] == 500
    handle = bootstrap.push_http_handler(Settings(project="p", service="postprocess"))
    assert handle(Request({"hello": "world"}))[1] == 400
    assert handle(Request(None))[1] == 400


def test_the_worker_entry_point_names_its_arguments() -> None:
    done = subprocess.run([sys.executable, "-m", "speakerline.worker", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--envelope" in done.stdout and "service" in done.stdout


def test_a_handler_generator_publishes_each_event_as_it_is_yielded() -> None:
    """Events a handler yields before failing are out already (e.g. diarization.started before the engine)."""
    topo = topology.load()
    sub = topo.subscriptions_of("postprocess")[0]
    publisher = RecordingPublisher()
    example = events.parse_json(Path("schemas/events/diarization.completed/v1.example.json").read_bytes())
    seen_before_failure: list[int] = []

    def handler(event: events.AnyEvent, context: runtime.Context):  # type: ignore[no-untyped-def]
        yield events.JobFailed.caused_by(
            event,
            events.models.JobFailedV1Data(
                job_id=event.data.job_id, error=events.job_error("postprocess", "x", "m", retriable=True)
            ),
            source="//t",
        )
        seen_before_failure.append(len(publisher.events))
        raise RuntimeError("later failure")

    service = runtime.ServiceDef(
        name="postprocess",
        routes={sub.handler: runtime.Route(handler, accepts=(events.DiarizationCompleted,))},
        publisher=publisher,
        topology=topo,
    )
    body, attributes = events.to_pubsub(example)
    outcome = runtime.process(service, sub, runtime.Delivery(body, attributes, "m1", 1))
    assert outcome is runtime.Outcome.NACK
    assert seen_before_failure == [1] and publisher.types() == [events.JobFailed.TYPE]


def test_a_tuning_setting_left_none_is_the_services_default() -> None:
    assert or_default(None, 5.0) == 5.0
    assert or_default(0.0, 5.0) == 0.0  # a value, not "unset"
    assert or_default(2.5, 5.0) == 2.5
