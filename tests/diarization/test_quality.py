"""Diarization quality of the embedded engine on the committed evaluation set.

DER is pyannote.metrics' ``DiarizationErrorRate(collar=0.0, skip_overlap=False)``: no forgiveness
collar and overlapped speech scored, the strictest common setting. Each 2-4 speaker file must
stay at or below 20 % DER and the speaker count must be right when none is given. Numbers are
recorded in services/diarization/EVAL.md (regenerate the table with ``-s`` to see it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from speakerline_diarization.engines.base import DiarizationOptions

MAX_DER = 0.20
MAX_OVERALL_DER = 0.10


def _der(reference_rttm: Path, uri: str, turns: tuple[Any, ...]) -> dict[str, float]:
    from pyannote.core import Annotation, Segment
    from pyannote.database.util import load_rttm
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference = load_rttm(str(reference_rttm))[uri]  # type: ignore[no-untyped-call]
    hypothesis = Annotation(uri=uri)
    for turn in turns:
        hypothesis[Segment(turn.start, turn.end)] = turn.speaker
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    detail: dict[str, float] = metric(reference, hypothesis, detailed=True)
    return detail


def test_embedded_engine_der_on_eval_set(
    embedded_engine: Any, eval_manifest: list[dict[str, Any]], eval_dir: Path, as_wav: Any
) -> None:
    rows = []
    totals = {"error": 0.0, "total": 0.0, "inference_s": 0.0, "audio_s": 0.0}
    for entry in eval_manifest:
        wav = as_wav(eval_dir / entry["audio"])
        result = embedded_engine.diarize(wav, DiarizationOptions())
        detail = _der(eval_dir / entry["rttm"], entry["uri"], result.turns)
        total = detail["total"]
        error = detail["missed detection"] + detail["false alarm"] + detail["confusion"]
        totals["error"] += error
        totals["total"] += total
        totals["inference_s"] += result.timings["inference_s"]
        totals["audio_s"] += result.timings["audio_s"]
        rows.append(
            {
                "uri": entry["uri"],
                "der": error / total,
                "miss": detail["missed detection"] / total,
                "fa": detail["false alarm"] / total,
                "conf": detail["confusion"] / total,
                "expected": entry["num_speakers"],
                "found": len(result.speakers),
                "rtf": result.timings["rtf"],
            }
        )

    lines = [
        f"{'file':22s} {'DER':>6s} {'miss':>6s} {'FA':>6s} {'conf':>6s} {'spk':>5s} {'RTF':>6s}",
    ]
    for r in rows:
        lines.append(
            f"{r['uri']:22s} {r['der']:6.1%} {r['miss']:6.1%} {r['fa']:6.1%} {r['conf']:6.1%} "
            f"{r['found']}/{r['expected']:<3d} {r['rtf']:6.3f}"
        )
    overall = totals["error"] / totals["total"]
    lines.append(
        f"{'overall':22s} {overall:6.1%} {'':6s} {'':6s} {'':6s} {'':5s} "
        f"{totals['inference_s'] / totals['audio_s']:6.3f}"
    )
    print("\n" + "\n".join(lines), file=sys.stderr)

    bad_der = [r["uri"] for r in rows if r["der"] > MAX_DER]
    bad_count = [f"{r['uri']} ({r['found']}/{r['expected']})" for r in rows if r["found"] != r["expected"]]
    assert not bad_der, f"DER above {MAX_DER:.0%}: {bad_der}\n" + "\n".join(lines)
    assert not bad_count, f"wrong speaker count: {bad_count}\n" + "\n".join(lines)
    assert overall <= MAX_OVERALL_DER, "\n".join(lines)


@pytest.mark.parametrize("num_speakers", [2, 3])
def test_given_speaker_count_is_respected(
    embedded_engine: Any, sample_dir: Path, as_wav: Any, num_speakers: int
) -> None:
    wav = as_wav(sample_dir / "conversation.flac")
    result = embedded_engine.diarize(wav, DiarizationOptions(num_speakers=num_speakers))
    assert len(result.speakers) == num_speakers
