"""The job projection, pure: status machine, order tolerance, duplicates, merging of out-of-order data."""

from __future__ import annotations

import copy
import itertools
import json
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from hypothesis import given, settings
from hypothesis import strategies as st

from projector.handlers import ProjectorDeps, on_job_event
from projector.projection import STATUS_RANK, project
from projector.store import changes, identical
from projector.wiring import CONCURRENCY
from speakerline import events
from speakerline.bootstrap import build_service
from speakerline.events import Event
from speakerline.jobs import JobStatus
from speakerline.runtime import Context
from speakerline.settings import Settings
from speakerline_tools import jobstore
from tests.fakes import InMemoryJobStore, RecordingPublisher

from .jobevents import HAPPY, OFFSETS, T0, example_data, fold, full_job, make, typed


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- happy path ---------------------------------------------------------------------------------------------------


def test_happy_path_in_order_builds_the_whole_document() -> None:
    evs = full_job("job_happy001")
    statuses = []
    job = None
    for event in evs:
        job = project(job, event)
        statuses.append(job["status"])
    assert statuses == ["RECEIVED", "INGESTED", "DIARIZING", "DIARIZED", "COMPLETED", "COMPLETED", "COMPLETED"]
    assert job is not None

    uploaded = example_data("audio.uploaded")
    ingested = example_data("audio.ingested")
    diarized = example_data("diarization.completed")
    completed = example_data("job.completed")
    assert job["job_id"] == "job_happy001"
    assert job["created_at"] == T0
    assert job["updated_at"] == at(56)
    assert job["request"] == {k: uploaded["request"][k] for k in uploaded["request"]}
    assert job["request"]["webhook_url"] == "https://hooks.example.com/speakerline"
    assert job["stages"] == {
        "received_at": at(0),
        "ingested_at": at(7),
        "diarization_started_at": at(21),
        "diarized_at": at(28),
        "completed_at": at(35),
        "rejected_at": None,
        "failed_at": None,
        "deleted_at": None,
    }
    assert job["audio"] == diarized["audio"] == ingested["audio"]
    assert job["source"] == ingested["source"]
    assert job["engine"] == completed["engine"]
    assert job["timings"] == diarized["timings"]
    assert job["result"] == completed["result"]
    assert job["error"] is None
    assert job["attempts"] == {"diarization": 1}
    assert job["notifications"] == [
        {
            "channel": "webhook",
            "target": "hooks.example.com",
            "status": "delivered",
            "event_id": evs[5].id,
            "at": at(49),
        },
        {
            "channel": "discord",
            "target": "discord.com",
            "status": "failed",
            "code": "http_404",
            "event_id": evs[6].id,
            "at": at(56),
        },
    ]
    assert job["last_event"] == {"id": evs[6].id, "type": evs[6].TYPE, "time": at(56)}
    assert job["event_count"] == 7


