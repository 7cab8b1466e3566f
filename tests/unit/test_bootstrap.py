"""One bootstrap: typed settings read once, `build_service` wiring every service (the API included) the same way,
and one start sequence for every entry point (pull, push, envelope, http)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from speakerline import apikeys, bootstrap, events, runtime, topology, vertexjobs
from speakerline.settings import Settings, or_default
from tests.fakes import MemoryBlobStore, MemoryFirestore, RecordingPublisher

SERVICES = sorted(topology.load().services)


def _doubles() -> bootstrap.Adapters:
    """Every adapter a wiring may ask for, as a double: wiring never reaches a cloud."""
    return {
        "publisher": RecordingPublisher(),
        "blobs": MemoryBlobStore(),
        "firestore": MemoryFirestore(),
        "storage_client": object(),  # the API's signed URLs; never called while wiring
    }


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


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_wired_by_build_service(name: str) -> None:
    settings = Settings(project="p", engine="embedded", webhook_signing_key="k")
    built = bootstrap.build(name, settings, **_doubles())
    service = built.service
    handlers = {sub.handler for sub in settings.topology.subscriptions_of(name)}
    assert set(service.routes) == handlers
    for route in service.routes.values():
        assert route.accepts and all(issubclass(cls, events.Event) for cls in route.accepts)
    assert service.name == name
    # an events service takes its subscriptions' events; an http service (the API) serves its app instead
    if settings.topology.services[name].entrypoint == "http":
        assert not handlers and built.app is not None
    else:
        assert handlers and built.app is None


def test_the_api_is_a_topology_service_that_runs_its_http_app() -> None:
    api = topology.load().services["api"]
    assert (api.module, api.entrypoint) == ("api", "http")
    assert topology.load().subscriptions_of("api") == []


def test_adapters_are_replaced_through_the_platform_only() -> None:
    firestore = MemoryFirestore()
    platform = bootstrap.Platform("api", Settings(project="p"), firestore=firestore)
    assert platform.firestore is firestore
    with pytest.raises(TypeError, match="nosuch"):
        bootstrap.Platform("api", Settings(project="p"), nosuch=object())  # type: ignore[call-arg]


def test_the_platform_makes_the_vertex_client_for_the_settings_endpoint() -> None:
    """The region's Vertex AI endpoint unless one is set (a local fake's, in tests); the client itself is made on
    first call, so a process without credentials still wires (test_gpu_fallback: its first call then fails)."""
    regional = bootstrap.Platform("diarization", Settings(project="p", vertex_region="europe-west4")).vertex_jobs
    assert isinstance(regional, vertexjobs.VertexJobService)
    assert regional.endpoint == "europe-west4-aiplatform.googleapis.com"
    settings = Settings(project="p", vertex_region="europe-west4", vertex_api_endpoint="http://127.0.0.1:9")
    local = bootstrap.Platform("diarization", settings).vertex_jobs
    assert isinstance(local, vertexjobs.VertexJobService) and local.endpoint == "http://127.0.0.1:9"


def test_a_secret_setting_is_read_through_the_platform_secret_adapter() -> None:
    class Versions:
        def access(self, version: str) -> str:
            return f"value of {version}"

    settings = Settings(project="p", webhook_signing_key="k", slack_webhook_url_secret="projects/p/secrets/s/1")
    platform = bootstrap.Platform("notification", settings, secrets=Versions())
    assert platform.secret("webhook_signing_key") == "k"
    assert platform.secret("slack_webhook_url") == "value of projects/p/secrets/s/1"
    assert platform.secret("discord_webhook_url") is None


def test_a_secret_setting_may_come_from_a_file_unless_its_value_is_set(tmp_path: Path) -> None:
    """docker compose: the provision service generates the webhook key into a volume; a key set in .env wins."""
    key_file = tmp_path / "webhook-signing-key"
    key_file.write_text("generated\n")
    from_file = bootstrap.Platform("notification", Settings(project="p", webhook_signing_key_file=key_file))
    assert from_file.secret("webhook_signing_key") == "generated"
    given = Settings(project="p", webhook_signing_key="set", webhook_signing_key_file=key_file)
    assert bootstrap.Platform("notification", given).secret("webhook_signing_key") == "set"


def _record_start_up(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The steps of the start sequence, in order, as they happen."""
    import postprocess.wiring

    steps: list[str] = []
    monkeypatch.setattr(bootstrap, "observe", lambda name, settings: steps.append(f"telemetry {name}"))
    monkeypatch.setattr(bootstrap.failpoints, "configure", lambda path: steps.append(f"failpoints {path}"))
    real = postprocess.wiring.wire

    def wire(platform: bootstrap.Platform) -> bootstrap.Wiring:
        steps.append("wire")
        wiring = real(platform)
        return bootstrap.Wiring(routes=wiring.routes, warm_up=lambda: steps.append("warm-up"))

    monkeypatch.setattr(postprocess.wiring, "wire", wire)
    return steps


