"""Long recordings in pieces: the plan, the linking of piece-local speakers, the joined turns, and the
engine end to end on a recording with recurring voices."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from diarization.engines.base import DiarizationOptions, Progress
from diarization.engines.embedded import EmbeddedEngine
from diarization.engines.pieces import link_speakers, plan_pieces


def test_short_recordings_are_one_piece_long_ones_equal_pieces() -> None:
    assert plan_pieces(0, 16000, 120.0) == []
    assert plan_pieces(16000 * 179, 16000, 120.0) == [(0, 16000 * 179)]
    pieces = plan_pieces(16000 * 600, 16000, 120.0)
    assert len(pieces) == 5 and pieces[0][0] == 0 and pieces[-1][1] == 16000 * 600
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))  # contiguous, no gap
    assert {b - a for a, b in pieces} == {16000 * 120}
    odd = plan_pieces(16000 * 610 + 7, 16000, 120.0)
    assert max(b - a for a, b in odd) - min(b - a for a, b in odd) <= 1  # no sliver at the end


def test_the_same_voice_in_every_piece_gets_one_label() -> None:
    voices = [np.eye(16)[k] * 3 for k in range(3)]  # three clearly different voices
    rng = np.random.default_rng(9)
    pieces = [
        {"SPEAKER_00": voices[1] + 0.1 * rng.normal(size=16), "SPEAKER_01": voices[0] + 0.1 * rng.normal(size=16)},
        {"SPEAKER_00": voices[2] + 0.1 * rng.normal(size=16)},
        {"SPEAKER_00": voices[0] + 0.1 * rng.normal(size=16), "SPEAKER_01": voices[2] + 0.1 * rng.normal(size=16)},
    ]
    first, second, third = link_speakers(pieces)
    assert first == {"SPEAKER_00": "SPEAKER_00", "SPEAKER_01": "SPEAKER_01"}
    assert second == {"SPEAKER_00": "SPEAKER_02"}
    assert third == {"SPEAKER_00": "SPEAKER_01", "SPEAKER_01": "SPEAKER_02"}


def test_linking_honours_the_speaker_count_and_keeps_unusable_centroids_apart() -> None:
    rng = np.random.default_rng(1)
    pieces = [{f"S{k}": rng.normal(size=8) for k in range(3)}, {"S0": rng.normal(size=8), "X": np.full(8, np.nan)}]
    merged = link_speakers(pieces, num_speakers=2)
    usable = {merged[0][k] for k in ("S0", "S1", "S2")} | {merged[1]["S0"]}
    assert len(usable) == 2  # four distinct voices cut down to the requested two
    assert merged[1]["X"] not in usable  # no embedding: not merged into anybody
    assert len({*usable, merged[1]["X"]}) == 3
    assert len(set(link_speakers(pieces, max_speakers=1)[0].values())) == 1
    assert link_speakers([]) == [] and link_speakers([{}]) == [{}]


@pytest.mark.engine
def test_recurring_voices_keep_their_labels_across_pieces(
    embedded_engine: Any, sample_dir: Path, tmp_path: Path
) -> None:
    """Four repetitions of the 3-speaker sample (2 minutes) in pieces of 30 s: still 3 speakers, each repetition
    diarized like the first (the same voice has the same label throughout), and progress runs 0 -> 1 once."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    from speakerline.timeline import parse_rttm

    audio, rate = sf.read(str(sample_dir / "conversation.flac"), dtype="int16")
    reference_turns = next(iter(parse_rttm((sample_dir / "conversation.rttm").read_text()).values()))
    repeats, period = 4, len(audio) / rate
    wav = tmp_path / "recurring.wav"
    sf.write(str(wav), np.concatenate([audio] * repeats), rate, subtype="PCM_16")
    engine = EmbeddedEngine(embedded_engine._pipeline, device="cpu", piece_s=30.0)
    seen: list[Progress] = []

    result = engine.diarize(wav, DiarizationOptions(), progress=seen.append)

    assert len(result.speakers) == 3
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and 0.9 < fractions[-1] <= 1.0
    reference, hypothesis = Annotation(), Annotation()
    for k in range(repeats):
        for turn in reference_turns:
            reference[Segment(turn.start + k * period, turn.end + k * period)] = turn.speaker
    for turn in result.turns:
        hypothesis[Segment(turn.start, turn.end)] = turn.speaker
    der = DiarizationErrorRate(collar=0.0, skip_overlap=False)(reference, hypothesis)
    assert der <= 0.15, f"DER {der:.1%}: labels not consistent across pieces"
    pieces = plan_pieces(len(audio) * repeats, rate, 30.0)
    assert len(pieces) == 4
