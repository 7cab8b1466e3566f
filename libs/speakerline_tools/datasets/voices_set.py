#!/usr/bin/env python3
"""Generate the real-voices diarization evaluation set: LibriSpeech voices placed in simulated conversations.

What it makes (in ``--out``, default ``.stack/eval-voices``; generated on demand, never committed)
--------------------------------------------------------------------------------------------------
* ``<id>.flac``      16 kHz mono PCM16 conversations of 2 to 8 real speakers, 35-120 s
* ``<id>.rttm``      exact reference turns, derived from the placement of the clean audio
* ``manifest.json``  the files, speaker counts, voices, durations and conditions (same layout as
  ``tests/data/eval/manifest.json``)

Source: the 36 LibriSpeech utterances committed in ``tests/data/voices`` (one per speaker; see its README).

How
---
1. Each utterance gets a voiced-frame mask on 10 ms frames: frame energy within 38 dB of the utterance's
   loudest frame, above -60 dBFS and 8 dB above its background (10th-percentile frame); pauses shorter than
   0.25 s are bridged and isolated blips shorter than 60 ms (clicks, breaths) dropped.
2. The utterance is cut into *pieces* in the middle of every pause of 0.1 s or more.
3. A seeded plan places turns: a turn is a run of consecutive pieces of one speaker's utterance, followed by
   a gap (mostly 0.1-1 s, sometimes a silence of several seconds) or an interruption (the next speaker starts
   0.2-1 s before the end); long turns sometimes carry a backchannel (another speaker's piece of at most 1 s).
   No piece is used twice in a conversation. Speaker balance is set per file (balanced, one dominant speaker,
   a minor speaker with only a few seconds).
4. The reference is the voiced regions of every placed clean piece (pauses < 0.25 s bridged, the convention
   of ``speakerline_tools.datasets.eval_set``); overlaps appear in it wherever two speakers' regions overlap.
5. The audio: each voice levelled to the same active speech level, then per-speaker gains (3-10 dB spread),
   optional per-speaker reverb (exponentially decaying noise impulse response), additive noise at a per-file
   SNR (pink, brown, or babble of voices not in the conversation), optional telephone channel (300-3400 Hz
   band-pass; optionally 8 kHz with G.711 mu-law), and a final overall level (-24 dBFS, or -35 to -45 dBFS
   for far-field-like quiet files).

Determinism
-----------
All randomness comes from ``numpy.random.default_rng`` with a fixed seed per conversation (the plan and the
effects use separate streams), so re-running gives bit-identical files with the same numpy / scipy /
libsndfile versions. ``--only`` regenerates a subset with exactly the same bytes.

Usage
-----
    python -m speakerline_tools.datasets.voices_set          # writes .stack/eval-voices
    python -m speakerline_tools.datasets.voices_set --out DIR --only lv2_a,lv8_tel

Needs numpy, scipy and soundfile only (no external tools).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy import fft as sp_fft
from scipy import signal

from speakerline_tools import repo

SR = 16_000
HOP = 160  # 10 ms frames
FRAME_S = HOP / SR
VOICES_DIR = repo.root() / "tests" / "data" / "voices"
DEFAULT_OUT = repo.root() / ".stack" / "eval-voices"

PEAK_RANGE_DB = 38.0  # voiced: frame energy within this many dB of the utterance's loudest frame ...
ABS_FLOOR_DBFS = -60.0  # ... and above this absolute level ...
NOISE_MARGIN_DB = 8.0  # ... and this far above the utterance's background (10th-percentile frame)
BRIDGE_S = 0.25  # pauses shorter than this are bridged in the reference
MIN_REGION_S = 0.06  # isolated voiced blips shorter than this (clicks, breaths) are not speech
CUT_PAUSE_S = 0.10  # utterances are cut into pieces in the middle of pauses at least this long
EDGE_PAD_S = 0.10  # room tone kept before the first and after the last voiced frame of an utterance
SPEECH_LEVEL_DBFS = -26.0  # every voice is first levelled to this active speech level
BACKCHANNEL_S = (0.2, 1.0)  # voiced extent of a piece usable as a backchannel
MIN_SPEAKER_S = 3.0  # every speaker has at least this much reference speech
ROOM_TONE_SNR_DB = 45.0  # pink room tone under every file, below the active speech level
LABELS = "ABCDEFGH"


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


@dataclass(frozen=True)
class Conversation:
    uri: str
    seed: int
    n_speakers: int
    sexes: str = "mixed"  # "mixed", "F" or "M"
    balance: str = "balanced"  # "balanced", "dominant", "minor" (one speaker with ~3-4.5 s), "dominant+minor"
    use: float = 1.0  # fraction of each (non-minor, non-dominated) voice's speech to use
    overlap_prob: float = 0.25  # a turn change is an interruption (0.2-1 s overlap)
    backchannel_prob: float = 0.4  # a turn of >= 2.5 s carries another speaker's short piece
    long_gap_prob: float = 0.06  # a gap is a silence of 2-6 s instead of 0.1-1 s
    level_spread_db: float = 6.0  # loudest minus quietest speaker
    rms_dbfs: float = -26.0  # overall file level (lower if the peak would go above -0.2 dBFS)
    noise: str | None = None  # "pink", "brown" or "babble"
    snr_db: float | None = None
    telephone: str | None = None  # "band" (300-3400 Hz) or "8k" (band + 8 kHz + mu-law)
    reverb_rt60_s: float | None = None
    notes: str = ""


@dataclass(frozen=True)
class Placement:
    """One slice of a voice's utterance placed in the mix."""

    speaker: str  # label in the conversation (A, B, ...)
    voice: str  # LibriSpeech reader id
    pieces: tuple[int, ...]  # consecutive piece indices of that voice
    offset: int  # sample of the mix where the slice starts
    start_frame: int  # slice of the utterance, in frames
    end_frame: int
    kind: str  # "turn" or "backchannel"


