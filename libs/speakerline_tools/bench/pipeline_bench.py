#!/usr/bin/env python3
"""One job at a time through the whole local stack: time, memory and overhead by audio length (not in `make test`).

    python -m speakerline_tools.bench.pipeline_bench                        # 1, 5, 15, 60 min (~25 min of CPU)
    python -m speakerline_tools.bench.pipeline_bench --lengths 0.5,1 --overhead-runs 1 --hop-jobs 5    # a quick look
    python -m speakerline_tools.bench.pipeline_bench --json out.json --plot out.png

Brings up its own stack (emulators, every service as a process, the embedded CPU engine, spans written as JSON
lines under `<root>/traces/`) on free ports under `.stack/bench-pipeline/stack/` (logs stay there afterwards) and
runs every job alone: upload, wait for COMPLETED, next (so each figure is that job's own). First a warm-up job
(8 s), not counted. Then:

1. scaling: per length, a recording of real speech: conversations of the 251 LibriSpeech voices of
   `../shared/data/librispeech-voices` made by `speakerline_tools.datasets.voices_set` (its 24 conversation designs with
   seeds of their own and a rotated voice pool per round), concatenated to the length (seeded, deterministic;
   cached as FLAC under `<out>/recordings/`). Per job: end to end (upload finished -> the job's `completed_at`),
   engine seconds (`timings.inference_s` of diarization.completed), RTF (engine seconds / audio seconds), the
   overhead by stage, and the peak RSS of every service (its whole process tree, sampled every 0.2 s from the
   upload to COMPLETED; MB = 2**20 bytes).
2. pipeline overhead: end to end minus engine seconds for `--overhead-runs` distinct 5-minute recordings (the
   scaling run's 5-minute job is the first), p50 in seconds and as a share of end to end, against the target
   (1.5 s, 10%), and where it goes: upload -> received_at (bucket notification, ingest re-publishing it),
   received_at -> ingested_at (ingest), ingested_at -> diarization_started_at (queue), diarization_started_at ->
   diarized_at minus the engine (the diarization worker's download, upload, events), diarized_at -> completed_at
   (post-processing).
3. hops: `--hop-jobs` clips of 5-10 s of real speech (cut from the bundled sample as load.py does), one after
   another about 1 s apart; the per-hop latencies from the stack's traces (`speakerline_tools.traces.hop_latencies`
   where it exists).
4. a plot (`--plot`): end-to-end and engine seconds, and peak RSS per service, against the audio length.

Written as JSON (default `.stack/bench-pipeline.json`). Exit status 1 when a job did not complete. Its pure parts
are unit-tested in tests/bench/test_pipeline_stats.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from speakerline_tools.bench import load, stats
from speakerline_tools.bench.speech_recordings import VOICES_SOURCE, build_speech

if TYPE_CHECKING:
    from google.cloud import firestore

    from speakerline_tools.stack import StackConfig

REPO = load.REPO
DEFAULT_OUT = REPO / ".stack" / "bench-pipeline"
MB = 2**20
SAMPLE_EVERY_S = 0.2
OVERHEAD_MIN = 5.0
OVERHEAD_TARGET = {"seconds": 1.5, "ratio": 0.10}
HOP_SECONDS = (5, 6, 7, 8, 9, 10)
HOP_PAUSE_S = 1.0
#: The stages of a job document, in order: upload finished -> each of these.
STAGES = ("received_at", "ingested_at", "diarization_started_at", "diarized_at", "completed_at")
#: Where the overhead goes: (name, from stage, to stage); the engine's seconds are taken out of "diarization".
OVERHEAD_PARTS = (
    ("upload_to_received", None, "received_at"),
    ("ingest", "received_at", "ingested_at"),
    ("queue_to_diarization", "ingested_at", "diarization_started_at"),
    ("diarization_outside_engine", "diarization_started_at", "diarized_at"),
    ("postprocess", "diarized_at", "completed_at"),
)


# --- pure parts (unit-tested in test_pipeline_stats.py) --------------------------------------------------------


def parse_lengths(text: str) -> tuple[float, ...]:
    """`"1,5,15,60"` -> (1.0, 5.0, 15.0, 60.0): positive minutes, in the order given, no repeats."""
    lengths = tuple(float(part) for part in text.split(",") if part.strip())
    if not lengths or any(not math.isfinite(x) or x <= 0 for x in lengths):
        raise ValueError(f"lengths must be positive minutes, comma-separated: {text!r}")
    if len(set(lengths)) != len(lengths):
        raise ValueError(f"a length appears twice: {text!r}")
    return lengths


def stage_breakdown(upload_finished: float, stages: Mapping[str, float | None], engine_s: float) -> dict[str, Any]:
    """The overhead of one job by stage (seconds, from its stage timestamps as epoch seconds): the parts sum to
    end to end minus the engine's seconds. A part whose stage is missing is None."""
    parts: dict[str, Any] = {}
    for name, start, end in OVERHEAD_PARTS:
        a = upload_finished if start is None else stages.get(start)
        b = stages.get(end)
        seconds = None if a is None or b is None else b - a
        if seconds is not None and name == "diarization_outside_engine":
            seconds -= engine_s
        parts[f"{name}_s"] = stats.rounded(seconds, 3)
    return parts