@pytest.mark.parametrize("mode", ["pull", "push", "envelope"])
def test_every_mode_starts_with_the_same_sequence(mode: bootstrap.Mode, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = _record_start_up(monkeypatch)
    settings = Settings(project="p", failpoints_file=Path("fp.json"))
    built = bootstrap.start("postprocess", mode, settings, **_doubles())
    assert steps == ["telemetry postprocess", "failpoints fp.json", "wire", "warm-up"]
    assert set(built.service.routes) == {"on_diarization_completed"}


def test_start_refuses_a_missing_project_and_the_wrong_mode_before_anything_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps = _record_start_up(monkeypatch)
    with pytest.raises(bootstrap.ConfigurationError, match="GOOGLE_CLOUD_PROJECT"):
        bootstrap.start("postprocess", "pull", Settings(project=""))
    with pytest.raises(bootstrap.ConfigurationError, match="http"):
        bootstrap.start("postprocess", "http", Settings(project="p"))
    with pytest.raises(bootstrap.ConfigurationError, match="'http'"):
        bootstrap.start("api", "pull", Settings(project="p"))
    assert steps == []
    with pytest.raises(SystemExit, match="GOOGLE_CLOUD_PROJECT"):
        bootstrap.run_worker("postprocess", Settings(project=""))


def test_the_http_entry_point_serves_the_api_app_through_the_same_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    steps: list[str] = []
    monkeypatch.setattr(bootstrap, "observe", lambda name, settings: steps.append(f"telemetry {name}"))
    adapters = _doubles()
    key, _ = apikeys.FirestoreApiKeys(adapters["firestore"]).create("newsroom")
    app = bootstrap.http_app("api", Settings(project="p"), **adapters)
    client = TestClient(app)
    assert steps == ["telemetry api"]
    assert client.get("/health").status_code == 200
    # the key was made in the Firestore double given to the platform: the app authenticates with that adapter
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json()["producer"] == "newsroom"


def test_build_service_refuses_a_wiring_that_misses_a_subscription(monkeypatch: pytest.MonkeyPatch) -> None:
    import postprocess.wiring

    real = postprocess.wiring.wire
    monkeypatch.setattr(postprocess.wiring, "wire", lambda platform: bootstrap.Wiring(routes={}))
    with pytest.raises(ValueError, match="diarization"):
        bootstrap.build_service("postprocess", Settings(project="p"), publisher=RecordingPublisher())
    assert real is not postprocess.wiring.wire
    with pytest.raises(KeyError, match="nosuch"):
        bootstrap.build_service("nosuch", Settings(project="p"))


def test_the_push_function_answers_bad_requests_without_handling_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "observe", lambda name, settings: None)

    class Request:
        path = "/"

        def __init__(self, body: object) -> None:
            self.body = body

        def get_json(self, silent: bool = False) -> object:
            return self.body

    unset = bootstrap.push_http_handler(Settings(project="p", service=""))
    assert unset(Request({"message": {}}))[1] == 500
    keyless = bootstrap.push_http_handler(Settings(project="p", service="notification"))
    answer, status = keyless(Request({"message": {}}))
    assert status == 500 and "signing key" in answer
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
