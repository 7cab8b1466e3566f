"""Progress reporting: the throttle of `diarization.progress` and the mapping of pyannote's hook onto it."""

from __future__ import annotations

import pytest

from diarization.engines.base import Progress
from diarization.engines.pyannote import PipelineProgress
from diarization.progress import ProgressReport, ProgressReporter
from tests.fakes import FakeClock


def test_reports_are_throttled_and_only_ever_move_forward() -> None:
    clock, reports = FakeClock(now=100.0), []
    reporter = ProgressReporter(reports.append, audio_s=600.0, interval_s=5.0, clock=clock)
    clock.now += 2.0
    reporter(Progress(0.1, "segmentation"))  # the first report goes out at once
    clock.now += 1.0
    reporter(Progress(0.2, "segmentation"))  # 1 s later: held back
    clock.now += 5.0
    reporter(Progress(0.05, "segmentation"))  # behind the last report: never reported
    reporter(Progress(0.4, "embeddings"))
    clock.now += 10.0
    reporter(Progress(0.4, "embeddings"))  # no movement: nothing to say

    assert [(r.fraction, r.stage, r.sequence) for r in reports] == [(0.1, "segmentation", 1), (0.4, "embeddings", 2)]
    last = reports[-1]
    assert last.processed_audio_s == pytest.approx(240.0)
    assert last.elapsed_s == pytest.approx(8.0)
    assert last.eta_s == pytest.approx(12.0)  # 8 s for 40 %: 12 s more for the other 60 %


def test_the_report_json_matches_the_event_schema_fields() -> None:
    report = ProgressReport(0.5, "embeddings", 60.0, 30.0, 4.0, None, 3)
    assert report.to_json() == {
        "fraction": 0.5,
        "stage": "embeddings",
        "audio_s": 60.0,
        "processed_audio_s": 30.0,
        "elapsed_s": 4.0,
        "eta_s": None,
        "sequence": 3,
    }


def test_an_emit_failure_is_swallowed() -> None:
    def emit(report: ProgressReport) -> None:
        raise ConnectionError("down")

    reporter = ProgressReporter(emit, audio_s=10.0, interval_s=0.0, clock=FakeClock(now=100.0))
    reporter(Progress(0.5, "embeddings"))
    assert reporter.sequence == 1


def test_pyannote_hook_calls_map_onto_one_growing_fraction() -> None:
    seen: list[Progress] = []
    hook = PipelineProgress(seen.append)
    hook("segmentation", None, file={}, completed=0, total=4)
    hook("segmentation", None, file={}, completed=2, total=4)
    hook("segmentation", object(), file={})  # the step's end (no counts)
    hook("speaker_counting", object(), file={})  # not a long step: no report
    hook("embeddings", None, file={}, completed=0, total=10)  # same fraction as segmentation's end
    hook("embeddings", None, file={}, completed=5, total=10)
    hook("embeddings", None, file={}, completed=12, total=10)  # pyannote may overshoot the last batch
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and len(set(fractions)) == len(fractions)
    assert [p.stage for p in seen] == ["segmentation", "segmentation", "embeddings", "embeddings"]
    assert fractions[1] == pytest.approx(0.16) and fractions[-1] == pytest.approx(0.98)
