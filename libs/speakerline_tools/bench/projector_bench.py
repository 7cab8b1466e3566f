#!/usr/bin/env python3
"""How many events a second the projector sustains into the Firestore emulator (`projector_events_per_s`).

    python -m speakerline_tools.bench.projector_bench                               # 3000 events of 300 jobs
    python -m speakerline_tools.bench.projector_bench --rounds 3 --baseline /tmp/b  # beside another checkout
    python -m speakerline_tools.bench.projector_bench --profile /tmp/projector.json # py-spy speedscope of a drain

Brings up its own Pub/Sub and Firestore emulators (nothing else) on free ports under `.stack/bench-projector/`,
applies the topology, publishes the events of `jobs` jobs (each the sequence a real job produces: audio.uploaded,
audio.ingested, diarization.started, a few diarization.progress, diarization.completed, job.completed,
notification.delivered; fresh job and event ids, built from the schema examples) onto the topics, so that the
projector's five subscriptions hold the whole backlog, and only then starts the real projector
(`python -m speakerline.worker projector`, with the environment `speakerline_tools.stack` gives it).

`events_per_s` is the sustained rate: events applied per second between the 10th and 90th percentile of the apply
times (the projector's "event projected" log lines); `drain_s` is the first to the last apply, `startup_s` the
projector's start to its first apply. Every job document is then compared with the fold of its events
(`mismatched_jobs`: must be 0) and redeliveries are counted (`duplicates`). `store_only_events_per_s` calls
`FirestoreJobStore.apply` directly from 1, 4 and 16 threads (no Pub/Sub, no runtime), in a process of its own, to
separate the Firestore cost from the Pub/Sub and runtime cost. `cpu_cores` is the CPU each process used over the
drain (seconds of CPU per second of drain).

`--baseline DIR` runs the same rounds, alternating, with the projector and the runtime imported from DIR (a copy
of another commit: `mkdir DIR && git archive HEAD libs services | tar -x -C DIR`); figures are medians over the
rounds. A short unreported round first warms the emulators up (their JVMs run the first writes slower).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from speakerline_tools import repo
from speakerline_tools.bench import projector_workload
from speakerline_tools.bench.projector_workload import interleaved, workload

REPO = repo.root()
ROOT = REPO / ".stack" / "bench-projector"
PROJECT = "speakerline-bench-projector"
TARGET = 300
PROJECTED = "event projected"
DUPLICATE = "duplicate event; already projected"


# --- pure parts --------------------------------------------------------------------------------------------------


def sustained_rate(times: Sequence[float], low: float = 10, high: float = 90) -> float | None:
    """Events per second between the `low`th and `high`th percentile of the (unsorted) apply times."""
    if len(times) < 10:
        return None
    ordered = sorted(times)
    i, j = round((len(ordered) - 1) * low / 100), round((len(ordered) - 1) * high / 100)
    span = ordered[j] - ordered[i]
    return round((j - i) / span, 1) if span > 0 else None


def log_times(lines: Sequence[str], message: str) -> list[float]:
    """The timestamps (epoch seconds) of the projector's JSON log lines whose message is `message`."""
    out = []
    for line in lines:
        if message not in line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("message") == message:
            out.append(datetime.fromisoformat(str(doc["time"]).replace("Z", "+00:00")).timestamp())
    return out