@dataclass(frozen=True)
class Plan:
    conversation: Conversation
    speakers: dict[str, str]  # label -> reader id
    gains_db: dict[str, float]
    placements: tuple[Placement, ...]
    n_samples: int


# fmt: off
CONVERSATIONS: tuple[Conversation, ...] = (
    # 2 speakers
    Conversation("lv2_a", 201, 2, level_spread_db=4, notes="calm dialogue"),
    Conversation("lv2_minor", 202, 2, balance="minor", level_spread_db=8, noise="pink", snr_db=20,
                 notes="one speaker does nearly all the talking"),
    Conversation("lv2_ff", 203, 2, sexes="F", level_spread_db=5, noise="pink", snr_db=25, reverb_rt60_s=0.4,
                 notes="two women, small room"),
    Conversation("lv2_quiet", 204, 2, sexes="M", rms_dbfs=-42, noise="brown", snr_db=18,
                 notes="two men, far-field level"),
    Conversation("lv2_tel", 205, 2, level_spread_db=3, noise="pink", snr_db=22, telephone="8k",
                 notes="phone call"),
    # 3 speakers
    Conversation("lv3_a", 301, 3, level_spread_db=6, notes="clean three-way talk"),
    Conversation("lv3_quiet", 302, 3, rms_dbfs=-40, noise="pink", snr_db=20, reverb_rt60_s=0.3,
                 notes="meeting room, distant microphone"),
    Conversation("lv3_mmm", 303, 3, sexes="M", level_spread_db=5, noise="babble", snr_db=18,
                 notes="three men, background chatter"),
    Conversation("lv3_minor", 304, 3, balance="minor", noise="pink", snr_db=25, reverb_rt60_s=0.5,
                 notes="one speaker says only a few seconds"),
    Conversation("lv3_tel", 305, 3, sexes="F", level_spread_db=6, noise="brown", snr_db=20, telephone="band",
                 notes="three women on a conference line"),
    # 4 speakers
    Conversation("lv4_a", 401, 4, level_spread_db=8, notes="clean meeting, uneven levels"),
    Conversation("lv4_ffff", 402, 4, sexes="F", level_spread_db=4, noise="pink", snr_db=22,
                 notes="four women"),
    Conversation("lv4_quiet", 403, 4, rms_dbfs=-38, noise="brown", snr_db=15, reverb_rt60_s=0.5,
                 notes="far-field meeting room"),
    Conversation("lv4_overlap", 404, 4, overlap_prob=0.5, backchannel_prob=0.8, noise="babble", snr_db=20,
                 notes="lively discussion: many interruptions and backchannels"),
    Conversation("lv4_tel", 405, 4, balance="dominant+minor", noise="pink", snr_db=20, telephone="8k",
                 notes="conference call led by one speaker"),
    # 5 speakers
    Conversation("lv5_a", 501, 5, level_spread_db=6, noise="pink", snr_db=25, use=0.9, notes="team meeting"),
    Conversation("lv5_quiet", 502, 5, rms_dbfs=-44, noise="pink", snr_db=25, reverb_rt60_s=0.4, use=0.9,
                 notes="very quiet far-field recording"),
    Conversation("lv5_mmmmm", 503, 5, sexes="M", balance="dominant", noise="babble", snr_db=20,
                 notes="five men, one chairing"),
    # 6 speakers
    Conversation("lv6_a", 601, 6, level_spread_db=10, use=0.8, notes="clean, 10 dB level spread"),
    Conversation("lv6_noisy", 602, 6, noise="pink", snr_db=12, use=0.8, notes="noisy room"),
    Conversation("lv6_tel", 603, 6, balance="minor", rms_dbfs=-36, telephone="band", noise="pink", snr_db=25,
                 use=0.8, notes="quiet conference line"),
    # 8 speakers
    Conversation("lv8_a", 801, 8, noise="pink", snr_db=25, use=0.7, notes="large meeting"),
    Conversation("lv8_quiet", 802, 8, rms_dbfs=-40, noise="brown", snr_db=20, reverb_rt60_s=0.35, use=0.7,
                 notes="large far-field meeting"),
    Conversation("lv8_tel", 803, 8, balance="dominant+minor", noise="pink", snr_db=20, telephone="8k", use=0.7,
                 notes="large conference call led by one speaker"),
)
# fmt: on


