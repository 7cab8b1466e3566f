#!/usr/bin/env python3
"""Many uploads at once through the whole local stack: throughput, latency, nothing lost (`make bench-load`).

    python -m speakerline_tools.bench.load                          # 100 short + 10 long (120 s) uploads
    python -m speakerline_tools.bench.load --short 6 --long 1 --long-s 60   # a quick look
    python -m speakerline_tools.bench.load --json out.json --timeout-s 3600

Brings up its own stack (emulators, every service as a process, the embedded CPU engine) on free ports under
`.stack/bench-load/` (logs stay there afterwards), builds distinct clips of real speech cut from the bundled
sample (short: a few seconds; long: the sample looped to `--long-s`), uploads them all at once from parallel
threads (the uploads bucket's notification starts each job) and polls the job documents once a second until every
job is terminal or the timeout passes. Then each job's recorded events are checked: exactly one terminal event
(job.completed / job.failed / job.rejected) and at most one diarization.completed.

Printed (and written as JSON, default `.stack/bench-load.json`): jobs per minute (completed jobs over the wall
time from the first upload to the last completion), p50/p95 time to COMPLETED (upload finished -> the job's
`completed_at`) overall, short and long, the backlog curve (jobs not yet terminal, by status: every second in the
JSON, every ~30 s in the table: `--table-every-s`), the counts, the machine and the settings.

Exit status: 0 when every job completed exactly once; 1 when a job is lost (not terminal in time, or its upload
failed) or duplicated (more than one terminal or diarization.completed event); 2 when none is lost or duplicated
but some ended FAILED or REJECTED. Its pure figures are `speakerline_tools.bench.stats`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speakerline.jobs import JobStatus
from speakerline_tools import repo
from speakerline_tools.bench.stats import (
    TERMINAL,
    backlog_point,
    backlog_summary,
    event_problems,
    is_duplicated,
    jobs_per_minute,
    latency_summary,
    rounded,
    sample_curve,
    short_type,
)

if TYPE_CHECKING:
    from speakerline_tools.stack import StackConfig

REPO = repo.root()
SAMPLE = REPO / "tests" / "data" / "sample" / "conversation.flac"
RATE = 16000

COMPLETED = JobStatus.COMPLETED.value
#: The services' environment in a benchmark stack: the embedded CPU engine, nothing downloaded.
SERVICE_ENV = {"SPEAKERLINE_ENGINE": "embedded", "PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_OFFLINE": "1"}


# --- the run -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    path: Path
    kind: str  # "short" or "long"
    audio_s: float


@dataclass
class Upload:
    clip: Clip
    job_id: str
    started: float  # wall clock (time.time()), comparable with the job documents' timestamps
    finished: float


def build_clips(out: Path, short: int, long: int, short_s: float, long_s: float, seed: int) -> list[Clip]:
    """Distinct WAV files of real speech: short ones cut from the sample at different offsets, long ones the
    sample rotated (a different start each) and looped to `long_s`; long ones spread among the short ones."""
    import numpy as np
    import soundfile as sf

    samples, rate = sf.read(str(SAMPLE), dtype="int16")
    if rate != RATE or samples.ndim != 1:
        raise SystemExit(f"{SAMPLE}: expected 16 kHz mono")
    out.mkdir(parents=True, exist_ok=True)
    clips = []
    span = len(samples) - int(short_s * RATE)
    for k in range(short):
        # 1.37 s steps (prime-ish against the sample's length) plus k samples: no two clips alike.
        start = (int(k * 1.37 * RATE) + k) % span
        path = out / f"short-{k:03d}.wav"
        sf.write(str(path), samples[start : start + int(short_s * RATE)], RATE, subtype="PCM_16")
        clips.append(Clip(path, "short", short_s))
    for k in range(long):
        rotated = np.roll(samples, -(int(k * 2.9 * RATE) + k))
        looped = np.tile(rotated, math.ceil(long_s * RATE / len(samples)))[: int(long_s * RATE)]
        path = out / f"long-{k:03d}.wav"
        sf.write(str(path), looped, RATE, subtype="PCM_16")
        clips.append(Clip(path, "long", long_s))
    random.Random(seed).shuffle(clips)
    return clips


def fresh_stack(root: Path, project: str, service_env: Mapping[str, str]) -> StackConfig:
    """The configuration of a stack of its own under `root` on free ports (every service as a process), after
    stopping a previous run's leftovers there (by their pid files) and removing the folder: start from nothing."""
    from speakerline_tools import stack

    if root.exists():
        stack.down(stack.StackConfig.load(root), say=lambda _: None)
        shutil.rmtree(root)
    return stack.StackConfig(
        root=root,
        project=project,
        pubsub_port=free_port(),
        firestore_port=free_port(),
        gcs_port=free_port(),
        api_port=free_port(),
        services=True,
        service_env=dict(service_env),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, Any]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": model or platform.processor(),
        "ram_gib": round(ram, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return done.stdout.strip() or None


def _ts(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


class Uploader:
    """Uploads from a pool of threads, one storage client per thread (requests sessions are not shared)."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.local = threading.local()

    def __call__(self, clip: Clip) -> Upload:
        import google.cloud.storage as gcs

        from speakerline_tools import client

        if not hasattr(self.local, "gcs"):
            self.local.gcs = gcs.Client(project=self.project)
        started = time.time()
        submission = client.submit(self.local.gcs, clip.path, options={})
        return Upload(clip, submission.job_id, started, time.time())


def run_load(
    project: str, clips: list[Clip], *, threads: int, timeout_s: float, poll_s: float
) -> tuple[list[Upload], list[str], list[dict[str, Any]], float]:
    """Upload every clip at once and sample the backlog every `poll_s` until every job is terminal (or the
    timeout); returns the uploads, the upload errors, the curve and the time the first upload started."""
    from google.cloud import firestore

    from speakerline.jobs import JOBS_COLLECTION

    db = firestore.Client(project=project)
    uploader = Uploader(project)
    uploads: list[Upload] = []
    errors: list[str] = []
    curve: list[dict[str, Any]] = []
    t0 = time.time()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: list[Future[Upload]] = [pool.submit(uploader, clip) for clip in clips]
        tick = 0
        while True:
            for future in [f for f in pending if f.done()]:
                pending.remove(future)
                try:
                    uploads.append(future.result())
                except Exception as error:  # an upload that fails is reported, not fatal
                    errors.append(f"{type(error).__name__}: {error}")
            statuses: dict[str, str | None] = {u.job_id: None for u in uploads}
            refs = [db.collection(JOBS_COLLECTION).document(job_id) for job_id in statuses]
            if refs:
                for snap in db.get_all(refs, field_paths=["status"]):
                    if snap.exists:
                        statuses[snap.id] = (snap.to_dict() or {}).get("status")
            point = backlog_point(time.time() - t0, statuses)
            point["uploading"] = len(pending)
            curve.append(point)
            if not pending and point["backlog"] == 0:
                break
            if time.monotonic() - started > timeout_s:
                print(f"timeout: {point['backlog']} jobs not terminal after {timeout_s:.0f} s", flush=True)
                break
            if tick % 30 == 0:
                print(_curve_line(point), flush=True)
            tick += 1
            # Keep to a once-a-`poll_s` grid even when a poll takes a while; skip ticks already missed.
            next_at = started + tick * poll_s
            now = time.monotonic()
            if next_at < now:
                tick = math.ceil((now - started) / poll_s)
                next_at = started + tick * poll_s
            time.sleep(next_at - now)
    return uploads, errors, curve, t0


def _curve_line(point: Mapping[str, Any]) -> str:
    statuses = " ".join(f"{status}={n}" for status, n in point["by_status"].items())
    uploading = f" uploading={point['uploading']}" if point.get("uploading") else ""
    return f"  t={point['t']:7.1f}s  backlog {point['backlog']:4d}  {statuses}{uploading}".rstrip()


def collect(project: str, uploads: list[Upload], settle_s: float) -> list[dict[str, Any]]:
    """Each job's final document and recorded events, checked, after `settle_s` for late duplicates to land."""
    from google.cloud import firestore

    from speakerline.jobs import JOBS_COLLECTION
    from speakerline_tools import jobstore

    time.sleep(settle_s)
    db = firestore.Client(project=project)
    refs = [db.collection(JOBS_COLLECTION).document(u.job_id) for u in uploads]
    docs = {snap.id: snap.to_dict() for snap in db.get_all(refs) if snap.exists} if refs else {}
    return [job_row(u, docs.get(u.job_id) or {}, jobstore.job_events(db, u.job_id)) for u in uploads]


def job_row(upload: Upload, doc: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One job's line of the report, from its upload, its final document and its recorded events."""
    stages = doc.get("stages") or {}
    completed_at = _ts(stages.get("completed_at"))
    started_at = _ts(stages.get("diarization_started_at"))
    return {
        "job_id": upload.job_id,
        "file": upload.clip.path.name,
        "kind": upload.clip.kind,
        "audio_s": upload.clip.audio_s,
        "status": doc.get("status"),
        "upload_s": round(upload.finished - upload.started, 3),
        "upload_finished": upload.finished,
        "to_diarization_start_s": rounded(started_at - upload.finished) if started_at else None,
        "to_completed_s": rounded(completed_at - upload.finished) if completed_at else None,
        "completed_at": completed_at,
        "error": doc.get("error"),
        "events": dict(Counter(short_type(str(e.get("type"))) for e in events)),
        "problems": event_problems(events),
    }


def summarize(
    rows: list[dict[str, Any]],
    errors: list[str],
    curve: list[dict[str, Any]],
    t0: float,
    uploads: list[Upload],
) -> dict[str, Any]:
    completed = [r for r in rows if r["status"] == COMPLETED]
    lost = [r for r in rows if r["status"] not in TERMINAL]
    duplicated = [r for r in rows if is_duplicated(r["problems"])]
    last = max((r["completed_at"] for r in completed), default=None)

    def latencies(kind: str | None) -> dict[str, Any]:
        return latency_summary([r["to_completed_s"] for r in completed if kind in (None, r["kind"])])

    return {
        "counts": {
            "submitted": len(rows),
            "upload_errors": len(errors),
            "completed": len(completed),
            "failed": sum(r["status"] == JobStatus.FAILED.value for r in rows),
            "rejected": sum(r["status"] == JobStatus.REJECTED.value for r in rows),
            "lost": len(lost) + len(errors),
            "duplicated": len(duplicated),
        },
        "uploads_window_s": rounded(max((u.finished for u in uploads), default=t0) - t0),
        "wall_s": rounded(last - t0) if last else None,
        "jobs_per_minute": jobs_per_minute(len(completed), t0, last),
        "time_to_completed": {"all": latencies(None), "short": latencies("short"), "long": latencies("long")},
        "time_to_diarization_start": latency_summary(
            [r["to_diarization_start_s"] for r in rows if r["to_diarization_start_s"] is not None]
        ),
        "backlog": backlog_summary(curve),
        "lost_jobs": [r["job_id"] for r in lost],
        "duplicated_jobs": {r["job_id"]: r["problems"] for r in duplicated},
        "not_completed": {r["job_id"]: r["error"] for r in rows if r["status"] in TERMINAL - {COMPLETED}},
        "upload_error_messages": errors,
    }


def print_report(report: Mapping[str, Any]) -> None:
    summary, settings, host = report["summary"], report["settings"], report["machine"]
    counts = summary["counts"]
    print()
    print(
        f"load: {settings['short']} short ({settings['short_s']:.0f} s) + {settings['long']} long"
        f" ({settings['long_s']:.0f} s) uploads, {settings['threads']} upload threads,"
        f" engine {settings['service_env']['SPEAKERLINE_ENGINE']}"
    )
    print(f"machine: {host['cores']} cores ({host['cores_usable']} usable), {host['ram_gib']} GiB RAM, {host['cpu']}")
    print(f"uploads finished within {summary['uploads_window_s']} s of the first one")
    print(
        "counts: " + ", ".join(f"{name} {counts[name]}" for name in counts),
    )
    jpm = summary["jobs_per_minute"]
    print(f"throughput: {jpm if jpm is not None else '-'} jobs/min over {summary['wall_s'] or '-'} s")
    print("time to COMPLETED (upload finished -> completed_at):")
    print(f"  {'':6}{'n':>5}{'p50 s':>10}{'p95 s':>10}{'max s':>10}")
    for kind, stats in summary["time_to_completed"].items():
        cells = [_cell(stats[key]) for key in ("p50_s", "p95_s", "max_s")]
        print(f"  {kind:6}{stats['n']:>5}{cells[0]:>10}{cells[1]:>10}{cells[2]:>10}")
    queue = summary["time_to_diarization_start"]
    print(f"time to diarization start: p50 {_cell(queue['p50_s'])} s, p95 {_cell(queue['p95_s'])} s")
    backlog = summary["backlog"]
    print(
        f"backlog: peak {backlog['peak']} at t={backlog['peak_t']} s, drained at t={backlog['drained_t']} s,"
        f" {backlog['job_seconds']} job-seconds waiting"
    )
    print("backlog curve (jobs not terminal, by status):")
    for point in sample_curve(report["backlog_curve"], settings["table_every_s"]):
        print(_curve_line(point))
    for job_id in summary["lost_jobs"]:
        print(f"LOST {job_id}")
    for job_id, problems in summary["duplicated_jobs"].items():
        print(f"DUPLICATED {job_id}: {'; '.join(problems)}")
    for job_id, error in summary["not_completed"].items():
        print(f"NOT COMPLETED {job_id}: {error}")
    for message in summary["upload_error_messages"]:
        print(f"UPLOAD FAILED: {message}")


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=100, help="short uploads (default 100)")
    parser.add_argument("--long", type=int, default=10, help="long uploads among them (default 10)")
    parser.add_argument("--short-s", type=float, default=5.0, help="length of a short clip (default 5 s)")
    parser.add_argument("--long-s", type=float, default=120.0, help="length of a long clip (default 120 s)")
    parser.add_argument("--threads", type=int, default=16, help="parallel upload threads (default 16)")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="give up after (default 30 min)")
    parser.add_argument("--settle-s", type=float, default=10.0, help="wait for late duplicates (default 10 s)")
    parser.add_argument("--root", type=Path, default=REPO / ".stack" / "bench-load", help="stack state and logs")
    parser.add_argument("--json", type=Path, default=REPO / ".stack" / "bench-load.json", help="write the report")
    parser.add_argument("--table-every-s", type=float, default=30.0, help="backlog table step (default 30 s)")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()

    from speakerline_tools import stack

    service_env = dict(SERVICE_ENV)
    cfg = fresh_stack(args.root, "speakerline-load", service_env)
    clips = build_clips(args.root / "clips", args.short, args.long, args.short_s, args.long_s, args.seed)
    settings = {
        **{k: v for k, v in vars(args).items() if k not in ("root", "json")},
        "root": str(args.root),
        "service_env": service_env,
        "poll_s": 1.0,
    }
    try:
        print(f"stack up under {args.root} ...", flush=True)
        began = time.monotonic()
        stack.up(cfg, say=lambda _: None, timeout_s=240)
        print(f"stack up in {time.monotonic() - began:.0f} s; uploading {len(clips)} clips", flush=True)
        uploads, errors, curve, t0 = run_load(
            cfg.project, clips, threads=args.threads, timeout_s=args.timeout_s, poll_s=1.0
        )
        rows = collect(cfg.project, uploads, args.settle_s)
    finally:
        stack.down(cfg, say=lambda _: None)
    report: dict[str, Any] = {
        "summary": summarize(rows, errors, curve, t0, uploads),
        "settings": settings,
        "machine": machine(),
        "commit": _commit(),
        "started_at": datetime.fromtimestamp(t0).astimezone().isoformat(),
        "backlog_curve": curve,
        "jobs": rows,
    }
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print(f"report: {args.json}  (stack logs: {cfg.logs})")
    counts = report["summary"]["counts"]
    if counts["lost"] or counts["duplicated"]:
        return 1
    return 2 if counts["completed"] < counts["submitted"] else 0


if __name__ == "__main__":
    sys.exit(main())
