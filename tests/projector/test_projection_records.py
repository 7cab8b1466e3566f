"""The job projection's bookkeeping: duplicates and notifications, the handler, human formatting
(speakerline_tools.jobstore), deletion, the store's change sets."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds

from projector.handlers import ProjectorDeps, on_job_event
from projector.projection import project
from projector.store import changes, identical
from projector.wiring import CONCURRENCY
from speakerline import events
from speakerline.bootstrap import build_service
from speakerline.events import Event
from speakerline.runtime import Context
from speakerline.settings import Settings
from speakerline_tools import jobstore
from tests.fakes import InMemoryJobStore, RecordingPublisher

from .jobevents import HAPPY, OFFSETS, at, example_data, fold, full_job, make, typed

# --- duplicates and notifications -----------------------------------------------------------------------------------


def test_the_same_event_twice_changes_nothing_but_the_count_and_the_store_drops_it() -> None:
    job_id = "job_dup00001"
    job = fold([make(n, job_id) for n in HAPPY[:3]])
    again = project(job, _same(job, job_id))
    assert {k: v for k, v in again.items() if k != "event_count"} == {
        k: v for k, v in job.items() if k != "event_count"
    }

    store = InMemoryJobStore()
    event = make("audio.ingested", job_id)
    assert store.apply(event) is True
    snapshot = copy.deepcopy(store.jobs[job_id])
    assert store.apply(event) is False
    assert store.jobs[job_id] == snapshot
    assert len(store.events[job_id]) == 1


def _same(job: dict[str, Any], job_id: str) -> Event[Any]:
    """A redelivery of the job's last event (same id, type, time and data)."""
    last = job["last_event"]
    name = events.event_name(last["type"])
    return typed(name, {**example_data(name), "job_id": job_id}, source="//t", event_id=last["id"], time=last["time"])


def test_notifications_are_recorded_deduplicated_and_never_change_status() -> None:
    job_id = "job_notif001"
    done = fold([make(n, job_id) for n in HAPPY])
    delivered = make("notification.delivered", job_id)
    failed = make("notification.failed", job_id)
    job = fold([failed, delivered, failed], done)
    assert job["status"] == "COMPLETED"
    assert [(n["status"], n["event_id"]) for n in job["notifications"]] == [
        ("delivered", delivered.id),
        ("failed", failed.id),
    ]
    assert "code" not in job["notifications"][0]
    assert job["notifications"][1]["code"] == "http_404"
    only = project(None, delivered)
    assert only["status"] == "RECEIVED"
    assert all(v is None for v in only["stages"].values())


# --- the handler ----------------------------------------------------------------------------------------------------


def _context(attempt: int = 1) -> Context:
    return Context(attempt=attempt, final_attempt=False, deadline=time.time() + 60)


def test_handler_projects_and_publishes_nothing_even_for_duplicates() -> None:
    store = InMemoryJobStore()
    deps = ProjectorDeps(store=store)
    event = make("audio.uploaded", "job_handler1")
    assert on_job_event(event, _context(), deps) == []
    assert on_job_event(event, _context(attempt=2), deps) == []
    assert store.jobs["job_handler1"]["event_count"] == 1