def overhead_summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """p50 of the overhead (seconds and share of end to end) and of each stage part over the completed runs."""
    done = [r for r in runs if r.get("overhead_s") is not None]
    parts = {
        f"{name}_s": stats.rounded(
            stats.percentile([r["stages"][f"{name}_s"] for r in done if r["stages"][f"{name}_s"] is not None], 50), 3
        )
        for name, _, _ in OVERHEAD_PARTS
    }
    return {
        "seconds_p50": stats.rounded(stats.percentile([r["overhead_s"] for r in done], 50), 3),
        "ratio_p50": stats.rounded(stats.percentile([r["overhead_s"] / r["e2e_s"] for r in done], 50), 4),
        "stages_p50": parts,
        "n": len(done),
        "runs": list(runs),
        "target": dict(OVERHEAD_TARGET),
    }


def peak_rss_table(scaling: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Peak RSS per service of the 5-minute and 1-hour runs (6 hours is `make bench-long`'s)."""

    def of(minutes: float) -> dict[str, Any]:
        row = next((r for r in scaling if r["audio_min"] == minutes), None)
        return dict(row["peak_rss_mb"]) if row else {"skipped": f"no {minutes:g}-minute run (--lengths)"}

    return {"5min": of(5), "1h": of(60), "6h": {"skipped": "make bench-long"}}


def hop_latencies(telemetry_dir: Path, since: float = 0.0) -> dict[str, Any]:
    """Queue wait per hop from the stack's spans (`<telemetry_dir>/traces/*.jsonl`) that started after `since` (the
    hop phase's: not the long jobs'); skipped when there are none."""
    from speakerline_tools import traces

    return traces.hop_latencies(telemetry_dir, since=since) or {"skipped": "no traces"}


def hop_lengths(n: int) -> list[int]:
    """The length in seconds of each hop clip: 5, 6, ... 10, 5, ..."""
    return [HOP_SECONDS[k % len(HOP_SECONDS)] for k in range(n)]


# --- the run -----------------------------------------------------------------------------------------------------


def tree_rss(pid: int) -> int | None:
    """Resident bytes of a process and all its descendants; None when it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


class RssSampler:
    """Samples each service's process-tree RSS every `every_s` in a thread, keeping the peak (a context manager)."""

    def __init__(self, pids: Mapping[str, int], every_s: float = SAMPLE_EVERY_S) -> None:
        self.pids = dict(pids)
        self.every_s = every_s
        self.peaks: dict[str, int] = dict.fromkeys(self.pids, 0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], tree_rss(pid) or 0)
            self.samples += 1
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self) -> dict[str, float]:
        return {name: round(peak / MB, 1) for name, peak in self.peaks.items()}


@dataclasses.dataclass
class Bench:
    """The stack under test and what talks to it."""

    cfg: StackConfig
    db: firestore.Client
    uploader: load.Uploader
    services: list[str]

    def pids(self) -> dict[str, int]:
        """Each service's pid, from the stack's run folder (read per job: a service may have been restarted)."""
        return {name: int((self.cfg.run / f"{name}.pid").read_text().strip()) for name in self.services}

    def job(self, clip: load.Clip, settle_s: float = HOP_PAUSE_S) -> dict[str, Any]:
        """Upload one clip, wait for it to be terminal (sampling RSS meanwhile), let it settle; its figures."""
        from speakerline_tools import client, jobstore

        with RssSampler(self.pids()) as sampler:
            upload = self.uploader(clip)
            doc = client.wait(self.db, upload.job_id, timeout_s=300 + clip.audio_s, poll_s=0.25) or {}
        time.sleep(settle_s)  # the notification and the projector's last writes: not into the next job
        doc = jobstore.get_job(self.db, upload.job_id) or doc
        row = load.job_row(upload, doc, jobstore.job_events(self.db, upload.job_id))
        engine_s = (doc.get("timings") or {}).get("inference_s")
        e2e_s = row["to_completed_s"]
        stages = {key: load._ts((doc.get("stages") or {}).get(key)) for key in STAGES}
        overhead = None if e2e_s is None or engine_s is None else round(e2e_s - engine_s, 3)
        return {
            "audio_min": round(clip.audio_s / 60, 3),
            "file": clip.path.name,
            "job_id": upload.job_id,
            "status": row["status"],
            "upload_s": row["upload_s"],
            "e2e_s": e2e_s,
            "engine_s": engine_s,
            "rtf": round(engine_s / clip.audio_s, 4) if engine_s is not None else None,
            "overhead_s": overhead,
            "stages": stage_breakdown(upload.finished, stages, engine_s or 0.0),
            "speakers": ((doc.get("result") or {}).get("summary") or {}).get("num_speakers"),
            "events": sum(row["events"].values()),
            "problems": row["problems"],
            "peak_rss_mb": sampler.peak_mb(),
            "rss_samples": sampler.samples,
        }


