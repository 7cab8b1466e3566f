"""The pure figures of the load and pipeline benchmarks: percentiles and latency summaries, the backlog curve, the
problems of a job's recorded events (lost, duplicated), jobs per minute (unit-tested in tests/bench/test_load_stats.py).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from speakerline.events import DiarizationCompleted, JobCompleted, JobFailed, JobRejected
from speakerline.jobs import JobStatus

#: A job whose upload finished but whose document the projector has not written yet.
SUBMITTED = "SUBMITTED"
TERMINAL_TYPES = (JobCompleted.TYPE, JobFailed.TYPE, JobRejected.TYPE)
TERMINAL = frozenset(status.value for status in JobStatus if status.terminal)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default); None when
    there are no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(values: Sequence[float]) -> dict[str, Any]:
    """n, p50, p95, max and mean of a list of seconds (None for an empty list)."""
    return {
        "n": len(values),
        "p50_s": rounded(percentile(values, 50)),
        "p95_s": rounded(percentile(values, 95)),
        "max_s": rounded(max(values)) if values else None,
        "mean_s": rounded(sum(values) / len(values)) if values else None,
    }


def backlog_point(t: float, statuses: Mapping[str, str | None]) -> dict[str, Any]:
    """One sample of the backlog curve: at `t` seconds, the jobs not yet terminal, by status. A status of None
    (uploaded, no job document yet) counts as SUBMITTED."""
    by_status = Counter(status or SUBMITTED for status in statuses.values() if status not in TERMINAL)
    return {"t": round(t, 1), "backlog": sum(by_status.values()), "by_status": dict(sorted(by_status.items()))}


def sample_curve(curve: Sequence[Mapping[str, Any]], every_s: float) -> list[Mapping[str, Any]]:
    """The curve thinned for a table: the first point, the first point at or past each multiple of `every_s`,
    and the last point."""
    if not curve:
        return []
    picked = [curve[0]]
    next_t = (math.floor(curve[0]["t"] / every_s) + 1) * every_s
    for point in curve[1:]:
        if point["t"] >= next_t:
            picked.append(point)
            next_t = (math.floor(point["t"] / every_s) + 1) * every_s
    if picked[-1] is not curve[-1]:
        picked.append(curve[-1])
    return picked


def backlog_summary(curve: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Peak backlog and when, when it drained (the first point at zero after the peak: None if it never did),
    and the job-seconds spent waiting (area under the curve, in steps)."""
    if not curve:
        return {"peak": 0, "peak_t": None, "drained_t": None, "job_seconds": 0.0}
    peak = max(curve, key=lambda point: point["backlog"])
    peak_index = list(curve).index(peak)
    drained = next((p for p in curve[peak_index:] if p["backlog"] == 0), None)
    area = sum(a["backlog"] * (b["t"] - a["t"]) for a, b in itertools.pairwise(curve))
    return {
        "peak": peak["backlog"],
        "peak_t": peak["t"],
        "drained_t": drained["t"] if drained else None,
        "job_seconds": round(area, 1),
    }


def event_problems(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """What is wrong with one job's recorded events, if anything: a job must have exactly one terminal event and
    at most one diarization.completed (each distinct id is a separate event; the same id twice is a store bug)."""
    problems = []
    ids = Counter(str(event.get("id")) for event in events)
    repeated = sorted(event_id for event_id, n in ids.items() if n > 1)
    if repeated:
        problems.append(f"event ids recorded more than once: {', '.join(repeated)}")
    types = Counter(str(event.get("type")) for event in events)
    terminal = {kind: types[kind] for kind in TERMINAL_TYPES if types[kind]}
    if sum(terminal.values()) == 0:
        problems.append("no terminal event")
    elif sum(terminal.values()) > 1:
        problems.append("terminal events: " + ", ".join(f"{short_type(k)} x{n}" for k, n in terminal.items()))
    if types[DiarizationCompleted.TYPE] > 1:
        problems.append(f"{short_type(DiarizationCompleted.TYPE)} x{types[DiarizationCompleted.TYPE]}")
    return problems


def is_duplicated(problems: Sequence[str]) -> bool:
    """Whether event_problems' findings mean the job (or a stage of it) happened twice."""
    return any(problem != "no terminal event" for problem in problems)


def jobs_per_minute(completed: int, start: float, end: float | None) -> float | None:
    if end is None or end <= start:
        return None
    return round(completed * 60 / (end - start), 2)


def short_type(event_type: str) -> str:
    """An event type without its prefix and major version (`job.completed`), as `events.event_name` gives it, but
    any other string as it is (a report must not fail on what the store recorded)."""
    parts = event_type.split(".")
    return ".".join(parts[2:-1]) if len(parts) > 3 else event_type


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