def test_the_service_projects_every_event_type_on_its_one_route(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Firestore client is made at wiring time; pointed at an emulator address it needs no credentials (and it
    # connects only on first use, which this test never makes).
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    service = build_service("projector", Settings(project="p"), publisher=RecordingPublisher())
    assert set(service.routes) == {"on_job_event"}
    route = service.routes["on_job_event"]
    assert {cls.TYPE for cls in route.accepts} == set(events.EVENT_CLASSES)
    assert all(route.takes(make(name, "job_wiring01")) for name in OFFSETS)
    assert route.concurrency == CONCURRENCY >= 64  # events wait together for one group commit


# --- human formatting (speakerline_tools.jobstore) -----------------------------------------------------------------


def test_formatting_a_completed_job() -> None:
    job = fold(full_job("job_format01"))
    line = jobstore.format_job_line(job)
    assert line.startswith("job_format01  COMPLETED")
    assert "2026-11-20 09:30:56Z" in line
    assert "2026-11-20-standup.mp3" in line
    assert "3 speakers" in line
    detail = jobstore.format_job_detail(job)
    for expected in (
        "status    COMPLETED",
        "diarization started 2026-11-20 09:30:21Z",
        "completed           2026-11-20 09:30:35Z",
        "3 speakers, 41 segments, 177.6s audio",
        "gs://speakerline-results/results/job_5f2a9c0d4b7e1a3c8d6f0b21/output.json",
        "output.rttm",
        "output.vtt",
        "discord discord.com: failed (http_404)",
        "SPEAKER_00",
        "events    7",
    ):
        assert expected in detail, expected


def test_formatting_a_failed_job_shows_the_error() -> None:
    job = fold([make(n, "job_format02") for n in ("audio.uploaded", "job.failed")])
    assert "engine_error: CUDA out of memory" in jobstore.format_job_line(job)
    detail = jobstore.format_job_detail(job)
    assert "error     engine_error at diarization (retriable): CUDA out of memory" in detail
    replayed = fold([make(n, "job_format02") for n in HAPPY], job)
    assert "past error engine_error" in jobstore.format_job_detail(replayed)
    assert "engine_error" not in jobstore.format_job_line(replayed)


def test_a_deleted_job_is_deleted_in_any_order_and_points_at_no_result() -> None:
    evs = [*full_job("job_deleted1"), make("job.deleted", "job_deleted1", 60)]
    for order in (evs, list(reversed(evs)), evs[3:] + evs[:3]):
        job = fold(list(order))
        assert job["status"] == "DELETED"
        assert job["stages"]["deleted_at"] == at(60)
        assert job["stages"]["completed_at"] == at(35)
        assert job["result"] is None
        assert job["deleted_by"] == "newsroom"


def test_the_producer_is_kept_from_the_request() -> None:
    uploaded = example_data("audio.uploaded")
    uploaded["request"]["producer"] = "newsroom"
    job = fold([make("audio.uploaded", "job_producer1", request=uploaded["request"])])
    assert job["request"]["producer"] == "newsroom"


def test_changes_sets_every_changed_field_whole_and_deletes_the_dropped_ones() -> None:
    """The store writes a new job version with `update` (the write that takes a precondition): every changed field of
    the new version whole, each field it dropped deleted, and nothing for the fields it kept as they were."""
    at = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    kept = {"request": {"input": {"uri": "gs://b/o"}, "options": {}}, "created_at": at, "notifications": [{"n": 1}]}
    fields, deleted = changes(
        {"status": "DIARIZING", "stale": 1, "odd.name": 1, "count": 1, **kept},
        {"status": "COMPLETED", "stages": {"a": 1}, "odd.name": 2, "count": 1.0, **copy.deepcopy(kept)},
    )
    assert fields == {
        "status": "COMPLETED",
        "stages": {"a": 1},
        "odd.name": 2,
        "count": 1.0,  # equal in Python, a double and not an integer in the document
    }
    assert isinstance(fields["count"], float)
    assert deleted == ["stale"]


def test_identical_is_equality_of_values_and_types_all_the_way_down() -> None:
    at = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert identical({"a": [1, {"b": at}], "c": None}, {"a": [1, {"b": at}], "c": None})
    assert identical(at, DatetimeWithNanoseconds(2026, 11, 20, 9, 30, tzinfo=UTC))
    assert not identical({"a": [1]}, {"a": [1.0]})
    assert not identical({"a": [1]}, {"a": (1,)})
    assert not identical({"a": 1}, {"a": 1, "b": None})
    assert not identical([1, 2], [1])
    assert not identical(at, at.replace(tzinfo=None))
    assert not identical(True, 1)
    assert not identical(float("nan"), float("nan"))  # rewritten, never wrongly kept