# ---------------------------------------------------------------------------------------------- analysis


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


# ---------------------------------------------------------------------------------------------- planning


def assign_voices(voices: dict[str, Voice]) -> dict[str, list[str]]:
    """Reader ids of every conversation, spread evenly over the voices (least used first, seeded ties).

    Computed over the whole list every time, so ``--only`` gives the same files as a full run.
    """
    rng = np.random.default_rng(20_240_601)
    uses = dict.fromkeys(voices, 0)
    out: dict[str, list[str]] = {}
    for conv in CONVERSATIONS:
        if conv.sexes in ("F", "M"):
            counts = {conv.sexes: conv.n_speakers}
        else:
            half = conv.n_speakers / 2
            n_female = min(conv.n_speakers - 1, max(1, round(half + rng.uniform(-half / 2, half / 2))))
            counts = {"F": n_female, "M": conv.n_speakers - n_female}
        chosen: list[str] = []
        for sex, count in counts.items():
            pool = [v for v in voices if voices[v].sex == sex]
            tiebreak = rng.permutation(len(pool))
            ranked = sorted(range(len(pool)), key=lambda i: (uses[pool[i]], tiebreak[i]))
            chosen += [pool[i] for i in ranked[:count]]
        for v in chosen:
            uses[v] += 1
        out[conv.uri] = [chosen[i] for i in rng.permutation(len(chosen))]
    return out


