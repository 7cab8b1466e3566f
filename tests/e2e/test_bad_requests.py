"""Bad input to the HTTP API: malformed bodies, wrong types, unknown fields, oversized bodies, path traversal, bad and
revoked keys: a 4xx `application/problem+json` with a reason code, never a 5xx."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.cloud import firestore

from speakerline import apikeys, topology
from speakerline_tools import client, stack

from .bad_input import TEXT, Row, healthy, outcome, record
from .conftest import ApiHandle

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("bad_input_report")]


# --- C. the HTTP API --------------------------------------------------------------------------------------------------

UPLOAD = {"file_name": "a.wav", "content_type": "audio/wav", "size": 1000}


@dataclasses.dataclass(frozen=True)
class ApiCase:
    case: str
    method: str
    path: str
    status: int
    code: str
    json_body: Any = None
    content: bytes | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    auth: str = "key"  # "key", "none", or a literal Authorization header value


def _chunked(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), 8192):
        yield data[start : start + 8192]


API_CASES = [
    ApiCase("malformed JSON", "POST", "/v1/uploads", 422, "invalid_request", content=b'{"file_name": '),
    ApiCase("body is a JSON array", "POST", "/v1/uploads", 422, "invalid_request", json_body=[UPLOAD]),
    ApiCase(
        "body sent as text/plain",
        "POST",
        "/v1/uploads",
        422,
        "invalid_request",
        content=json.dumps(UPLOAD).encode(),
        headers={"Content-Type": "text/plain"},
    ),
    ApiCase("size as a string", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "size": "1000"}),
    ApiCase(
        "num_speakers true", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "num_speakers": True}
    ),
    ApiCase(
        "num_speakers 2.0", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "num_speakers": 2.0}
    ),
    ApiCase("file_name a number", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "file_name": 7}),
    ApiCase("unknown field", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "num_speaker": 2}),
    ApiCase("num_speakers 0", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "num_speakers": 0}),
    ApiCase(
        "num_speakers 1000", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "num_speakers": 1000}
    ),
    ApiCase(
        "min_speakers > max_speakers",
        "POST",
        "/v1/uploads",
        422,
        "invalid_request",
        json_body={**UPLOAD, "min_speakers": 5, "max_speakers": 2},
    ),
    ApiCase("size 0", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "size": 0}),
    ApiCase(
        "size over the limit", "POST", "/v1/uploads", 422, "file_too_large", json_body={**UPLOAD, "size": 5 * 1024**4}
    ),
    ApiCase(
        "content_type text/plain",
        "POST",
        "/v1/uploads",
        422,
        "unsupported_format",
        json_body={**UPLOAD, "content_type": "text/plain"},
    ),
    ApiCase(
        "webhook_url javascript:",
        "POST",
        "/v1/uploads",
        422,
        "invalid_request",
        json_body={**UPLOAD, "webhook_url": "javascript:alert(1)"},
    ),
    ApiCase(
        "body of 70 KB",
        "POST",
        "/v1/uploads",
        413,
        "request_too_large",
        json_body={**UPLOAD, "file_name": "x" * 70_000},
    ),
    ApiCase(
        "chunked body of 70 KB", "POST", "/v1/uploads", 413, "request_too_large", content=b"[" + b" " * 70_000 + b"]"
    ),
    ApiCase(
        "input_uri with ../../etc/passwd",
        "POST",
        "/v1/jobs",
        422,
        "input_not_found",
        json_body={"input_uri": "gs://speakerline-uploads/../../etc/passwd"},
    ),
    ApiCase(
        "input_uri in another bucket",
        "POST",
        "/v1/jobs",
        422,
        "input_not_allowed",
        json_body={"input_uri": "gs://someone-elses-bucket/a.wav"},
    ),
    ApiCase(
        "input_uri not gs://", "POST", "/v1/jobs", 422, "invalid_request", json_body={"input_uri": "file:///etc/passwd"}
    ),
    ApiCase(
        "Idempotency-Key of 300 characters",
        "POST",
        "/v1/jobs",
        422,
        "invalid_request",
        json_body={"input_uri": "gs://speakerline-uploads/a"},
        headers={"Idempotency-Key": "k" * 300},
    ),
    ApiCase("job id ../../etc/passwd", "GET", "/v1/jobs/..%2F..%2Fetc%2Fpasswd", 404, "not_found"),
    ApiCase("job id with a dot", "GET", "/v1/jobs/job_../result", 422, "invalid_request"),
    ApiCase("limit=abc", "GET", "/v1/jobs?limit=abc", 422, "invalid_request"),
    ApiCase("page_token=../x", "GET", "/v1/jobs?page_token=../x", 400, "invalid_page_token"),
    ApiCase(
        "result format=exe", "GET", "/v1/jobs/job_0123456789abcdef01234567/result?format=exe", 422, "invalid_request"
    ),
    ApiCase("unknown route", "GET", "/v1/secrets", 404, "not_found"),
    ApiCase("wrong method", "PUT", "/v1/uploads", 405, "method_not_allowed", json_body=UPLOAD),
    ApiCase("no Authorization", "GET", "/v1/me", 401, "unauthenticated", auth="none"),
    ApiCase("Bearer garbage", "GET", "/v1/me", 401, "unauthenticated", auth="Bearer nonsense"),
    ApiCase("Basic credentials", "GET", "/v1/me", 401, "unauthenticated", auth="Basic dXNlcjpwYXNzd29yZA=="),
    ApiCase(
        "well-formed key, wrong secret",
        "GET",
        "/v1/me",
        401,
        "unauthenticated",
        auth="Bearer slk_000000000000_" + "x" * 43,
    ),
    ApiCase("JWT-shaped token", "GET", "/v1/me", 401, "unauthenticated", auth="Bearer aaa.bbb.ccc"),
    ApiCase("Authorization of 8 KB", "GET", "/v1/me", 401, "unauthenticated", auth="Bearer slk_" + "x" * 8000),
]


def _problem_row(case: str, path: str, expected: str, response: requests.Response) -> Row:
    row = record(Row(case, f"API {path}", expected))
    is_problem = response.headers.get("content-type", "").startswith("application/problem+json")
    body = response.json() if is_problem else {}
    row.observed = f"{response.status_code} {body.get('code', '(no problem body)')}"
    row.shown = str(body.get("detail", response.text[:200]))
    row.answered = is_problem and 400 <= response.status_code < 500 and bool(body.get("code"))
    return row


def _check_problem(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code < 500, f"a {response.status_code} for bad input: {response.text[:500]}"
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    assert body["detail"] and body["type"].endswith("/" + code), body
    return body


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.case)
def test_bad_requests_are_4xx_problems_with_a_reason(api: ApiHandle, case: ApiCase) -> None:
    headers = dict(case.headers)
    if case.auth == "key":
        headers.update(api.auth())
    elif case.auth != "none":
        headers["Authorization"] = case.auth
    content = _chunked(case.content) if case.case.startswith("chunked") and case.content else case.content
    if content is not None:
        headers.setdefault("Content-Type", "application/json")
    response = requests.request(
        case.method, api.url + case.path, json=case.json_body, data=content, headers=headers, timeout=30
    )
    _problem_row(case.case, f"{case.method} {case.path.split('?')[0]}", f"{case.status} {case.code}", response)
    _check_problem(response, case.status, case.code)


def test_a_revoked_key_is_refused_at_once(api: ApiHandle, pipeline: stack.StackConfig) -> None:
    keys = apikeys.FirestoreApiKeys(firestore.Client(project=pipeline.project))
    key, record = keys.create("bad-input", "revoked by test_bad_requests")
    assert requests.get(f"{api.url}/v1/me", headers=api.auth(key), timeout=30).status_code == 200
    assert keys.revoke(record.key_id)
    response = requests.get(f"{api.url}/v1/me", headers=api.auth(key), timeout=30)
    _problem_row("revoked key", "GET /v1/me", "401 unauthenticated", response)
    body = _check_problem(response, 401, "unauthenticated")
    assert "revoked" in body["detail"]


def test_a_traversal_in_the_file_name_stays_in_the_jobs_folder(api: ApiHandle, pipeline: stack.StackConfig) -> None:
    """`../../etc/passwd` as the upload's name is not refused (a Windows path is a name people send): it is cut
    to its base name, the object lands in the job's own folder, and ingest then judges the content."""
    body = {"file_name": "../../etc/passwd", "content_type": "audio/wav", "size": len(TEXT)}
    signed = requests.post(f"{api.url}/v1/uploads", json=body, headers=api.auth(), timeout=30)
    row = record(
        Row("file name ../../etc/passwd", "API POST /v1/uploads + PUT", "201, then REJECTED unsupported_format")
    )
    row.observed = f"{signed.status_code}"
    assert signed.status_code == 201, signed.text
    upload = signed.json()
    bucket = topology.load().bucket("uploads")
    assert upload["gs_uri"] == f"gs://{bucket}/api/{upload['job_id']}/passwd"
    assert upload["upload_headers"]["x-goog-meta-filename"] == "passwd"
    put = requests.put(upload["upload_url"], data=TEXT, headers=upload["upload_headers"], timeout=30)
    assert put.status_code == 200, put.text
    job = client.wait(firestore.Client(project=pipeline.project), upload["job_id"], timeout_s=120)
    status, shown = outcome(job)
    row.observed, row.shown = f"201 {upload['gs_uri'].split('/', 3)[-1]}, then {status}", shown
    row.lost = job is None
    assert job is not None and job["status"] == "REJECTED", job
    assert job["error"]["code"] == "unsupported_format" and job["request"]["input"]["filename"] == "passwd"
    row.answered = True
    on_api = requests.get(f"{api.url}/v1/jobs/{upload['job_id']}", headers=api.auth(), timeout=30).json()
    assert on_api["file_name"] == "passwd" and on_api["error"]["code"] == "unsupported_format"


def test_the_stack_is_healthy_afterwards(pipeline: stack.StackConfig, api: ApiHandle) -> None:
    healthy(pipeline)
    assert requests.get(f"{api.url}/health", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{api.url}/v1/me", headers=api.auth(), timeout=10).status_code == 200