def speech_clip(minutes: float, seed: int, out_dir: Path) -> load.Clip:
    import soundfile as sf

    path = build_speech(minutes, seed, out_dir)
    return load.Clip(path, "speech", sf.info(str(path)).duration)


def _say(row: Mapping[str, Any], label: str) -> None:
    print(
        f"  {label:10} {row['audio_min']:7.2f} min  {row['status']}  e2e {load._cell(row['e2e_s'])} s"
        f"  engine {load._cell(row['engine_s'])} s  overhead {row['overhead_s']} s  peak RSS "
        + " ".join(f"{name} {mb:.0f}" for name, mb in row["peak_rss_mb"].items()),
        flush=True,
    )


def measure(
    lengths_min: Sequence[float] = (1, 5, 15, 60),
    overhead_runs: int = 3,
    hop_jobs: int = 30,
    out_dir: Path = DEFAULT_OUT,
) -> dict[str, Any]:
    """Bring up a stack of its own under `out_dir/stack`, run the phases one job at a time, bring it down."""
    from google.cloud import firestore

    from speakerline import topology
    from speakerline_tools import stack

    out_dir = out_dir.resolve()
    root = out_dir / "stack"
    cfg = load.fresh_stack(root, "speakerline-bench", load.SERVICE_ENV)  # the stack writes its traces under root
    print("building recordings ...", flush=True)
    began = time.monotonic()
    scaling_clips = [speech_clip(m, k, out_dir) for k, m in enumerate(lengths_min)]
    extra = overhead_runs - (OVERHEAD_MIN in lengths_min)
    overhead_clips = [speech_clip(OVERHEAD_MIN, 100 + k, out_dir) for k in range(max(0, extra))]
    hop_clips = _hop_clips(out_dir / "hop", hop_jobs)
    warmup = load.build_clips(out_dir / "warmup", 1, 0, 8.0, 0.0, seed=1)[0]
    print(f"recordings ready in {time.monotonic() - began:.0f} s", flush=True)
    t0 = time.time()
    try:
        print(f"stack up under {root} ...", flush=True)
        stack.up(cfg, say=lambda _: None, timeout_s=240)
        bench = Bench(
            cfg, firestore.Client(project=cfg.project), load.Uploader(cfg.project), list(topology.load().services)
        )
        _say(bench.job(warmup), "warm-up")
        scaling = []
        for clip in scaling_clips:
            scaling.append(bench.job(clip))
            _say(scaling[-1], "scaling")
        runs = [r for r in scaling if r["audio_min"] == OVERHEAD_MIN][:overhead_runs]
        for clip in overhead_clips:
            runs.append(bench.job(clip))
            _say(runs[-1], "overhead")
        hops = []
        hops_began = time.time()
        for clip in hop_clips:
            hops.append(bench.job(clip))
        print(f"  hops: {len(hops)} jobs, {sum(h['events'] for h in hops)} events", flush=True)
    finally:
        stack.down(cfg, say=lambda _: None)
    completed = [r["e2e_s"] for r in hops if r["status"] == load.COMPLETED]
    return {
        "scaling": [{key: r[key] for key in SCALING_KEYS} | {"detail": r} for r in scaling],
        "peak_rss_mb": peak_rss_table(scaling),
        "pipeline_overhead": overhead_summary(runs),
        "hop_latency_ms": hop_latencies(root, since=hops_began),
        "hop_phase": {
            "jobs": len(hops),
            "completed": len(completed),
            "events": sum(h["events"] for h in hops),
            "e2e": stats.latency_summary(completed),
            "audio_s": [round(h["audio_min"] * 60, 1) for h in hops],
        },
        "warmup": warmup.path.name,
        "settings": {
            "lengths_min": list(lengths_min),
            "overhead_runs": overhead_runs,
            "hop_jobs": hop_jobs,
            "out_dir": str(out_dir),
            "service_env": cfg.service_env,
            "rss_sample_every_s": SAMPLE_EVERY_S,
            "voices": str(VOICES_SOURCE),
        },
        "machine": load.machine(),
        "commit": load._commit(),
        "started_at": datetime.fromtimestamp(t0).astimezone().isoformat(),
        "wall_s": round(time.time() - t0, 1),
        "jobs_not_completed": [r["job_id"] for r in [*scaling, *runs, *hops] if r["status"] != load.COMPLETED],
    }


