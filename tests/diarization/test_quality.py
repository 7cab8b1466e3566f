"""Diarization quality of the embedded engine on the committed suites, through the `speakerline eval` API.

DER is pyannote.metrics' ``DiarizationErrorRate(collar=0.0, skip_overlap=False)`` over the whole file: no
forgiveness collar and overlapped speech scored, the strictest common setting; no speaker count is given. Two
suites (``-s`` prints both tables; ``speakerline eval DIR`` prints the same):

- ``tests/data/real-dev``: ten 30 s excerpts of real AMI meetings (1-4 speakers). Gate: overall DER <= 22 % and
  output on every file.
- ``tests/data/eval``: seven synthetic 2-4 speaker conversations with exact references. Gate: every file <= 10 %,
  overall <= 5 %, and the exact speaker count on every file.

Numbers are recorded in services/diarization/EVAL.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from speakerline_diarization.engines.base import DiarizationOptions
from speakerline_diarization.evaluation import EvalReport, evaluate_dir, format_report

DATA_DIR = Path(__file__).resolve().parents[1] / "data"

REAL_DEV_MAX_OVERALL_DER = 0.22
SYNTHETIC_MAX_DER = 0.10
SYNTHETIC_MAX_OVERALL_DER = 0.05


def _evaluate(engine: Any, suite: str) -> tuple[EvalReport, str]:
    report = evaluate_dir(engine, DATA_DIR / suite)
    table = format_report(report, title=f"{suite}: embedded engine, speaker count not given")
    print("\n" + table)
    return report, table


def test_embedded_engine_on_real_dev(embedded_engine: Any) -> None:
    report, table = _evaluate(embedded_engine, "real-dev")

    assert len(report.files) == 10, table
    assert not report.files_without_output, f"no output for {report.files_without_output}\n{table}"
    assert report.der <= REAL_DEV_MAX_OVERALL_DER, (
        f"overall DER {report.der:.1%} above {REAL_DEV_MAX_OVERALL_DER:.0%}\n{table}"
    )


def test_embedded_engine_on_synthetic_eval_set(embedded_engine: Any) -> None:
    report, table = _evaluate(embedded_engine, "eval")

    assert len(report.files) == 7, table
    bad_der = [f"{f.name} ({f.der:.1%})" for f in report.files if f.der > SYNTHETIC_MAX_DER]
    wrong = [f for f in report.files if not f.exact_speaker_count]
    bad_count = [f"{f.name} ({f.found_speakers}/{f.reference_speakers})" for f in wrong]
    assert not bad_der, f"DER above {SYNTHETIC_MAX_DER:.0%}: {bad_der}\n{table}"
    assert not bad_count, f"wrong speaker count: {bad_count}\n{table}"
    assert report.der <= SYNTHETIC_MAX_OVERALL_DER, (
        f"overall DER {report.der:.1%} above {SYNTHETIC_MAX_OVERALL_DER:.0%}\n{table}"
    )


@pytest.mark.parametrize("num_speakers", [2, 3])
def test_given_speaker_count_is_respected(
    embedded_engine: Any, sample_dir: Path, as_wav: Any, num_speakers: int
) -> None:
    wav = as_wav(sample_dir / "conversation.flac")
    result = embedded_engine.diarize(wav, DiarizationOptions(num_speakers=num_speakers))
    assert len(result.speakers) == num_speakers
