"""The voices of the real-voices set: each LibriSpeech utterance's voiced frames (10 ms), the pieces it is cut into
at its pauses, and the utterances loaded and levelled (`load_voices`). See `speakerline_tools.datasets.voices_set`."""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from speakerline_tools import repo

SR = 16_000
HOP = 160  # 10 ms frames
FRAME_S = HOP / SR
VOICES_DIR = repo.root() / "tests" / "data" / "voices"
PEAK_RANGE_DB = 38.0  # voiced: frame energy within this many dB of the utterance's loudest frame ...
ABS_FLOOR_DBFS = -60.0  # ... and above this absolute level ...
NOISE_MARGIN_DB = 8.0  # ... and this far above the utterance's background (10th-percentile frame)
BRIDGE_S = 0.25  # pauses shorter than this are bridged in the reference
MIN_REGION_S = 0.06  # isolated voiced blips shorter than this (clicks, breaths) are not speech
CUT_PAUSE_S = 0.10  # utterances are cut into pieces in the middle of pauses at least this long
EDGE_PAD_S = 0.10  # room tone kept before the first and after the last voiced frame of an utterance
SPEECH_LEVEL_DBFS = -26.0  # every voice is first levelled to this active speech level


@dataclass(frozen=True)
class Piece:
    """A stretch of one utterance between two cut points (frame indices, end exclusive)."""

    index: int
    start: int
    end: int
    speech_s: float  # reference speech inside the piece
    extent_s: float  # first voiced frame to last voiced frame


@dataclass(frozen=True)
class Voice:
    speaker: str  # LibriSpeech reader id
    sex: str  # "F" or "M"
    file: str
    audio: np.ndarray  # float64, levelled to SPEECH_LEVEL_DBFS active level
    voiced: np.ndarray  # bool per 10 ms frame (after bridging/blip removal)
    pieces: tuple[Piece, ...]

    @property
    def speech_s(self) -> float:
        return sum(p.speech_s for p in self.pieces)


def frame_db(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // HOP
    frames = audio[: n * HOP].reshape(n, HOP)
    db: np.ndarray = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    return db


def runs(mask: np.ndarray, bridge: int = 0) -> list[tuple[int, int]]:
    """[start, end) runs of True frames; gaps shorter than ``bridge`` frames are bridged."""
    on = np.flatnonzero(mask)
    if on.size == 0:
        return []
    out: list[tuple[int, int]] = []
    start = prev = int(on[0])
    for i in on[1:]:
        i = int(i)
        if i - prev - 1 >= max(bridge, 1):
            out.append((start, prev + 1))
            start = i
        prev = i
    out.append((start, prev + 1))
    return out


def voiced_mask(audio: np.ndarray) -> np.ndarray:
    db = frame_db(audio)
    threshold = max(float(db.max()) - PEAK_RANGE_DB, float(np.percentile(db, 10)) + NOISE_MARGIN_DB, ABS_FLOOR_DBFS)
    mask: np.ndarray = db > threshold
    for a, b in runs(mask, round(BRIDGE_S / FRAME_S)):
        if b - a < round(MIN_REGION_S / FRAME_S):
            mask[a:b] = False
    return mask


def regions(mask: np.ndarray) -> list[tuple[int, int]]:
    """Reference regions (frames) of a stretch of a voiced mask: pauses < BRIDGE_S bridged."""
    return runs(mask, round(BRIDGE_S / FRAME_S))


def cut_pieces(mask: np.ndarray) -> tuple[Piece, ...]:
    on = np.flatnonzero(mask)
    pad = round(EDGE_PAD_S / FRAME_S)
    cut = round(CUT_PAUSE_S / FRAME_S)
    bounds = [max(0, int(on[0]) - pad)]
    for a, b in itertools.pairwise(on):
        if b - a - 1 >= cut:
            bounds.append(int(a + 1 + b) // 2)
    bounds.append(min(len(mask), int(on[-1]) + 1 + pad))
    pieces = []
    for index, (start, end) in enumerate(itertools.pairwise(bounds)):
        piece_mask = mask[start:end]
        voiced = np.flatnonzero(piece_mask)
        speech = sum(b - a for a, b in regions(piece_mask)) * FRAME_S
        extent = (int(voiced[-1]) - int(voiced[0]) + 1) * FRAME_S
        pieces.append(Piece(index, start, end, round(speech, 2), round(extent, 2)))
    return tuple(pieces)


def load_voices(source: Path = VOICES_DIR) -> dict[str, Voice]:
    """The committed voices (``speakers.tsv`` + FLACs), analysed; keyed by reader id."""
    voices: dict[str, Voice] = {}
    with (source / "speakers.tsv").open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            audio, sr = sf.read(source / row["file"], dtype="float64")
            if sr != SR or audio.ndim != 1:
                raise ValueError(f"{row['file']}: expected 16 kHz mono")
            mask = voiced_mask(audio)
            active = np.repeat(mask, HOP)
            level = np.sqrt(np.mean(audio[: len(active)][active] ** 2))
            audio = audio * 10 ** (SPEECH_LEVEL_DBFS / 20) / level
            voices[row["speaker"]] = Voice(row["speaker"], row["sex"], row["file"], audio, mask, cut_pieces(mask))
    return dict(sorted(voices.items(), key=lambda kv: int(kv[0])))
