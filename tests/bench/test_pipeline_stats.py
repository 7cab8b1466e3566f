"""The pure parts of the pipeline benchmark (speakerline_tools.bench.pipeline_bench): lengths, overhead, tables."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from speakerline_tools.bench import pipeline_bench as bench


def test_lengths_are_positive_minutes_in_the_order_given() -> None:
    assert bench.parse_lengths("1,5,15,60") == (1.0, 5.0, 15.0, 60.0)
    assert bench.parse_lengths("0.5, 1,") == (0.5, 1.0)
    for text in ("", "0", "-1", "1,1", "nan"):
        with pytest.raises(ValueError):
            bench.parse_lengths(text)


def test_the_stage_parts_sum_to_end_to_end_minus_the_engine() -> None:
    stages: dict[str, float | None] = {
        "received_at": 100.2,
        "ingested_at": 100.5,
        "diarization_started_at": 100.6,
        "diarized_at": 130.9,
        "completed_at": 131.1,
    }
    parts = bench.stage_breakdown(100.0, stages, engine_s=30.0)
    assert parts == {
        "upload_to_received_s": 0.2,
        "ingest_s": 0.3,
        "queue_to_diarization_s": 0.1,
        "diarization_outside_engine_s": 0.3,
        "postprocess_s": 0.2,
    }
    assert sum(parts.values()) == pytest.approx(131.1 - 100.0 - 30.0)


def test_a_missing_stage_leaves_its_parts_unknown() -> None:
    parts = bench.stage_breakdown(100.0, {"received_at": 100.2, "completed_at": 131.0}, engine_s=30.0)
    assert parts["upload_to_received_s"] == 0.2
    assert parts["ingest_s"] is None and parts["postprocess_s"] is None


def _run(e2e: float, overhead: float | None, ingest: float | None = 0.1) -> dict[str, Any]:
    stages: dict[str, float | None] = dict.fromkeys((f"{name}_s" for name, _, _ in bench.OVERHEAD_PARTS), 0.0)
    stages["ingest_s"] = ingest
    return {"e2e_s": e2e, "overhead_s": overhead, "stages": stages}


def test_overhead_summary_takes_medians_of_the_completed_runs() -> None:
    runs = [_run(10.0, 1.0), _run(20.0, 3.0, ingest=0.3), _run(40.0, 2.0, ingest=None), _run(5.0, None)]
    summary = bench.overhead_summary(runs)
    assert summary["seconds_p50"] == 2.0
    assert summary["ratio_p50"] == 0.1  # 0.1, 0.15, 0.05
    assert summary["stages_p50"]["ingest_s"] == 0.2  # the unknown part left out
    assert summary["n"] == 3 and len(summary["runs"]) == 4
    assert summary["target"] == {"seconds": 1.5, "ratio": 0.10}
    assert bench.overhead_summary([])["seconds_p50"] is None


def test_peak_rss_table_takes_the_5_minute_and_1_hour_runs() -> None:
    rss = {"ingest": 110.0, "diarization": 1300.0}
    table = bench.peak_rss_table([{"audio_min": 5.0, "peak_rss_mb": rss}, {"audio_min": 1.0, "peak_rss_mb": {}}])
    assert table["5min"] == rss
    assert "skipped" in table["1h"]
    assert table["6h"] == {"skipped": "make bench-long"}


def test_hop_lengths_cycle_through_5_to_10_seconds() -> None:
    assert bench.hop_lengths(8) == [5, 6, 7, 8, 9, 10, 5, 6]


def test_hop_latencies_are_skipped_without_traces(tmp_path: Path) -> None:
    assert bench.hop_latencies(tmp_path) == {"skipped": "no traces"}
    assert bench.hop_latencies(tmp_path, since=time.time()) == {"skipped": "no traces"}


def test_the_sampler_keeps_the_peak_of_a_process_tree() -> None:
    ballast = b"x" * (64 * bench.MB)  # touched pages: resident
    with bench.RssSampler({"me": os.getpid()}, every_s=0.01) as sampler:
        deadline = time.monotonic() + 10
        while sampler.samples < 2 and time.monotonic() < deadline:  # the first sample imports psutil: slow
            time.sleep(0.01)
    assert sampler.samples >= 2
    assert sampler.peak_mb()["me"] >= 64 and len(ballast) == 64 * bench.MB
    assert bench.tree_rss(2**22 + 12345) is None  # no such process
