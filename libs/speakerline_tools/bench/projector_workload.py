"""The projector benchmark's workload: the events of many jobs, built from the schema examples with fresh ids, and
`store_only`, which applies them with `FirestoreJobStore.apply` directly.

    python libs/speakerline_tools/bench/projector_workload.py --events 1200 --jobs 120

is how `projector_bench.run_store_only` runs it, in a process of its own against the emulators the environment
names, as a file and not a module: with `--baseline`, the code on PYTHONPATH is another checkout's, which need not
have the benchmarks. Prints the rates by thread count as one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# the checkout this file is in (libs/speakerline_tools/bench/): not `speakerline_tools.repo`, which a baseline on
# PYTHONPATH would provide
SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "events"
THREADS = (1, 4, 16)
# Seconds after a job's start of each of its events (progress reports are spread between start and completion).
OFFSETS = {
    "audio.uploaded": 0.0,
    "audio.ingested": 7.0,
    "diarization.started": 21.0,
    "diarization.completed": 58.0,
    "job.completed": 65.0,
    "notification.delivered": 70.0,
}


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / name / "v1.example.json").read_text())["data"]
    return data


def job_events(job_id: str, start: datetime, progress: int) -> list[Any]:
    """The events one job produces, in the order it produces them, with fresh event ids."""
    from speakerline import events
    from speakerline.events.wire import new_traceparent

    classes = {events.event_name(t): cls for t, cls in events.EVENT_CLASSES.items()}
    trace = new_traceparent()

    def build(name: str, at: float, **changes: Any) -> Any:
        data = copy.deepcopy(_example(name))
        data["job_id"] = job_id
        data.update(changes)
        cls = classes[name]
        return cls(
            data=cls.DATA.model_validate(data),
            source="//speakerline/bench",
            time=start + timedelta(seconds=at),
            subject=f"jobs/{job_id}",
            traceparent=trace,
        )

    report = _example("diarization.progress")["progress"]
    out = [build(name, OFFSETS[name]) for name in ("audio.uploaded", "audio.ingested", "diarization.started")]
    for k in range(progress):
        fraction = round((k + 1) / (progress + 1), 4)
        step = {**report, "fraction": fraction, "processed_audio_s": round(report["audio_s"] * fraction, 1)}
        out.append(
            build("diarization.progress", 24.0 + 30.0 * k / max(progress, 1), progress={**step, "sequence": k + 1})
        )
    out += [build(name, OFFSETS[name]) for name in ("diarization.completed", "job.completed", "notification.delivered")]
    return out


def workload(events: int, jobs: int, seed: int = 7, prefix: str = "bench") -> dict[str, list[Any]]:
    """`jobs` jobs of about `events / jobs` events each (at least one progress report), by job id."""
    progress = max(1, round(events / jobs) - 6)
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    tag = f"{rng.getrandbits(32):08x}"
    return {
        job_id: job_events(job_id, now + timedelta(seconds=2 * i), progress)
        for i, job_id in enumerate(f"job_{prefix}_{tag}_{i:05d}" for i in range(jobs))
    }


def interleaved(by_job: Mapping[str, Sequence[Any]]) -> list[Any]:
    """Every job's events in the order they would be published: jobs overlap, each job's events in their order."""
    return sorted((e for evs in by_job.values() for e in evs), key=lambda e: (e.time, e.id))


def store_only(project: str, events: int, jobs: int, threads: Sequence[int] = THREADS) -> dict[str, float]:
    """Events per second of `FirestoreJobStore.apply` called directly from each number of threads (fresh jobs for
    each); runs in this process against the emulators named by the environment."""
    import queue

    from google.cloud import firestore

    from projector.store import FirestoreJobStore

    store = FirestoreJobStore(firestore.Client(project=project))
    rates: dict[str, float] = {}
    for n_threads in threads:
        pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
        work = interleaved(workload(events, jobs, seed=n_threads, prefix=f"store{n_threads}"))
        for event in work:
            pending.put(event)
        failures: list[BaseException] = []

        def drain(pending: queue.SimpleQueue[Any] = pending, failures: list[BaseException] = failures) -> None:
            while True:
                try:
                    event = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    store.apply(event)
                except BaseException as error:
                    failures.append(error)

        pool = [threading.Thread(target=drain) for _ in range(n_threads)]
        started = time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        rates[str(n_threads)] = round(len(work) / (time.perf_counter() - started), 1)
        if failures:
            raise RuntimeError(f"{len(failures)} applies failed: {failures[0]!r}")
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="events per second of FirestoreJobStore.apply by thread count")
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--jobs", type=int, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(store_only(os.environ["GOOGLE_CLOUD_PROJECT"], args.events, args.jobs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
