"""The soft powerset speaker count of the embedded engine (`embedded_pipeline.soft_speaker_count`).

No model is loaded: the segmentation output is a hand-made ``SlidingWindowFeature`` of powerset log-probabilities.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyannote.core import SlidingWindow, SlidingWindowFeature

from diarization.engines.embedded_pipeline import (
    OVERLAP_THRESHOLD,
    SPEECH_FLOOR,
    SPEECH_RELATIVE,
    SPEECH_THRESHOLD,
    soft_speaker_count,
)

# soft_speaker_count imports pyannote.audio, whose torchcodec warning starts with a newline
pytestmark = pytest.mark.filterwarnings(r"ignore:(?s)\s*torchcodec is not installed:UserWarning")

#: powerset of 3 speakers, at most 2 at once: {}, {1}, {2}, {3}, {1,2}, {1,3}, {2,3}
POWERSET_SIZES = np.array([0, 1, 1, 1, 2, 2, 2])
#: 10 s windows every second; in the simple layout each window has 10 one-second frames, so
#: local frame i of chunk c is global frame c + i
CHUNKS = SlidingWindow(start=0.0, duration=10.0, step=1.0)
FRAMES = SlidingWindow(start=0.0, duration=1.0, step=1.0)
EPS = 1e-6


def class_probs(speech: float, overlap: float = 0.0) -> np.ndarray:
    """7-class distribution with P(speech) = speech, P(2 speakers) = overlap (split on 2 classes)."""
    p = np.zeros(len(POWERSET_SIZES))
    p[0] = 1.0 - speech
    p[1] = speech - overlap
    p[4] = p[6] = overlap / 2
    p = (1 - EPS * len(p)) * p + EPS  # no exact zeros, still sums to 1
    assert p.min() > 0 and abs(p.sum() - 1) < 1e-12
    return p


def log_probs(profile, num_chunks: int = 10, frames_per_chunk: int = 10) -> SlidingWindowFeature:
    """``profile(chunk, global_frame) -> (speech, overlap)`` as powerset log-probabilities."""
    data = np.empty((num_chunks, frames_per_chunk, len(POWERSET_SIZES)), dtype=np.float32)
    for c in range(num_chunks):
        for i in range(frames_per_chunk):
            data[c, i] = np.log(class_probs(*profile(c, c + i)))
    return SlidingWindowFeature(data, CHUNKS)


def count_of(profile, num_chunks: int = 10, **kwargs) -> np.ndarray:
    count = soft_speaker_count(log_probs(profile, num_chunks), POWERSET_SIZES, FRAMES, **kwargs)
    assert count.data.shape[1] == 1
    assert count.sliding_window.step == FRAMES.step
    return count.data[:, 0]


def test_class_probs_match_the_thresholds_they_are_compared_with() -> None:
    p = class_probs(0.95, 0.6)
    assert p[POWERSET_SIZES > 0].sum() == pytest.approx(0.95, abs=1e-5)
    assert p[POWERSET_SIZES >= 2].sum() == pytest.approx(0.6, abs=1e-5)
    # frame 9 of the simple layout is seen by all 10 windows
    assert [CHUNKS[c].start <= FRAMES[9].start < CHUNKS[c].end for c in range(10)] == [True] * 10


def test_speech_only_four_of_ten_windows_detect_gets_count_one() -> None:
    """Windows 0-3 hear global frame 9 clearly (0.95), windows 4-9 hear nothing there."""
    count = count_of(lambda c, g: (0.95 if g == 9 and c < 4 else 0.0, 0.0))
    # pyannote's rule: hard per-window decisions (4 of 10 say "speech") averaged, rounded -> 0
    assert np.rint(4 / 10) == 0
    assert count[9] == 1
    assert count.sum() == 1


def _clear_speech_then_frame_14_from_window(first: int):  # type: ignore[no-untyped-def]
    """Clear speech at frames 2-4 in every window; frame 14 heard (0.95) only by windows ``first`` onwards."""

    def profile(c, g):  # type: ignore[no-untyped-def]
        if 2 <= g <= 4:
            return 0.95, 0.0
        return (0.95 if g == 14 and c >= first else 0.0), 0.0

    return profile


def test_speech_half_the_windows_detect_is_kept_next_to_clear_speech() -> None:
    """Clear speech at 2-4; frame 14 (windows 5-14) heard by 5 of its 10: 0.475 >= SPEECH_THRESHOLD."""
    frac = 5 / 10
    assert frac * 0.95 >= SPEECH_THRESHOLD
    assert np.rint(frac) == 0  # pyannote: round-half-to-even drops it

    count = count_of(_clear_speech_then_frame_14_from_window(10), num_chunks=20)
    assert list(count[2:5]) == [1, 1, 1]
    assert count[14] == 1
    assert count.sum() == 4


def test_relative_threshold_does_not_lower_the_bar_when_clear_speech_exists() -> None:
    """Same 4-of-10 evidence as above (0.38), but the recording also has clear speech."""
    assert 0.4 * 0.95 < SPEECH_THRESHOLD <= SPEECH_RELATIVE * 0.95

    count = count_of(_clear_speech_then_frame_14_from_window(11), num_chunks=20)
    assert list(count[2:5]) == [1, 1, 1]
    assert count[14] == 0


def test_silence_everywhere_gives_count_zero() -> None:
    count = count_of(lambda c, g: (0.0, 0.0))
    assert len(count) >= 19
    assert not count.any()


def test_windows_betting_on_two_speakers_give_count_two() -> None:
    def profile(c, g):
        if 5 <= g <= 12:
            return 0.95, (0.6 if 8 <= g <= 10 else 0.0)
        return 0.0, 0.0

    count = count_of(profile)
    assert list(count[:5]) == [0] * 5
    assert list(count[5:8]) == [1, 1, 1]
    assert list(count[8:11]) == [2, 2, 2]
    assert list(count[11:13]) == [1, 1]
    assert not count[13:].any()


def test_overlap_below_overlap_threshold_stays_one_speaker() -> None:
    below = OVERLAP_THRESHOLD - 0.05
    count = count_of(lambda c, g: (0.95, below) if 5 <= g <= 12 else (0.0, 0.0))
    assert list(count[5:13]) == [1] * 8
    above = OVERLAP_THRESHOLD + 0.05
    count = count_of(lambda c, g: (0.95, above) if 5 <= g <= 12 else (0.0, 0.0))
    assert list(count[5:13]) == [2] * 8


def test_quiet_recording_peak_below_speech_threshold_still_gets_speech() -> None:
    peak = SPEECH_THRESHOLD - 0.02
    assert SPEECH_FLOOR < peak < SPEECH_THRESHOLD

    def profile(c, g):
        if g == 9:
            return peak, 0.0
        if g in (8, 10):
            return peak * SPEECH_RELATIVE * 0.9, 0.0  # below the relative bar
        return 0.0, 0.0

    count = count_of(profile)
    assert count[9] >= 1
    assert count[8] == count[10] == 0
    assert count.sum() == 1


def test_recording_peak_below_speech_floor_gets_none() -> None:
    peak = SPEECH_FLOOR - 0.05
    count = count_of(lambda c, g: (peak, 0.0) if 6 <= g <= 12 else (0.0, 0.0))
    assert not count.any()


def test_realistic_frame_resolution() -> None:
    """segmentation-3.0-like frames: 589 per 10 s window, 16.9 ms step, 61.9 ms receptive field."""
    frames = SlidingWindow(start=0.0, duration=0.0619, step=0.0169)
    num_chunks, per_chunk = 12, 589
    t = np.arange(num_chunks)[:, None] * CHUNKS.step + np.arange(per_chunk)[None, :] * frames.step
    t = t + frames.duration / 2
    speech = np.where((t >= 4.0) & (t < 6.0), 0.95, 0.0)
    overlap = np.where((t >= 5.0) & (t < 5.5), 0.6, 0.0)
    data = np.empty((num_chunks, per_chunk, len(POWERSET_SIZES)), dtype=np.float32)
    for c in range(num_chunks):
        for i in range(per_chunk):
            data[c, i] = np.log(class_probs(speech[c, i], overlap[c, i]))
    count = soft_speaker_count(SlidingWindowFeature(data, CHUNKS), POWERSET_SIZES, frames)

    def at(seconds: float) -> int:
        return int(count.data[count.sliding_window.closest_frame(seconds), 0])

    assert [at(s) for s in (1.0, 3.8, 4.3, 4.8, 5.25, 5.8, 6.3, 15.0)] == [0, 0, 1, 1, 2, 1, 0, 0]