def profile_summary(speedscope: Mapping[str, Any], top: int = 20) -> dict[str, list[dict[str, Any]]]:
    """Top functions of a py-spy speedscope profile: by self samples and by inclusive samples, in % of all."""
    frames = speedscope["shared"]["frames"]
    own: Counter[int] = Counter()
    inclusive: Counter[int] = Counter()
    by_thread: Counter[str] = Counter()
    total = 0.0
    samples = 0
    for prof in speedscope["profiles"]:
        # py-spy names each thread's profile `Process N Thread M "name"`; threads of one kind are summed
        thread = re.sub(r"^.*Thread \S+ ?", "", str(prof.get("name", ""))).strip('"') or "?"
        samples += len(prof["samples"])
        for stack, weight in zip(prof["samples"], prof["weights"], strict=True):
            total += weight
            by_thread[thread] += weight
            if stack:
                own[stack[-1]] += weight
            for index in set(stack):
                inclusive[index] += weight

    def label(index: int) -> str:
        frame = frames[index]
        where = str(frame.get("file", "")).split("site-packages/")[-1].replace(str(REPO) + "/", "")
        return f"{frame['name']} ({where}:{frame.get('line', '')})"

    def rows(counts: Counter[int]) -> list[dict[str, Any]]:
        return [{"pct": round(100 * n / total, 1), "frame": label(i)} for i, n in counts.most_common(top)]

    return {
        "samples": [{"pct": 100.0, "frame": f"{samples} samples"}],
        "threads": [{"pct": round(100 * n / total, 1), "frame": t} for t, n in by_thread.most_common(top)],
        "self": rows(own),
        "inclusive": rows(inclusive),
    }


# --- the stack ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stack_up(root: Path = ROOT) -> Any:
    """Pub/Sub and Firestore emulators (not fake-gcs-server, no service) with the topology applied."""
    from speakerline import topology
    from speakerline_tools import provision, stack

    if root.exists():  # a previous run's leftovers: stop its processes (by their pid files) and start from nothing
        stack.down(stack.StackConfig.load(root), say=lambda _: None)
        shutil.rmtree(root)
    cfg = stack.StackConfig(
        root=root,
        project=PROJECT,
        pubsub_port=free_port(),
        firestore_port=free_port(),
        gcs_port=free_port(),
        api_port=free_port(),
        services=True,  # so that components() describes the projector; only it is started, by run_projector
    )
    cfg.save()
    (cfg.root / "pubsub").mkdir(parents=True, exist_ok=True)
    comps = {c.name: c for c in stack.components(cfg)}
    os.environ.update(cfg.emulator_env())
    for name in ("pubsub", "firestore"):
        stack._ensure(cfg, comps[name], 120.0, lambda _: None)
    provision.apply_pubsub(topology.load(profile="local"), cfg.project)
    return cfg


def reset_firestore(cfg: Any) -> None:
    url = f"http://{cfg.host}:{cfg.firestore_port}/emulator/v1/projects/{cfg.project}/databases/(default)/documents"
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=60):
        pass


def publish(cfg: Any, events: Sequence[Any]) -> float:
    from speakerline import topology
    from speakerline.pubsub import PubSubPublisher

    started = time.monotonic()
    publisher = PubSubPublisher(cfg.project, topology.load())
    for i in range(0, len(events), 500):
        publisher.publish(list(events[i : i + 500]))
    return time.monotonic() - started