SCALING_KEYS = ("audio_min", "e2e_s", "engine_s", "rtf", "peak_rss_mb")


def _hop_clips(folder: Path, n: int) -> list[load.Clip]:
    """`n` clips of 5-10 s cut from the sample the way load.py cuts its short ones, lengths interleaved."""
    seconds = hop_lengths(n)
    by_length = {
        s: iter(load.build_clips(folder / f"{s}s", seconds.count(s), 0, float(s), 0.0, seed=s)) for s in set(seconds)
    }
    return [next(by_length[s]) for s in seconds]


def plot(result: Mapping[str, Any], path: Path) -> None:
    """Two panels against the audio length: seconds (end to end, engine) and peak RSS per service (MB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    rows = sorted(result["scaling"], key=lambda r: r["audio_min"])
    minutes = [r["audio_min"] for r in rows]
    fig, (times, memory) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, label in (("e2e_s", "end to end"), ("engine_s", "engine")):
        times.plot(minutes, [r[key] for r in rows], marker="o", label=label)
    times.set(xscale="log", yscale="log", xlabel="audio (min)", ylabel="seconds", title="time per job")
    services = list(rows[0]["peak_rss_mb"]) if rows else []
    for name in services:
        memory.plot(minutes, [r["peak_rss_mb"].get(name) for r in rows], marker="o", label=name)
    memory.set(xscale="log", xlabel="audio (min)", ylabel="MB (2**20 bytes)", title="peak RSS per service")
    for axes in (times, memory):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        axes.set_xticks(minutes, [f"{m:g}" for m in minutes])
        axes.xaxis.set_minor_formatter(NullFormatter())
    times.yaxis.set_major_formatter(ScalarFormatter())
    times.yaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_report(result: Mapping[str, Any]) -> None:
    print()
    services = list(result["scaling"][0]["peak_rss_mb"]) if result["scaling"] else []
    print(f"{'audio min':>9} {'e2e s':>8} {'engine s':>9} {'rtf':>7}  " + " ".join(f"{s[:12]:>12}" for s in services))
    for row in result["scaling"]:
        print(
            f"{row['audio_min']:>9g} {load._cell(row['e2e_s']):>8} {load._cell(row['engine_s']):>9}"
            f" {row['rtf'] if row['rtf'] is not None else '-':>7}  "
            + " ".join(f"{row['peak_rss_mb'][s]:>12.0f}" for s in services)
        )
    overhead = result["pipeline_overhead"]
    print(
        f"overhead (5 min, n={overhead['n']}): p50 {overhead['seconds_p50']} s, {overhead['ratio_p50']} of end to end"
        f" (target {overhead['target']['seconds']} s, {overhead['target']['ratio']})"
    )
    print("  by stage (p50 s): " + ", ".join(f"{k} {v}" for k, v in overhead["stages_p50"].items()))
    hops = result["hop_phase"]
    print(
        f"hops: {hops['completed']}/{hops['jobs']} completed, {hops['events']} events, e2e p50 {hops['e2e']['p50_s']} s"
    )
    print(f"hop latency: {json.dumps(result['hop_latency_ms'])[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lengths", type=parse_lengths, default=(1.0, 5.0, 15.0, 60.0), help="minutes (1,5,15,60)")
    parser.add_argument("--overhead-runs", type=int, default=3, help="5-minute runs for the overhead (default 3)")
    parser.add_argument("--hop-jobs", type=int, default=30, help="short jobs for the hop latencies (default 30)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="recordings cache and the stack's folder")
    parser.add_argument("--json", type=Path, default=REPO / ".stack" / "bench-pipeline.json", help="the report")
    parser.add_argument("--plot", type=Path, default=REPO / ".stack" / "bench-pipeline.png", help="the PNG")
    args = parser.parse_args()
    result = measure(args.lengths, args.overhead_runs, args.hop_jobs, args.out)
    print_report(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    plot(result, args.plot)
    print(f"report: {args.json}  plot: {args.plot}  (stack logs: {args.out / 'stack' / 'logs'})")
    return 1 if result["jobs_not_completed"] else 0


if __name__ == "__main__":
    sys.exit(main())
