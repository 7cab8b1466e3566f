"""The job projection, pure: out-of-order data, any order with redeliveries converging to one document."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from projector.projection import project
from speakerline import events
from speakerline.events import Event
from speakerline_tools import jobstore
from tests.fakes import InMemoryJobStore

from .jobevents import HAPPY, T0, at, example_data, fold, full_job, make, typed

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