def _code_env(src: Path | None) -> dict[str, str]:
    """PYTHONPATH that makes `speakerline` and the services import from `src` (a checkout copy) first."""
    if src is None:
        return {}
    paths = [str(src / "libs"), str(src / "services"), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _cpu_s(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _read_lines(path: Path, offset: int) -> tuple[list[str], int]:
    with path.open("rb") as f:
        f.seek(offset)
        chunk = f.read()
    end = chunk.rfind(b"\n") + 1
    return chunk[:end].decode(errors="replace").splitlines(), offset + end


def run_projector(
    cfg: Any,
    n: int,
    *,
    src: Path | None = None,
    profile: Path | None = None,
    idle: bool = False,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Start the projector, wait until it has projected `n` events (or the timeout), stop it; its figures."""
    from speakerline_tools import stack, stack_processes

    comp = next(c for c in stack.components(cfg) if c.name == "projector")
    comp = dataclasses.replace(comp, env={**comp.env, **_code_env(src)})
    log = cfg.logs / "projector.log"
    offset = log.stat().st_size if log.exists() else 0
    (cfg.run / "projector.ready").unlink(missing_ok=True)
    emulator_pids = {name: stack_processes._read_pid(cfg, name) for name in ("pubsub", "firestore")}
    started = time.time()
    pid = stack_processes._start(cfg, comp)
    spy: subprocess.Popen[bytes] | None = None
    lines: list[str] = []
    projected: list[float] = []
    cpu_before: dict[str, float] = {}
    try:
        stack._wait_healthy(cfg, comp, pid, 120.0)
        if profile is not None:
            spy_bin = Path(sys.executable).with_name("py-spy")
            spy_args = ["record", "--pid", str(pid), "-o", str(profile), "--format", "speedscope", "--rate", "100"]
            spy = subprocess.Popen(
                [str(spy_bin), *spy_args, "--nonblocking", *(["--idle"] if idle else ["--gil"])],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu_before = {"projector": _cpu_s(pid), **{k: _cpu_s(v) for k, v in emulator_pids.items() if v}}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            new, offset = _read_lines(log, offset)
            lines += new
            projected += log_times(new, PROJECTED)
            if len(projected) >= n or not stack_processes._alive(pid):
                break
            time.sleep(0.2)
        cpu_after = {"projector": _cpu_s(pid), **{k: _cpu_s(v) for k, v in emulator_pids.items() if v}}
        time.sleep(1.0)  # late redeliveries, if any, land in the log
        new, offset = _read_lines(log, offset)
        lines += new
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
        stack_processes._stop_group(pid)
    first, last = (min(projected), max(projected)) if projected else (None, None)
    drain_s = (last - first) if first is not None and last is not None else None
    window = max(time.time() - started, 1e-9) if drain_s is None else max(drain_s, 1e-9)
    errors = [line for line in lines if '"severity": "ERROR"' in line]
    return {
        "events_per_s": sustained_rate(projected),
        "projected": len(projected),
        "duplicates": len(log_times(lines, DUPLICATE)),
        "errors": len(errors),
        "first_error": errors[0][:400] if errors else None,
        "drain_s": round(drain_s, 2) if drain_s is not None else None,
        "startup_s": round(first - started, 2) if first is not None else None,
        "cpu_cores": {k: round((cpu_after[k] - cpu_before[k]) / window, 2) for k in cpu_before},
    }


def check_documents(cfg: Any, by_job: Mapping[str, Sequence[Any]]) -> int:
    """How many job documents differ from the fold of their events (0: the projection is exact)."""
    from google.cloud import firestore

    from projector.projection import project
    from speakerline.jobs import JOBS_COLLECTION

    db = firestore.Client(project=cfg.project)
    job_ids = list(by_job)
    stored: dict[str, Any] = {}
    for i in range(0, len(job_ids), 100):
        refs = [db.collection(JOBS_COLLECTION).document(j) for j in job_ids[i : i + 100]]
        stored.update({snap.id: snap.to_dict() for snap in db.get_all(refs) if snap.exists})
    bad = 0
    for job_id, evs in by_job.items():
        doc: dict[str, Any] | None = None
        for event in evs:
            doc = project(doc, event)
        bad += stored.get(job_id) != doc
    return bad


def run_store_only(cfg: Any, events: int, jobs: int, src: Path | None = None) -> dict[str, float]:
    """`store_only` in a process of its own, importing the store from `src` when given."""
    env = {**os.environ, **cfg.emulator_env(), **_code_env(src)}
    # a file of its own, run as a script: a baseline checkout on PYTHONPATH need not have the benchmarks
    argv = [sys.executable, projector_workload.__file__, "--events", str(events), "--jobs", str(jobs)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"store-only run failed:\n{done.stderr[-2000:]}")
    rates: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return rates


# --- rounds ------------------------------------------------------------------------------------------------------


def one_round(
    cfg: Any,
    events: int,
    jobs: int,
    *,
    src: Path | None = None,
    profile: Path | None = None,
    idle: bool = False,
    store_events: int | None = None,
) -> dict[str, Any]:
    reset_firestore(cfg)
    by_job = workload(events, jobs)
    backlog = interleaved(by_job)
    publish_s = publish(cfg, backlog)
    figures = run_projector(cfg, len(backlog), src=src, profile=profile, idle=idle)
    figures["mismatched_jobs"] = check_documents(cfg, by_job)
    figures["publish_s"] = round(publish_s, 2)
    store_n = store_events if store_events is not None else min(events, 1200)
    figures["store_only_events_per_s"] = run_store_only(cfg, store_n, max(1, store_n * jobs // events), src)
    figures["events"] = len(backlog)
    return figures


def warm_up(cfg: Any, src: Path | None = None) -> None:
    """A short round, not reported: the emulators are JVMs, and their first thousand writes run slower."""
    one_round(cfg, 600, 60, src=src, store_events=120)


def measure(
    events: int = 3000,
    jobs: int = 300,
    *,
    src: Path | None = None,
    profile: Path | None = None,
    store_events: int | None = None,
) -> dict[str, Any]:
    """One round on a stack of its own (brought up and down here): see the module docstring."""
    from speakerline_tools import stack

    cfg = stack_up()
    try:
        warm_up(cfg, src)
        figures = one_round(cfg, events, jobs, src=src, profile=profile, store_events=store_events)
    finally:
        stack.down(cfg, say=lambda _: None)
    return {**figures, "target": TARGET}


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


def summarize(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Medians of a variant's rounds (every round kept alongside)."""
    keys = rounds[0]["store_only_events_per_s"].keys()
    return {
        "events_per_s": _median([r["events_per_s"] for r in rounds]),
        "store_only_events_per_s": {k: _median([r["store_only_events_per_s"][k] for r in rounds]) for k in keys},
        "events": rounds[0]["events"],
        "drain_s": _median([r["drain_s"] for r in rounds]),
        "target": TARGET,
        "rounds": list(rounds),
    }


def _profile_path(profile: Path | None, variant: str, variants: int) -> Path | None:
    """Where a variant's profile goes: `profile` itself, or beside it with the variant's name when there are two."""
    if profile is None or variants == 1:
        return profile
    return profile.with_name(f"{profile.stem}-{variant}{profile.suffix}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--store-events", type=int, default=None, help="events per thread count (default 1200)")
    parser.add_argument("--baseline", type=Path, default=None, help="a copy of other code (libs/, services/)")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy speedscope of the first round (one per variant, named after it)",
    )
    parser.add_argument(
        "--profile-idle", action="store_true", help="profile wall time (idle threads too), not the GIL holder"
    )
    args = parser.parse_args(argv)

    from speakerline_tools import stack

    variants: list[tuple[str, Path | None]] = [("current", None)]
    if args.baseline is not None:
        variants.insert(0, ("baseline", args.baseline.resolve()))
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    cfg = stack_up()
    try:
        warm_up(cfg)
        for r in range(args.rounds):
            for name, src in variants if r % 2 == 0 else list(reversed(variants)):
                profile = _profile_path(args.profile, name, len(variants)) if r == 0 else None
                figures = one_round(
                    cfg,
                    args.events,
                    args.jobs,
                    src=src,
                    profile=profile,
                    idle=args.profile_idle,
                    store_events=args.store_events,
                )
                print(f"round {r + 1} {name}: {json.dumps(figures)}", file=sys.stderr, flush=True)
                results[name].append(figures)
    finally:
        stack.down(cfg, say=lambda _: None)
    report: dict[str, Any] = {name: summarize(rounds) for name, rounds in results.items()}
    for name, _ in variants:
        path = _profile_path(args.profile, name, len(variants))
        if path is not None and path.exists():
            report[name]["profile"] = profile_summary(json.loads(path.read_text()))
    out: dict[str, Any] = report["current"] if len(report) == 1 else report
    print(json.dumps(out, indent=2))
    bad = any(r["mismatched_jobs"] or r["projected"] < r["events"] for rounds in results.values() for r in rounds)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