def test_times_are_aware_utc_whatever_offset_the_producer_used() -> None:
    plus_two = datetime(2026, 11, 20, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    job = project(None, make("audio.uploaded", "job_offset01", plus_two))
    assert job["created_at"] == T0
    assert job["created_at"].tzinfo == UTC
    assert job["stages"]["received_at"].utcoffset() == timedelta(0)


def test_projection_never_mutates_its_input() -> None:
    job = fold([make(n, "job_pure0001") for n in HAPPY[:2]])
    before = copy.deepcopy(job)
    project(job, make("diarization.started", "job_pure0001"))
    assert job == before


# --- the status machine -------------------------------------------------------------------------------------------

# How to reach each status with a normal history.
REACH = {
    "RECEIVED": ["audio.uploaded"],
    "INGESTED": ["audio.uploaded", "audio.ingested"],
    "DIARIZING": ["audio.uploaded", "audio.ingested", "diarization.started"],
    "DIARIZED": ["audio.uploaded", "audio.ingested", "diarization.started", "diarization.completed"],
    "COMPLETED": list(HAPPY),
    "REJECTED": ["audio.uploaded", "job.rejected"],
    "FAILED": ["audio.uploaded", "audio.ingested", "diarization.started", "job.failed"],
}
NEXT = (
    "audio.uploaded",
    "audio.ingested",
    "diarization.started",
    "diarization.completed",
    "job.completed",
    "job.rejected",
    "job.failed",
    "notification.delivered",
    "notification.failed",
)
# Expected status after each next event (columns in NEXT order), written out by hand rather than derived from the
# ranks under test. Same-rank terminals (FAILED, REJECTED) settle on REJECTED whatever the order.
MATRIX = {
    "RECEIVED": "RECEIVED INGESTED DIARIZING DIARIZED COMPLETED REJECTED FAILED RECEIVED RECEIVED",
    "INGESTED": "INGESTED INGESTED DIARIZING DIARIZED COMPLETED REJECTED FAILED INGESTED INGESTED",
    "DIARIZING": "DIARIZING DIARIZING DIARIZING DIARIZED COMPLETED REJECTED FAILED DIARIZING DIARIZING",
    "DIARIZED": "DIARIZED DIARIZED DIARIZED DIARIZED COMPLETED REJECTED FAILED DIARIZED DIARIZED",
    "COMPLETED": "COMPLETED COMPLETED COMPLETED COMPLETED COMPLETED COMPLETED COMPLETED COMPLETED COMPLETED",
    "REJECTED": "REJECTED REJECTED REJECTED REJECTED COMPLETED REJECTED REJECTED REJECTED REJECTED",
    "FAILED": "FAILED FAILED FAILED FAILED COMPLETED REJECTED FAILED FAILED FAILED",
}


@pytest.mark.parametrize(
    ("start", "next_event", "expected"),
    [
        (start, name, expected)
        for start, row in MATRIX.items()
        for name, expected in zip(NEXT, row.split(), strict=True)
    ],
)
def test_every_transition(start: str, next_event: str, expected: str) -> None:
    job = fold([make(n, "job_matrix01") for n in REACH[start]])
    assert job["status"] == start
    # Arriving late (time after everything) and arriving "from the past" must give the same status.
    late = project(job, make(next_event, "job_matrix01", 100))
    early = project(job, make(next_event, "job_matrix01", -100))
    assert late["status"] == early["status"] == expected


def test_status_ranks_match_the_contract() -> None:
    assert STATUS_RANK[JobStatus.COMPLETED] > STATUS_RANK[JobStatus.FAILED] == STATUS_RANK[JobStatus.REJECTED]
    assert [STATUS_RANK[JobStatus(s)] for s in ("RECEIVED", "INGESTED", "DIARIZING", "DIARIZED")] == [0, 1, 2, 3]


@pytest.mark.parametrize("name", NEXT)
def test_the_first_event_of_a_job_may_be_any_type(name: str) -> None:
    event = make(name, "job_first001", 3)
    job = project(None, event)
    assert job["job_id"] == "job_first001"
    assert job["created_at"] == job["updated_at"] == at(3)
    assert job["event_count"] == 1
    assert job["last_event"] == {"id": event.id, "type": event.TYPE, "time": at(3)}
    assert job["status"] == MATRIX["RECEIVED"].split()[NEXT.index(name)]
    if "request" in event.payload():
        assert job["request"]["input"]["uri"].startswith("gs://")


# --- failures, rejections, replays --------------------------------------------------------------------------------


def test_rejected_path() -> None:
    job = fold([make("audio.uploaded", "job_reject01"), make("job.rejected", "job_reject01")])
    assert job["status"] == "REJECTED"
    assert job["stages"]["rejected_at"] == at(14)
    assert job["error"] == {
        "stage": "ingest",
        "code": "unsupported_format",
        "message": example_data("job.rejected")["error"]["message"],
        "retriable": False,
    }
    assert job["audio"] is None and job["result"] is None


def test_failed_then_replayed_to_completion_is_completed_and_keeps_the_failure_on_record() -> None:
    job_id = "job_replay01"
    history = [make(n, job_id) for n in ("audio.uploaded", "audio.ingested", "diarization.started")]
    failed = make("job.failed", job_id, 40)
    replay = [make("diarization.started", job_id, 60, attempt=6), make("diarization.completed", job_id, 61)]
    completed = make("job.completed", job_id, 70)

    job = fold([*history, failed])
    assert job["status"] == "FAILED"
    assert job["attempts"] == {"diarization": 5}  # job.failed reports the diarization attempt that gave up
    job = fold([*replay, completed], job)
    assert job["status"] == "COMPLETED"
    assert job["stages"]["failed_at"] == at(40)
    assert job["stages"]["completed_at"] == at(70)
    assert job["error"]["code"] == "engine_error"
    assert job["result"] == example_data("job.completed")["result"]
    assert job["attempts"] == {"diarization": 6}


def test_completed_then_a_stale_failure_stays_completed() -> None:
    job_id = "job_stale001"
    done = fold([make(n, job_id) for n in HAPPY])
    stale = make("job.failed", job_id, 20)
    job = project(done, stale)
    assert job["status"] == "COMPLETED"
    assert job["stages"]["failed_at"] == at(20)
    assert job["result"] == done["result"]
    assert job["last_event"] == done["last_event"]  # the failure is older than the completion


def test_failed_and_completed_give_the_same_document_in_either_order() -> None:
    job_id = "job_either01"
    happy = [make(n, job_id) for n in HAPPY]
    failed = make("job.failed", job_id, 33)
    assert fold([*happy, failed]) == fold([failed, *happy]) == fold([*happy[:3], failed, *happy[3:]])


def test_a_late_diarization_start_does_not_regress_a_completed_job() -> None:
    job_id = "job_late0001"
    done = fold([make(n, job_id) for n in HAPPY])
    cpu = {"name": "embedded", "model": "x", "device": "cpu"}
    retry = make("diarization.started", job_id, 90, attempt=2, engine=cpu)
    job = project(done, retry)
    assert job["status"] == "COMPLETED"
    assert job["stages"]["diarization_started_at"] == at(21)  # first start stays
    assert job["engine"] == example_data("job.completed")["engine"]  # the engine of the result stays
    assert job["attempts"] == {"diarization": 2}
    assert job["last_event"]["id"] == retry.id


# --- out-of-order data ----------------------------------------------------------------------------------------------


def test_ingested_after_completion_fills_its_data_without_changing_status() -> None:
    job_id = "job_ooo00001"
    job = fold([make(n, job_id) for n in HAPPY if n != "audio.ingested"])
    assert job["source"] is None and job["stages"]["ingested_at"] is None
    job = project(job, make("audio.ingested", job_id))
    assert job["status"] == "COMPLETED"
    assert job["stages"]["ingested_at"] == at(7)
    assert job["source"] == example_data("audio.ingested")["source"]
    assert job["audio"] == example_data("audio.ingested")["audio"]
    assert job["updated_at"] == at(35)  # the latest event time, not the latest arrival
    assert job["last_event"]["type"] == events.JobCompleted.TYPE


def test_engine_comes_from_the_most_advanced_stage_in_any_order() -> None:
    job_id = "job_engine01"
    started = make("diarization.started", job_id, engine={"name": "embedded", "model": "spectral", "device": "cpu"})
    diarized = make("diarization.completed", job_id)
    assert project(None, started)["engine"]["name"] == "embedded"
    assert fold([started, diarized])["engine"] == fold([diarized, started])["engine"] == diarized.payload()["engine"]


def test_a_gpu_fallback_shows_in_the_jobs_engine_in_any_order() -> None:
    # The dispatching worker said "vertex", then ran the job on its CPU engine: the job shows what ran, and why.
    job_id = "job_fallback1"
    gpu = {"name": "vertex", "model": "pyannote/speaker-diarization-3.1", "device": "NVIDIA_L4"}
    fallback = {"from": "vertex", "reason": "gpu_dispatch_refused", "message": "ResourceExhausted: 429 quota"}
    cpu = {"name": "embedded", "model": "segmentation-3.0+campplus", "device": "cpu", "fallback": fallback}
    evs = [
        make("diarization.started", job_id, 20, engine=gpu),
        make("diarization.started", job_id, 21, engine=cpu),
        make("diarization.completed", job_id, engine=cpu),
        make("job.completed", job_id, engine=cpu),
    ]
    for order in itertools.permutations(evs):
        job = fold(list(order))
        assert job["status"] == "COMPLETED" and job["engine"] == cpu


def test_within_one_stage_the_first_event_wins_in_any_order() -> None:
    job_id = "job_stage001"
    starts = [make("diarization.started", job_id, 20 + i, attempt=i + 1, worker=f"w{i}") for i in range(3)]
    for order in itertools.permutations(starts):
        job = fold(list(order))
        assert job["stages"]["diarization_started_at"] == at(20)
        assert job["attempts"] == {"diarization": 3}
    assert len({json.dumps(fold(list(o)), default=str) for o in itertools.permutations(starts)}) == 1


def test_request_fills_gaps_from_whichever_event_carries_it() -> None:
    job_id = "job_request1"
    rejected = typed(
        "job.rejected",
        {"job_id": job_id, "error": {"stage": "ingest", "code": "too_long", "message": "m", "retriable": False}},
        source="//t",
        time=at(14),
    )
    job = project(None, rejected)
    assert job["request"] == {}
    job = project(job, make("audio.uploaded", job_id))
    assert job["request"]["correlation_id"] == "standup-2026-11-20"
    assert job["request"]["options"] == {"min_speakers": 2, "max_speakers": 4}
    assert job["status"] == "REJECTED"
    assert job["created_at"] == T0


def test_every_order_of_a_complete_job_gives_the_same_document() -> None:
    # A reduced set (6 events, 720 orders): every stage that carries data, plus a notification.
    evs = [make(n, "job_perm0001") for n in (*HAPPY, "notification.failed")]
    expected = fold(evs)
    assert expected["status"] == "COMPLETED"
    for order in itertools.permutations(evs):
        assert fold(list(order)) == expected


_PROGRESS = example_data("diarization.progress")["progress"]
# Replays, redeliveries and stale failures on top of a complete job, in any order and with duplicates.
_RICH_JOB = "job_hypo0001"
_RICH = [
    *full_job(_RICH_JOB),
    make("job.failed", _RICH_JOB, 31),
    make("diarization.started", _RICH_JOB, 25, attempt=2, worker="other"),
    *(
        make(
            "diarization.progress", _RICH_JOB, t, attempt=attempt, progress={**_PROGRESS, "fraction": f, "sequence": n}
        )
        for t, attempt, f, n in ((22, 1, 0.3, 1), (23, 1, 0.6, 2), (26, 2, 0.2, 1))
    ),
]


@settings(max_examples=200, deadline=None)
@given(order=st.permutations(_RICH), redeliver=st.lists(st.integers(0, len(_RICH) - 1), max_size=6))
def test_any_order_with_redeliveries_converges(order: list[Event[Any]], redeliver: list[int]) -> None:
    store = InMemoryJobStore()
    sequence = list(order)
    for i, position in enumerate(redeliver):
        sequence.insert(min(position + i, len(sequence)), order[position])
    for event in sequence:
        store.apply(event)
    reference = InMemoryJobStore()
    for event in _RICH:
        reference.apply(event)
    assert store.jobs[_RICH_JOB] == reference.jobs[_RICH_JOB]
    assert store.jobs[_RICH_JOB]["status"] == "COMPLETED"
    assert store.jobs[_RICH_JOB]["event_count"] == len(_RICH)
    assert (store.jobs[_RICH_JOB]["progress"]["attempt"], store.jobs[_RICH_JOB]["progress"]["fraction"]) == (2, 0.2)


def test_progress_is_the_furthest_report_of_the_latest_attempt_in_any_order() -> None:
    job_id = "job_progress1"
    reports = [
        make("diarization.progress", job_id, 22 + n, attempt=1, progress={**_PROGRESS, "fraction": f, "sequence": n})
        for n, f in enumerate((0.1, 0.5, 0.9), start=1)
    ]
    documents = {json.dumps(fold([make("diarization.started", job_id), *order]), default=str)
                 for order in itertools.permutations(reports)}  # fmt: skip
    assert len(documents) == 1
    job = fold([make("diarization.started", job_id), reports[2], reports[0]])
    assert job["status"] == "DIARIZING"  # progress is not a stage
    assert job["progress"] == {
        "attempt": 1,
        "fraction": 0.9,
        "stage": _PROGRESS["stage"],
        "audio_s": _PROGRESS["audio_s"],
        "processed_audio_s": _PROGRESS["processed_audio_s"],
        "eta_s": _PROGRESS["eta_s"],
        "sequence": 3,
        "at": at(25),
    }
    assert "progress  [" in jobstore.format_job_detail(job)
    assert "DIARIZING" in jobstore.format_job_line(job) and "90%" in jobstore.format_job_line(job)


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
