"""The pure parts of the load benchmark (speakerline_tools.bench.stats and load): percentiles, backlog, duplicates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from speakerline.events import DiarizationCompleted, DiarizationStarted, JobCompleted, JobFailed, JobRejected
from speakerline_tools.bench import load, stats


def _event(kind: str, event_id: str) -> dict[str, str]:
    return {"id": event_id, "type": kind}


def test_percentiles_interpolate_between_ranks_like_numpy() -> None:
    values = [3.0, 1.0, 2.0, 4.0, 10.0]
    assert stats.percentile(values, 50) == 3.0
    assert stats.percentile(values, 0) == 1.0
    assert stats.percentile(values, 100) == 10.0
    assert stats.percentile(values, 95) == pytest.approx(8.8)  # numpy.percentile(values, 95)
    assert stats.percentile([1.0, 2.0], 50) == 1.5
    assert stats.percentile([7.0], 95) == 7.0


def test_percentile_of_nothing_is_none_and_out_of_range_is_refused() -> None:
    assert stats.percentile([], 50) is None
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_latency_summary() -> None:
    assert stats.latency_summary([2.0, 4.0]) == {"n": 2, "p50_s": 3.0, "p95_s": 3.9, "max_s": 4.0, "mean_s": 3.0}
    assert stats.latency_summary([]) == {"n": 0, "p50_s": None, "p95_s": None, "max_s": None, "mean_s": None}


def test_backlog_point_counts_jobs_not_terminal_by_status() -> None:
    statuses = {"a": None, "b": "RECEIVED", "c": "DIARIZING", "d": "DIARIZING", "e": "COMPLETED", "f": "FAILED"}
    point = stats.backlog_point(12.34, statuses)
    assert point == {"t": 12.3, "backlog": 4, "by_status": {"DIARIZING": 2, "RECEIVED": 1, "SUBMITTED": 1}}
    assert stats.backlog_point(0, {"x": "REJECTED", "y": "DELETED"})["backlog"] == 0


def _curve(*backlogs: int, step: float = 1.0) -> list[dict[str, object]]:
    return [{"t": k * step, "backlog": n, "by_status": {}} for k, n in enumerate(backlogs)]


def test_sample_curve_keeps_first_one_per_interval_and_last() -> None:
    curve = _curve(*range(95))  # t = 0..94
    assert [p["t"] for p in stats.sample_curve(curve, 30)] == [0, 30, 60, 90, 94]
    assert [p["t"] for p in stats.sample_curve(curve[:31], 30)] == [0, 30]
    assert stats.sample_curve([], 30) == []


def test_sample_curve_with_missed_ticks_takes_the_first_point_past_each_multiple() -> None:
    curve = [{"t": t, "backlog": 1, "by_status": {}} for t in (0.0, 1.0, 29.0, 31.5, 33.0, 95.0, 96.0)]
    assert [p["t"] for p in stats.sample_curve(curve, 30)] == [0.0, 31.5, 95.0, 96.0]


def test_backlog_summary_peak_drain_and_area() -> None:
    curve = _curve(2, 5, 5, 3, 0, 0)
    assert stats.backlog_summary(curve) == {"peak": 5, "peak_t": 1.0, "drained_t": 4.0, "job_seconds": 15.0}
    never = stats.backlog_summary(_curve(1, 2, 2))
    assert never["drained_t"] is None and never["peak"] == 2
    assert stats.backlog_summary([])["peak"] == 0


def test_one_completion_is_fine() -> None:
    events = [
        _event(DiarizationStarted.TYPE, "e1"),
        _event(DiarizationCompleted.TYPE, "e2"),
        _event(JobCompleted.TYPE, "e3"),
    ]
    assert stats.event_problems(events) == []


def test_two_terminal_events_are_a_duplicate() -> None:
    twice = [_event(JobCompleted.TYPE, "e1"), _event(JobCompleted.TYPE, "e2")]
    problems = stats.event_problems(twice)
    assert problems == ["terminal events: job.completed x2"]
    assert stats.is_duplicated(problems)
    both = stats.event_problems([_event(JobCompleted.TYPE, "e1"), _event(JobFailed.TYPE, "e2")])
    assert both == ["terminal events: job.completed x1, job.failed x1"]
    assert stats.event_problems([_event(JobRejected.TYPE, "r1")]) == []


def test_a_second_diarization_result_is_a_duplicate() -> None:
    events = [
        _event(DiarizationCompleted.TYPE, "d1"),
        _event(DiarizationCompleted.TYPE, "d2"),
        _event(JobCompleted.TYPE, "c1"),
    ]
    problems = stats.event_problems(events)
    assert problems == ["diarization.completed x2"]
    assert stats.is_duplicated(problems)


def test_the_same_event_id_twice_is_reported() -> None:
    problems = stats.event_problems([_event(JobCompleted.TYPE, "e1"), _event(JobCompleted.TYPE, "e1")])
    assert problems[0] == "event ids recorded more than once: e1"
    assert stats.is_duplicated(problems)


def test_no_terminal_event_is_not_a_duplicate() -> None:
    problems = stats.event_problems([_event(DiarizationStarted.TYPE, "e1")])
    assert problems == ["no terminal event"]
    assert not stats.is_duplicated(problems)


def test_jobs_per_minute() -> None:
    assert stats.jobs_per_minute(110, 1000.0, 1000.0 + 330) == 20.0
    assert stats.jobs_per_minute(0, 1000.0, None) is None
    assert stats.jobs_per_minute(3, 1000.0, 1000.0) is None


def _upload(job_id: str, kind: str, finished: float) -> load.Upload:
    clip = load.Clip(Path(f"/clips/{job_id}.wav"), kind, 5.0 if kind == "short" else 120.0)
    return load.Upload(clip, job_id, started=finished - 0.5, finished=finished)


def _done_events(job_id: str) -> list[dict[str, str]]:
    return [_event(DiarizationCompleted.TYPE, f"{job_id}-d"), _event(JobCompleted.TYPE, f"{job_id}-c")]


def test_job_row_measures_from_upload_finished_to_completed_at() -> None:
    t0 = 1_700_000_000.0
    upload = _upload("j1", "short", t0 + 1)
    doc = {
        "status": "COMPLETED",
        "stages": {
            "diarization_started_at": datetime.fromtimestamp(t0 + 3, UTC),
            "completed_at": datetime.fromtimestamp(t0 + 11.5, UTC),
        },
    }
    row = load.job_row(upload, doc, _done_events("j1"))
    assert row["to_completed_s"] == 10.5
    assert row["to_diarization_start_s"] == 2.0
    assert row["upload_s"] == 0.5
    assert row["events"] == {"diarization.completed": 1, "job.completed": 1}
    assert row["problems"] == []
    missing = load.job_row(_upload("j2", "long", t0), {}, [])
    assert missing["status"] is None and missing["to_completed_s"] is None
    assert missing["problems"] == ["no terminal event"]


def test_summary_counts_completed_lost_duplicated_and_throughput() -> None:
    t0 = 1_700_000_000.0

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(t0 + seconds, UTC)

    uploads = [_upload("a", "short", t0 + 1), _upload("b", "long", t0 + 2), _upload("c", "short", t0 + 2)]
    uploads.append(_upload("d", "short", t0 + 3))
    rows = [
        load.job_row(uploads[0], {"status": "COMPLETED", "stages": {"completed_at": at(11)}}, _done_events("a")),
        load.job_row(
            uploads[1],
            {"status": "COMPLETED", "stages": {"completed_at": at(62)}},
            [*_done_events("b"), _event(JobCompleted.TYPE, "b-c2")],
        ),
        load.job_row(uploads[2], {"status": "DIARIZING", "stages": {}}, []),
        load.job_row(
            uploads[3], {"status": "FAILED", "stages": {}, "error": {"code": "X"}}, [_event(JobFailed.TYPE, "d-f")]
        ),
    ]
    curve = _curve(4, 3, 1)
    summary = load.summarize(rows, ["OSError: refused"], curve, t0, uploads)
    assert summary["counts"] == {
        "submitted": 4,
        "upload_errors": 1,
        "completed": 2,
        "failed": 1,
        "rejected": 0,
        "lost": 2,  # c never finished, and one upload failed
        "duplicated": 1,
    }
    assert summary["lost_jobs"] == ["c"]
    assert summary["duplicated_jobs"] == {"b": ["terminal events: job.completed x2"]}
    assert summary["not_completed"] == {"d": {"code": "X"}}
    assert summary["wall_s"] == 62.0
    assert summary["jobs_per_minute"] == round(2 * 60 / 62, 2)
    assert summary["uploads_window_s"] == 3.0
    assert summary["time_to_completed"]["all"]["n"] == 2
    assert summary["time_to_completed"]["short"]["p50_s"] == 10.0
    assert summary["time_to_completed"]["long"]["p50_s"] == 60.0
    assert summary["backlog"]["peak"] == 4