def _budgets(
    conv: Conversation, labels: list[str], speech: dict[str, float], rng: np.random.Generator
) -> dict[str, Any]:
    budget = {s: speech[s] * conv.use * float(rng.uniform(0.9, 1.0)) for s in labels}
    dominant = minor = None
    if "dominant" in conv.balance:
        dominant = labels[0]
        budget[dominant] = speech[dominant]
        for s in labels[1:]:
            budget[s] = speech[s] * float(rng.uniform(0.45, 0.65))
    if "minor" in conv.balance:
        minor = labels[-1]
        budget[minor] = float(rng.uniform(3.2, 4.5))
    return {"budget": budget, "dominant": dominant, "minor": minor}


def plan_conversation(conv: Conversation, voices: dict[str, Voice]) -> Plan:
    """Where every piece goes: the whole timeline of a conversation, before any audio is made."""
    rng = np.random.default_rng(conv.seed)
    chosen = assign_voices(voices)[conv.uri]
    labels = list(LABELS[: conv.n_speakers])
    who = dict(zip(labels, chosen, strict=True))
    spread = rng.uniform(-1, 1, size=len(labels))
    spread = (spread - spread.min()) / max(1e-9, np.ptp(spread)) * conv.level_spread_db
    gains = {s: round(float(g - spread.mean()), 2) for s, g in zip(labels, spread, strict=True)}
    roles = _budgets(conv, labels, {s: voices[who[s]].speech_s for s in labels}, rng)
    budget: dict[str, float] = roles["budget"]
    dominant = roles["dominant"]

    used: dict[str, set[int]] = {s: set() for s in labels}
    spent = dict.fromkeys(labels, 0.0)
    last_end = dict.fromkeys(labels, -1.0)  # end of each speaker's latest speech (seconds)
    placements: list[Placement] = []

    def next_free(s: str) -> int | None:
        return next((p.index for p in voices[who[s]].pieces if p.index not in used[s]), None)

    def place(s: str, take: list[int], speech_start: float, kind: str) -> tuple[float, float]:
        v = voices[who[s]]
        start_f, end_f = v.pieces[take[0]].start, v.pieces[take[-1]].end
        regs = regions(v.voiced[start_f:end_f])
        offset = max(0, round((speech_start - regs[0][0] * FRAME_S) * SR))
        placements.append(Placement(s, who[s], tuple(take), offset, start_f, end_f, kind))
        used[s].update(take)
        spent[s] += sum(v.pieces[i].speech_s for i in take)
        t0, t1 = offset / SR + regs[0][0] * FRAME_S, offset / SR + regs[-1][1] * FRAME_S
        last_end[s] = max(last_end[s], t1)
        return t0, t1

    t_end = float(rng.uniform(0.3, 1.2))  # leading silence, then: end of all speech so far
    prev: str | None = None
    prev_turn = (0.0, 0.0)
    spoken: set[str] = set()
    while True:
        active = [s for s in labels if spent[s] < budget[s] - 0.05 and next_free(s) is not None]
        if not active:
            break
        candidates = [s for s in active if s != prev] or active
        newcomers = [s for s in candidates if s not in spoken]
        if newcomers and len(spoken) < len(labels):
            candidates = newcomers
        weights = np.array([budget[s] - spent[s] for s in candidates])
        spk = candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]
        spoken.add(spk)
        target = float(rng.uniform(3.0, 8.0) if spk == dominant else rng.uniform(0.8, 4.5))
        pieces = voices[who[spk]].pieces
        first = next_free(spk)
        assert first is not None
        if spk == roles["minor"]:  # the piece that best fills what is left of a minor speaker's few seconds
            need = budget[spk] - spent[spk]
            free = [p for p in pieces if p.index not in used[spk] and p.speech_s >= 0.3]
            first = min(free, key=lambda p: (abs(p.speech_s - need), p.index)).index if free else first
        take = [first]
        got = pieces[first].speech_s
        while (
            got < target
            and take[-1] + 1 < len(pieces)
            and take[-1] + 1 not in used[spk]
            and spent[spk] + got + pieces[take[-1] + 1].speech_s <= budget[spk] + 0.3
        ):
            take.append(take[-1] + 1)
            got += pieces[take[-1]].speech_s

        if prev is not None and spk != prev and rng.random() < conv.overlap_prob:
            overlap = min(float(rng.uniform(0.2, 1.0)), 0.5 * (prev_turn[1] - prev_turn[0]))
            start = t_end - overlap
        elif prev is not None and rng.random() < conv.long_gap_prob:
            start = t_end + float(rng.uniform(2.0, 6.0))
        else:
            start = t_end + float(rng.uniform(0.1, 1.0))
        start = max(start, last_end[spk] + BRIDGE_S)
        turn = place(spk, take, start, "turn")
        t_end = max(t_end, turn[1])

        if turn[1] - turn[0] >= 2.5 and rng.random() < conv.backchannel_prob:
            options = [
                (s, p.index)
                for s in labels
                if s != spk and last_end[s] + BRIDGE_S < turn[1] - 1.0
                for p in voices[who[s]].pieces
                if p.index not in used[s]
                and BACKCHANNEL_S[0] <= p.extent_s <= BACKCHANNEL_S[1]
                and spent[s] + p.speech_s <= budget[s] + 0.3
            ]
            if options:
                s, index = options[int(rng.integers(len(options)))]
                extent = voices[who[s]].pieces[index].extent_s
                lo = max(turn[0] + 0.25 * (turn[1] - turn[0]), last_end[s] + BRIDGE_S)
                hi = turn[1] - extent - 0.2
                if hi > lo:
                    back = place(s, [index], float(rng.uniform(lo, hi)), "backchannel")
                    t_end = max(t_end, back[1])
        prev, prev_turn = spk, turn

    tail = round((t_end + float(rng.uniform(0.5, 1.5))) * SR)
    n_samples = max(tail, *(p.offset + (p.end_frame - p.start_frame) * HOP for p in placements))
    return Plan(conv, who, gains, tuple(placements), n_samples)


