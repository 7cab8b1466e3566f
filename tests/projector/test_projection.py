"""The job projection, pure: the happy path, the status machine, failures, rejections and replays."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone

import pytest

from projector.projection import STATUS_RANK, project
from speakerline.jobs import JobStatus

from .jobevents import HAPPY, T0, at, example_data, fold, full_job, make

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
