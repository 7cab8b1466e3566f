"""api.views over job documents in the projector's shape (projected from the schema examples)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from api import views
from tests.projector.jobevents import HAPPY, fold, full_job, make

JOB = "job_0123456789abcdef01234567"


def _completed() -> dict[str, Any]:
    return fold(full_job(JOB))


def test_completed_view_hides_result_and_input_uris() -> None:
    doc = _completed()
    assert doc["result"]["output_uri"].startswith("gs://")  # the document has them...
    view = views.job_view(doc)

    # ...the view does not: signed URLs come from /result and /audio instead.
    assert set(view["result"]) == {"summary", "formats"}
    assert view["result"]["summary"] == doc["result"]["summary"]
    assert set(view["request"]["input"]) == {"filename", "size_bytes", "content_type"}
    assert "last_event" not in view and "event_count" not in view
    assert all("target" not in n for n in view["notifications"])


def test_completed_view_has_no_storage_uri_anywhere() -> None:
    text = json.dumps(views.job_view(_completed()))
    assert "gs://" not in text


def test_view_lists_the_formats_that_exist() -> None:
    doc = _completed()
    assert views.job_view(doc)["result"]["formats"] == ["json", "rttm", "vtt"]
    doc["result"] = {**doc["result"], "vtt_uri": None}
    doc["result"].pop("rttm_uri")
    assert views.job_view(doc)["result"]["formats"] == ["json"]
    assert views.result_uri(doc, "json") == doc["result"]["output_uri"]
    assert views.result_uri(doc, "vtt") is None


def test_view_times_are_iso_strings() -> None:
    view = views.job_view(_completed())
    assert view["created_at"] == "2026-11-20T09:30:00+00:00"
    assert datetime.fromisoformat(view["updated_at"]) > datetime.fromisoformat(view["created_at"])
    assert view["stages"]["completed_at"] == "2026-11-20T09:30:35+00:00"
    assert view["stages"]["failed_at"] is None
    assert all(isinstance(n["at"], str) for n in view["notifications"])
    json.dumps(view)  # nothing left that JSON cannot carry


def test_view_shows_status_file_name_and_request() -> None:
    view = views.job_view(_completed())
    assert (view["job_id"], view["status"], view["file_name"]) == (JOB, "COMPLETED", "2026-11-20-standup.mp3")
    assert view["request"]["options"] == {"min_speakers": 2, "max_speakers": 4}
    assert view["engine"]["name"] == "pyannote"
    assert view["error"] is None and view["progress"] is None


def test_view_of_an_unfinished_job_has_no_result() -> None:
    doc = fold([make(n, JOB) for n in HAPPY[:3]])
    view = views.job_view(doc)
    assert view["status"] == "DIARIZING" and view["result"] is None
    assert views.result_uri(doc, "json") is None


def test_view_of_a_rejected_job_shows_its_error() -> None:
    doc = fold([make("audio.uploaded", JOB), make("job.rejected", JOB)])
    view = views.job_view(doc)
    assert view["status"] == "REJECTED"
    assert view["error"]["code"] == "unsupported_format"
    assert views.is_terminal(view["status"])


def test_terminal_states() -> None:
    assert all(views.is_terminal(s) for s in ("COMPLETED", "REJECTED", "FAILED", "DELETED"))
    assert not any(views.is_terminal(s) for s in ("PENDING", "RECEIVED", "INGESTED", "DIARIZING", "DIARIZED"))


def test_version_counts_the_applied_events() -> None:
    assert views.version(None) == 0
    evs = full_job(JOB)
    assert views.version(fold(evs[:2])) == 2
    assert views.version(fold(evs)) == len(evs)


def test_owner_prefers_the_document_then_the_claim() -> None:
    assert views.owner({"request": {"producer": "a"}}, {"producer": "b"}) == "a"
    assert views.owner({"request": {}}, {"producer": "b"}) == "b"
    assert views.owner(None, {"producer": "b"}) == "b"
    assert views.owner(None, None) is None
    assert views.owner({"request": None}, {}) is None


def test_pending_view() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    view = views.pending_view(JOB, {"producer": "newsroom", "file_name": "a.wav", "created_at": at})
    assert view == {
        "job_id": JOB,
        "status": "PENDING",
        "file_name": "a.wav",
        "created_at": "2026-01-02T03:04:05+00:00",
        "updated_at": "2026-01-02T03:04:05+00:00",
        "request": {"producer": "newsroom"},
    }