# ---------------------------------------------------------------------------------------------- rendering


def reference(plan: Plan, voices: dict[str, Voice]) -> list[tuple[float, float, str]]:
    """Reference turns (start, end, label): voiced regions of each placed clean slice, merged per speaker."""
    per_speaker: dict[str, list[tuple[float, float]]] = {s: [] for s in plan.speakers}
    for p in plan.placements:
        mask = voices[p.voice].voiced[p.start_frame : p.end_frame]
        base = p.offset / SR
        per_speaker[p.speaker] += [(base + a * FRAME_S, base + b * FRAME_S) for a, b in regions(mask)]
    turns: list[tuple[float, float, str]] = []
    for s, segs in per_speaker.items():
        merged: list[list[float]] = []
        for a, b in sorted(segs):
            if merged and a - merged[-1][1] < BRIDGE_S:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        turns += [(a, min(b, plan.n_samples / SR), s) for a, b in merged]
    return sorted(turns)


def colored_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power ~ 1/f**exponent (1: pink, 2: brown), unit RMS."""
    m = sp_fft.next_fast_len(n, real=True)  # an arbitrary n can have large prime factors: slow FFT
    spectrum = np.fft.rfft(rng.standard_normal(m))
    freqs = np.fft.rfftfreq(m, 1 / SR)
    spectrum[1:] /= np.maximum(freqs[1:], 20.0) ** (exponent / 2)
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, m)[:n]
    return np.asarray(noise / np.sqrt(np.mean(noise**2)))


def babble(n: int, rng: np.random.Generator, voices: Iterable[Voice]) -> np.ndarray:
    """Several other voices talking at once (each looped from a random point), unit RMS."""
    out = np.zeros(n)
    for v in voices:
        start, end = v.pieces[0].start * HOP, v.pieces[-1].end * HOP
        out += np.roll(np.resize(v.audio[start:end], n), int(rng.integers(n)))
    return np.asarray(out / np.sqrt(np.mean(out**2)))


def room_response(rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """A seeded room impulse response: direct path plus an exponentially decaying noise tail."""
    n = round(rt60_s * 1.2 * SR)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60_s)  # -60 dB at rt60
    tail = signal.sosfilt(signal.butter(2, 4000, btype="low", fs=SR, output="sos"), tail)  # walls absorb highs
    tail[: round(0.004 * SR)] = 0.0  # first reflection after ~4 ms
    drr_db = float(rng.uniform(0.0, 6.0))  # direct-to-reverberant ratio
    ir = tail * np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    ir[0] = 1.0
    return np.asarray(ir)


def telephone(audio: np.ndarray, mode: str) -> np.ndarray:
    band = signal.butter(4, [300, 3400], btype="band", fs=SR, output="sos")
    out = signal.sosfilt(band, audio)
    if mode == "8k":
        narrow = signal.resample_poly(out, 1, 2)
        scale = 1.0 / max(1e-9, np.max(np.abs(narrow)))
        mu = 255.0
        companded = np.sign(narrow * scale) * np.log1p(mu * np.abs(narrow * scale)) / np.log1p(mu)
        companded = np.round(companded * 127) / 127  # 8-bit G.711-like mu-law
        narrow = np.sign(companded) * np.expm1(np.abs(companded) * np.log1p(mu)) / mu / scale
        out = signal.resample_poly(narrow, 2, 1)[: len(audio)]
    return np.asarray(out)


def render(plan: Plan, voices: dict[str, Voice]) -> np.ndarray:
    conv = plan.conversation
    rng = np.random.default_rng([conv.seed, 1])  # effects: a stream of their own, independent of the plan
    n = plan.n_samples
    tracks = {s: np.zeros(n) for s in plan.speakers}
    for p in plan.placements:
        piece = voices[p.voice].audio[p.start_frame * HOP : p.end_frame * HOP]
        end = min(n, p.offset + len(piece))
        tracks[p.speaker][p.offset : end] += piece[: end - p.offset] * 10 ** (plan.gains_db[p.speaker] / 20)
    if conv.reverb_rt60_s:
        for s in tracks:
            tracks[s] = signal.fftconvolve(tracks[s], room_response(rng, conv.reverb_rt60_s))[:n]
    mix = np.sum(list(tracks.values()), axis=0)
    speech = np.zeros(n, dtype=bool)
    for a, b, _ in reference(plan, voices):
        speech[round(a * SR) : round(b * SR)] = True
    speech_rms = np.sqrt(np.mean(mix[speech] ** 2))
    # room tone everywhere (no file has digital silence between turns), then the file's own noise
    mix = mix + colored_noise(n, rng, 1.0) * speech_rms * 10 ** (-ROOM_TONE_SNR_DB / 20)
    if conv.noise and conv.snr_db is not None:
        if conv.noise == "babble":
            others = [v for k, v in voices.items() if k not in plan.speakers.values()]
            pick = rng.choice(len(others), size=6, replace=False)
            noise = babble(n, rng, [others[i] for i in sorted(pick)])
        else:
            noise = colored_noise(n, rng, {"pink": 1.0, "brown": 2.0}[conv.noise])
        mix = mix + noise * speech_rms * 10 ** (-conv.snr_db / 20)
    if conv.telephone:
        mix = telephone(mix, conv.telephone)
    gain = 10 ** (conv.rms_dbfs / 20) / np.sqrt(np.mean(mix**2))
    gain = min(gain, 0.98 / np.max(np.abs(mix)))  # never clip
    return np.asarray(mix * gain)


# ---------------------------------------------------------------------------------------------- output


def write_rttm(path: Path, uri: str, turns: Sequence[tuple[float, float, str]]) -> None:
    with path.open("w") as f:
        for start, end, spk in turns:
            f.write(f"SPEAKER {uri} 1 {start:.3f} {end - start:.3f} <NA> <NA> {spk} <NA> <NA>\n")


def describe(plan: Plan, voices: dict[str, Voice], audio: np.ndarray) -> str:
    conv = plan.conversation
    sexes = [voices[v].sex for v in plan.speakers.values()]
    parts = [f"{conv.n_speakers} speakers ({sexes.count('F')}F {sexes.count('M')}M)"]
    parts.append(conv.balance.replace("+", " + "))
    parts.append(f"interruptions {conv.overlap_prob:.0%}, backchannels {conv.backchannel_prob:.0%}")
    parts.append(f"level spread {conv.level_spread_db:g} dB")
    parts.append(f"{20 * np.log10(np.sqrt(np.mean(audio**2))):.0f} dBFS")
    parts.append(f"{conv.noise} noise {conv.snr_db:g} dB SNR" if conv.noise else "room tone only")
    if conv.reverb_rt60_s:
        parts.append(f"reverb RT60 {conv.reverb_rt60_s:g} s")
    if conv.telephone:
        parts.append("telephone 8 kHz mu-law" if conv.telephone == "8k" else "telephone band 300-3400 Hz")
    return f"{conv.notes}: " + ", ".join(parts)


def generate(out: Path, only: Sequence[str] | None = None, source: Path = VOICES_DIR) -> list[dict[str, object]]:
    """Write the selected conversations (all by default) and their manifest into ``out``."""
    known = {c.uri for c in CONVERSATIONS}
    unknown = set(only or ()) - known
    if unknown:
        raise SystemExit(f"unknown conversation(s): {sorted(unknown)}; known: {sorted(known)}")
    voices = load_voices(source)
    out.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, object]] = []
    for conv in CONVERSATIONS:
        if only and conv.uri not in only:
            continue
        plan = plan_conversation(conv, voices)
        audio = render(plan, voices)
        turns = reference(plan, voices)
        sf.write(out / f"{conv.uri}.flac", audio, SR, subtype="PCM_16", format="FLAC")
        write_rttm(out / f"{conv.uri}.rttm", conv.uri, turns)
        speech = {s: round(sum(b - a for a, b, k in turns if k == s), 2) for s in plan.speakers}
        entry: dict[str, object] = {
            "uri": conv.uri,
            "audio": f"{conv.uri}.flac",
            "rttm": f"{conv.uri}.rttm",
            "num_speakers": conv.n_speakers,
            "duration_s": round(plan.n_samples / SR, 2),
            "speech_s_per_speaker": speech,
            "voices": {
                s: f"librispeech:{v} {voices[v].sex} ({Path(voices[v].file).stem})" for s, v in plan.speakers.items()
            },
            "gains_db": plan.gains_db,
            "snr_db": conv.snr_db if conv.noise else None,
            "noise": conv.noise,
            "overlap_prob": conv.overlap_prob,
            "rms_dbfs": round(float(20 * np.log10(np.sqrt(np.mean(audio**2)))), 1),
            "telephone": conv.telephone,
            "reverb_rt60_s": conv.reverb_rt60_s,
            "notes": describe(plan, voices, audio),
        }
        manifest.append(entry)
        print(f"{conv.uri}: {entry['duration_s']} s, {conv.n_speakers} speakers, {speech}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--only", default="", help="comma-separated conversation ids (default: all)")
    parser.add_argument("--source", type=Path, default=VOICES_DIR, help="voices folder (default: tests/data/voices)")
    args = parser.parse_args()
    only = [u for u in args.only.split(",") if u] or None
    started = time.perf_counter()
    manifest = generate(args.out, only, args.source)
    print(f"{len(manifest)} conversations in {args.out} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
