"""Diarization quality of the embedded engine on the committed suites, through the `speakerline eval` API.

DER is pyannote.metrics' ``DiarizationErrorRate(collar=0.0, skip_overlap=False)`` over the whole file: no
forgiveness collar and overlapped speech scored, the strictest common setting; no speaker count is given. Two
suites (``-s`` prints both tables; ``speakerline eval DIR`` prints the same):

- ``tests/data/real-dev``: ten 30 s excerpts of real AMI meetings (1-4 speakers). Gate: overall DER <= 27 %
  (today 25.0 %, before this engine 29.3 %; the issue's goal of 20 % is not reached yet), missed speech <= 19 %
  (was 21.7 %) and output on every file.
- ``tests/data/eval``: seven synthetic 2-4 speaker conversations with exact references. Gate: every file <= 10 %,
  overall <= 5 %, and the exact speaker count on every file.

Numbers are recorded in services/diarization/EVAL.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from diarization.engines.base import DiarizationOptions
from speakerline_tools.evaluation import EvalReport, evaluate_dir, format_report

DATA_DIR = Path(__file__).resolve().parents[1] / "data"

REAL_DEV_MAX_OVERALL_DER = 0.27
REAL_DEV_MAX_MISSED = 0.19
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
    # quiet, far-field speech that only some segmentation windows pick up, and overlapped
    # speech, were dropped by rounding the windows' hard votes (21.7 % missed)
    assert report.errors.miss <= REAL_DEV_MAX_MISSED, f"missed speech {report.errors.miss:.1%}\n{table}"


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


@pytest.mark.parametrize("num_speakers", [1, 2, 3, 4, 5])
def test_given_speaker_count_is_respected(
    embedded_engine: Any, sample_dir: Path, as_wav: Any, num_speakers: int
) -> None:
    wav = as_wav(sample_dir / "conversation.flac")
    result = embedded_engine.diarize(wav, DiarizationOptions(num_speakers=num_speakers))
    assert len(result.speakers) == num_speakers


@pytest.mark.parametrize(
    ("min_speakers", "max_speakers", "expected"), [(4, None, 4), (5, 6, None), (None, 2, 2), (1, 1, 1), (2, 5, 3)]
)
def test_speaker_bounds_are_respected(
    embedded_engine: Any,
    sample_dir: Path,
    as_wav: Any,
    min_speakers: int | None,
    max_speakers: int | None,
    expected: int | None,
) -> None:
    """Bounds are met; a bound the engine's own estimate (3) lies against moves it just as far as the bound, and
    bounds around the estimate leave it alone."""
    wav = as_wav(sample_dir / "conversation.flac")  # 3 speakers, 10 turns
    options = DiarizationOptions(min_speakers=min_speakers, max_speakers=max_speakers)
    found = len(embedded_engine.diarize(wav, options).speakers)
    assert (min_speakers or 1) <= found <= (max_speakers or found)
    if expected is not None:
        assert found == expected


def test_reference_count_on_real_meetings(embedded_engine: Any) -> None:
    """Told the reference's speaker count, the engine returns exactly that many on every file with enough
    separate turns, and does not do worse than it did before (39.7 % when AHC/k-means split the main voice)."""
    report = evaluate_dir(embedded_engine, DATA_DIR / "real-dev", num_speakers_from_reference=True)
    table = format_report(report, title="real-dev, speaker count from the reference")
    print("\n" + table)
    wrong = [f.name for f in report.files if f.turns >= f.reference_speakers and not f.exact_speaker_count]
    assert not wrong, table
    assert report.der <= REAL_DEV_MAX_OVERALL_DER, table


def test_quiet_meeting_with_little_speech_gets_output(embedded_engine: Any, tmp_path: Path) -> None:
    """ami_trn01: about 6 s of quiet speech from 4 people; the engine used to return nothing,
    also when told there are 4 speakers."""
    from speakerline.audio import normalize_file

    wav = tmp_path / "ami_trn01.wav"
    normalize_file(DATA_DIR / "real-dev" / "ami_trn01.flac", wav)
    assert embedded_engine.diarize(wav, DiarizationOptions()).turns
    hinted = embedded_engine.diarize(wav, DiarizationOptions(num_speakers=4))
    assert len(hinted.speakers) == min(4, len(hinted.turns)) and hinted.turns


def test_one_real_voice_is_not_split(embedded_engine: Any, voices_generator: Any, tmp_path: Path) -> None:
    """Real voices through reverb (two women in a room; a minor speaker among three) were split into extra
    speakers (3 of 2, 6 of 3) when clusters 0.65-0.75 alike stayed apart."""
    voices_generator.generate(tmp_path, only=["lv2_ff", "lv3_minor"])
    report = evaluate_dir(embedded_engine, tmp_path)
    table = format_report(report, title="real voices")
    assert [f.found_speakers for f in report.files] == [f.reference_speakers for f in report.files], table
