"""api.app: the routes' HTTP shape (problems, body limit, studio) over in-memory doubles; no emulators."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import Authenticator, RateLimiter
from api.handlers import ApiDeps
from api.wiring import Wired, config
from speakerline import apikeys
from speakerline.settings import Settings
from tests.fakes import MemoryApiStore, MemoryBlobStore, MemoryFirestore, MemoryObjects, RecordingPublisher

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


class App:
    def __init__(self, burst: int = 100) -> None:
        settings = Settings(project="p")
        self.store = MemoryApiStore()
        self.objects = MemoryObjects()
        self.publisher = RecordingPublisher()
        deps = ApiDeps(
            config(settings, "//speakerline/api"), self.store, self.objects, MemoryBlobStore(), self.publisher
        )
        keys = apikeys.FirestoreApiKeys(MemoryFirestore())
        self.key, _ = keys.create("newsroom")
        wired = Wired(
            deps=deps,
            authenticate=Authenticator(keys),
            limiter=RateLimiter(per_minute=60, burst=burst),
            settings=settings,
        )
        self.client = TestClient(create_app(wired), raise_server_exceptions=False)
        self.auth = {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def app() -> App:
    return App()


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"].endswith("/" + code)
    assert body["title"] and body["detail"]
    return body


def test_health_needs_no_key(app: App) -> None:
    response = app.client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_me_without_a_key_is_a_401_problem(app: App) -> None:
    response = app.client.get("/v1/me")
    body = _problem(response, 401, "unauthenticated")
    assert body["title"] == "Unauthorized" and body["instance"] == "/v1/me"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_me_with_a_wrong_key_is_401(app: App) -> None:
    _problem(
        app.client.get("/v1/me", headers={"Authorization": "Bearer slk_000000000000_" + "x" * 43}),
        401,
        "unauthenticated",
    )


def test_me_with_the_key(app: App) -> None:
    response = app.client.get("/v1/me", headers=app.auth)
    assert response.status_code == 200
    assert response.json() == {"producer": "newsroom", "key_id": apikeys.parse(app.key)[0]}  # type: ignore[index]


def test_too_many_requests_is_429_with_retry_after() -> None:
    small = App(burst=2)
    assert small.client.get("/v1/me", headers=small.auth).status_code == 200
    assert small.client.get("/v1/me", headers=small.auth).status_code == 200
    response = small.client.get("/v1/me", headers=small.auth)
    _problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1


BIG = b'{"file_name": "' + b"x" * (70 * 1024) + b'", "content_type": "audio/wav", "size": 1}'


def test_a_body_over_the_limit_is_413(app: App) -> None:
    response = app.client.post("/v1/uploads", content=BIG, headers={**app.auth, "Content-Type": "application/json"})
    body = _problem(response, 413, "request_too_large")
    assert str(64 * 1024) in body["detail"]
    assert not app.objects.signed_puts


def test_a_body_over_the_limit_is_413_before_authentication(app: App) -> None:
    _problem(app.client.post("/v1/uploads", content=BIG), 413, "request_too_large")


def _chunks() -> Iterator[bytes]:
    for i in range(0, len(BIG), 8192):
        yield BIG[i : i + 8192]


def test_the_chunked_request_has_no_content_length(app: App) -> None:
    seen: dict[str, str] = {}
    request = app.client.build_request("POST", "/v1/uploads", content=_chunks())
    seen.update(request.headers)
    assert "content-length" not in seen and seen.get("transfer-encoding") == "chunked"


def test_a_chunked_body_over_the_limit_is_413(app: App) -> None:
    response = app.client.post(
        "/v1/uploads", content=_chunks(), headers={**app.auth, "Content-Type": "application/json"}
    )
    _problem(response, 413, "request_too_large")


def test_a_body_within_the_limit_passes(app: App) -> None:
    body = {"file_name": "a.wav", "content_type": "audio/wav", "size": 10}
    response = app.client.post("/v1/uploads", json=body, headers=app.auth)
    assert response.status_code == 201, response.text
    assert response.json()["upload_headers"]["x-goog-meta-producer"] == "newsroom"


def test_invalid_json_is_422_invalid_request(app: App) -> None:
    response = app.client.post(
        "/v1/uploads", content=b'{"file_name": ', headers={**app.auth, "Content-Type": "application/json"}
    )
    body = _problem(response, 422, "invalid_request")
    assert body["detail"] == "The body is not valid JSON (at character 14)."


def test_an_invalid_field_is_422_with_the_field_errors(app: App) -> None:
    response = app.client.post(
        "/v1/uploads", json={"file_name": "a.wav", "content_type": "audio/wav", "size": 0}, headers=app.auth
    )
    body = _problem(response, 422, "invalid_request")
    assert "size" in body["detail"]
    assert any(e["loc"][-1] == "size" for e in body["errors"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size", "10"),
        ("size", 10.0),
        ("size", True),
        ("num_speakers", "3"),
        ("num_speakers", 3.0),
        ("num_speakers", True),
        ("file_name", 123),
        ("content_type", ["audio/wav"]),
        ("webhook_url", {"url": "https://hooks.example/x"}),
    ],
)
def test_a_value_of_the_wrong_json_type_is_422_not_coerced(app: App, field: str, value: Any) -> None:
    """Lax parsing took "size": "10" and "num_speakers": true (as 1 speaker!) and signed an upload for them."""
    signed = len(app.objects.signed_puts)
    body = {"file_name": "a.wav", "content_type": "audio/wav", "size": 10, field: value}
    response = app.client.post("/v1/uploads", json=body, headers=app.auth)
    problem = _problem(response, 422, "invalid_request")
    assert field in problem["detail"]
    assert [e["loc"][-1] for e in problem["errors"]] == [field]
    assert len(app.objects.signed_puts) == signed


@pytest.mark.parametrize("path", ["/v1/uploads", "/v1/jobs"])
def test_an_unknown_field_is_422_naming_it(app: App, path: str) -> None:
    body = {"file_name": "a.wav", "content_type": "audio/wav", "size": 10, "input_uri": "gs://speakerline-uploads/a"}
    body = {k: v for k, v in body.items() if (k == "input_uri") == (path == "/v1/jobs")}
    response = app.client.post(path, json={**body, "num_speaker": 2}, headers=app.auth)
    problem = _problem(response, 422, "invalid_request")
    assert "num_speaker" in problem["detail"] and "Extra inputs" in problem["detail"]


def test_a_job_request_of_the_wrong_types_is_422(app: App) -> None:
    for body in ({"input_uri": 42}, {"input_uri": "gs://speakerline-uploads/a", "max_speakers": "4"}):
        _problem(app.client.post("/v1/jobs", json=body, headers=app.auth), 422, "invalid_request")
    assert not app.publisher.events


def test_a_handler_refusal_is_a_problem(app: App) -> None:
    response = app.client.post(
        "/v1/uploads", json={"file_name": "a.txt", "content_type": "text/plain", "size": 10}, headers=app.auth
    )
    body = _problem(response, 422, "unsupported_format")
    assert body["instance"] == "/v1/uploads"


def test_another_producers_job_is_a_404_problem(app: App) -> None:
    app.store.claim("job_0123456789abcdef01234567", "other", None)
    _problem(app.client.get("/v1/jobs/job_0123456789abcdef01234567", headers=app.auth), 404, "not_found")


def test_an_unknown_route_is_a_404_problem(app: App) -> None:
    body = _problem(app.client.get("/v1/nothing-here", headers=app.auth), 404, "not_found")
    assert body["instance"] == "/v1/nothing-here"


def test_the_studio_is_served_at_the_root(app: App) -> None:
    response = app.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert app.client.get("/studio.js").status_code == 200


def test_the_openapi_document_lists_the_routes(app: App) -> None:
    paths = app.client.get("/openapi.json").json()["paths"]
    assert {"/v1/uploads", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events"} <= set(paths)
