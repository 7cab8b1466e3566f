"""End to end through the HTTP API, as a producer would use it: sign an upload, PUT real speech to the signed URL,
follow the job over Server-Sent Events to COMPLETED, read the segments; other producers and anonymous callers
see nothing; results come through signed URLs; DELETE removes the files and marks the job."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.cloud.storage as gcs
import pytest
import requests

from speakerline_tools import stack

from ..integration.helpers import wait_for
from .conftest import ApiHandle

pytestmark = pytest.mark.e2e

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "conversation.flac"
ORDER = ["PENDING", "RECEIVED", "INGESTED", "DIARIZING", "DIARIZED", "COMPLETED"]


def sse_events(response: requests.Response) -> Iterator[dict[str, Any]]:
    """The events of a text/event-stream response: {event, id, data}."""
    event: dict[str, Any] = {}
    for raw in response.iter_lines(decode_unicode=True):
        line = raw or ""
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            event[field] = value[1:] if value.startswith(" ") else value


def follow(api: ApiHandle, job_id: str, last_event_id: str | None = None) -> list[dict[str, Any]]:
    headers = {**api.auth(), **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    with requests.get(f"{api.url}/v1/jobs/{job_id}/events", headers=headers, stream=True, timeout=900) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [{**e, "job": json.loads(e["data"])} for e in sse_events(response)]


@pytest.fixture(scope="module")
def completed(api: ApiHandle) -> dict[str, Any]:
    """One job submitted through the API, followed over SSE to its end."""
    body = {"file_name": SAMPLE.name, "content_type": "audio/flac", "size": SAMPLE.stat().st_size}
    upload = requests.post(f"{api.url}/v1/uploads", json=body, headers=api.auth(), timeout=30)
    assert upload.status_code == 201, upload.text
    signed = upload.json()
    put = requests.put(signed["upload_url"], data=SAMPLE.read_bytes(), headers=signed["upload_headers"], timeout=60)
    assert put.status_code == 200, put.text
    streamed = follow(api, signed["job_id"])
    return {"upload": signed, "events": streamed}


def test_an_upload_through_the_api_streams_its_states_to_completed_with_segments(
    api: ApiHandle, completed: dict[str, Any]
) -> None:
    job_id = completed["upload"]["job_id"]
    streamed = completed["events"]
    statuses = [e["job"]["status"] for e in streamed]
    assert statuses[-1] == "COMPLETED", statuses
    assert all(e["event"] == "job" and e["job"]["job_id"] == job_id for e in streamed)
    ids = [int(e["id"]) for e in streamed]
    assert ids == sorted(set(ids)), f"event ids must strictly increase: {ids}"
    assert [ORDER.index(s) for s in statuses] == sorted(ORDER.index(s) for s in statuses), statuses
    assert len(set(statuses)) >= 3, f"expected to watch the job move through its states, saw {statuses}"

    job = requests.get(f"{api.url}/v1/jobs/{job_id}", headers=api.auth(), timeout=30).json()
    assert job["status"] == "COMPLETED"
    assert job["file_name"] == SAMPLE.name
    assert job["request"]["producer"] == api.producer
    assert {s["speaker"] for s in job["segments"]} and len({s["speaker"] for s in job["segments"]}) == 3
    assert all(0 <= s["start"] < s["end"] for s in job["segments"])
    assert job["result"]["formats"] == ["json", "rttm", "vtt"]


def test_other_producers_get_404_and_anonymous_callers_401(api: ApiHandle, completed: dict[str, Any]) -> None:
    job_id = completed["upload"]["job_id"]
    for path in ("", "/events", "/result", "/audio"):
        other = requests.get(f"{api.url}/v1/jobs/{job_id}{path}", headers=api.auth(api.other_key), timeout=30)
        assert other.status_code == 404, path
        assert other.headers["content-type"] == "application/problem+json"
        assert other.json()["code"] == "not_found"
        anonymous = requests.get(f"{api.url}/v1/jobs/{job_id}{path}", timeout=30)
        assert anonymous.status_code == 401, path
        assert anonymous.json()["code"] == "unauthenticated"
    mine = requests.get(f"{api.url}/v1/jobs", headers=api.auth(), timeout=30).json()["jobs"]
    theirs = requests.get(f"{api.url}/v1/jobs", headers=api.auth(api.other_key), timeout=30).json()["jobs"]
    assert job_id in {j["job_id"] for j in mine}
    assert job_id not in {j["job_id"] for j in theirs}


def test_reconnecting_with_last_event_id_resumes_after_it(api: ApiHandle, completed: dict[str, Any]) -> None:
    job_id = completed["upload"]["job_id"]
    first, last = completed["events"][0], completed["events"][-1]
    resumed = follow(api, job_id, last_event_id=first["id"])
    assert resumed, "a client that missed the end gets it"
    assert int(resumed[0]["id"]) > int(first["id"])
    # The document may have absorbed more since the first stream ended (the channels' delivery reports): the
    # reconnecting client gets the latest version, still the terminal one.
    assert int(resumed[-1]["id"]) >= int(last["id"]) and resumed[-1]["job"]["status"] == "COMPLETED"
    seen = resumed[-1]["id"]
    deadline = time.monotonic() + 60
    while (more := follow(api, job_id, last_event_id=seen)) and time.monotonic() < deadline:
        assert all(int(e["id"]) > int(seen) and e["job"]["status"] == "COMPLETED" for e in more), (seen, more)
        seen = more[-1]["id"]
    assert more == [], "a client that saw the end gets nothing again"


def test_results_come_through_short_lived_signed_urls(api: ApiHandle, completed: dict[str, Any]) -> None:
    job_id = completed["upload"]["job_id"]
    redirect = requests.get(
        f"{api.url}/v1/jobs/{job_id}/result", params={"format": "rttm"}, headers=api.auth(), allow_redirects=False
    )
    assert redirect.status_code == 307
    assert "X-Goog-Signature=" in redirect.headers["location"]
    rttm = requests.get(redirect.headers["location"], timeout=30).text
    assert rttm.startswith("SPEAKER ") and job_id in rttm
    as_json = requests.get(
        f"{api.url}/v1/jobs/{job_id}/result", params={"format": "vtt", "redirect": "false"}, headers=api.auth()
    ).json()
    assert requests.get(as_json["url"], timeout=30).text.startswith("WEBVTT")
    audio = requests.get(f"{api.url}/v1/jobs/{job_id}/audio", params={"redirect": "false"}, headers=api.auth()).json()
    assert requests.get(audio["url"], timeout=30).content == SAMPLE.read_bytes()


def test_deleting_a_job_removes_its_files_and_marks_it_deleted(
    api: ApiHandle, completed: dict[str, Any], pipeline: stack.StackConfig
) -> None:
    job_id = completed["upload"]["job_id"]
    client = gcs.Client(project=pipeline.project)
    files = lambda: [  # noqa: E731
        b.name
        for bucket in ("speakerline-uploads", "speakerline-work", "speakerline-results")
        for b in client.list_blobs(bucket)
        if job_id in b.name
    ]
    assert files(), "the job's files exist before the delete"
    deleted = requests.delete(f"{api.url}/v1/jobs/{job_id}", headers=api.auth(), timeout=30)
    assert deleted.status_code == 202 and deleted.json() == {"job_id": job_id, "status": "DELETED"}
    assert files() == []
    job = wait_for(
        lambda: (
            (j := requests.get(f"{api.url}/v1/jobs/{job_id}", headers=api.auth()).json())["status"] == "DELETED" and j
        ),
        timeout_s=60,
    )
    assert job["result"] is None and job.get("segments") is None
    gone = requests.get(f"{api.url}/v1/jobs/{job_id}/result", headers=api.auth(), allow_redirects=False)
    assert gone.status_code == 410 and gone.json()["code"] == "job_deleted"
    assert requests.delete(f"{api.url}/v1/jobs/{job_id}", headers=api.auth()).status_code == 202  # idempotent
