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
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import fft as sp_fft
from scipy import signal

from speakerline_tools import repo
from speakerline_tools.datasets.conversations import (
    CONVERSATIONS,
    MIN_SPEAKER_S,
    Conversation,
    Plan,
    plan_conversation,
)
from speakerline_tools.datasets.voice_analysis import (
    BRIDGE_S,
    FRAME_S,
    HOP,
    SR,
    VOICES_DIR,
    Voice,
    frame_db,
    load_voices,
    regions,
    voiced_mask,
)

__all__ = [
    "CONVERSATIONS",
    "DEFAULT_OUT",
    "HOP",
    "MIN_SPEAKER_S",
    "SR",
    "VOICES_DIR",
    "Conversation",
    "Plan",
    "Voice",
    "frame_db",
    "generate",
    "load_voices",
    "plan_conversation",
    "reference",
    "regions",
    "render",
    "voiced_mask",
]

DEFAULT_OUT = repo.root() / ".stack" / "eval-voices"
ROOM_TONE_SNR_DB = 45.0  # pink room tone under every file, below the active speech level


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
