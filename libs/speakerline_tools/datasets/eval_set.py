#!/usr/bin/env python3
"""Generate the synthetic speaker-diarization evaluation set.

What it makes
-------------
* ``tests/data/eval/<id>.flac``  16 kHz mono PCM16 FLAC conversations (2, 3 and 4 speakers)
* ``tests/data/eval/<id>.rttm``  exact reference turns, derived from the synthesis itself
* ``tests/data/eval/manifest.json``  list of files, speaker counts, voices, durations
* ``tests/data/sample/conversation.{flac,rttm}``  one clean 3-speaker demo conversation

How
---
Every utterance is synthesised on its own with Debian's ``flite`` (voices awb, rms, slt,
kal16) or ``espeak-ng`` (language/variant/pitch/speed), converted with ``sox`` to 16 kHz
(optionally pitch-shifted / tempo-changed, which gives a different apparent speaker), and
then placed on a timeline with seeded random gaps and a few short overlaps. The reference
RTTM is computed from each *clean* utterance before mixing: voiced regions (frame energy
within 40 dB of the utterance peak) with pauses shorter than 0.25 s bridged. Light seeded
pink noise is added at a per-conversation SNR, and the mix is peak-normalised.

Determinism
-----------
All randomness comes from ``numpy.random.default_rng(<fixed seed per conversation>)`` and
sox is run with ``-D`` (no dither), so re-running gives bit-identical files for the same
flite / espeak-ng / sox versions (Debian 12: flite 2.2, espeak-ng 1.51, sox 14.4.2).

Usage
-----
    apt-get update && apt-get install -y espeak-ng flite sox
    python -m speakerline_tools.datasets.eval_set            # writes into tests/data/{eval,sample}
    python -m speakerline_tools.datasets.eval_set --out DIR  # somewhere else

Needs numpy and soundfile (both are diarization runtime dependencies).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from speakerline_tools import repo

SR = 16_000
DATA_DIR = repo.root() / "tests" / "data"

# Sentences: the Harvard sentences (IEEE 1969, public domain) and plain conversational lines.
SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
    "Did you get a chance to look at the budget before the meeting?",
    "I think we should move the launch to the second week of March.",
    "Honestly, the numbers from last quarter were better than I expected.",
    "Can you send me the slides when you have a minute?",
    "We still need someone to own the customer interviews.",
    "That sounds good to me, let's do it.",
    "I'm not sure the design team has seen the latest version yet.",
    "The train was late again this morning, so I missed the first call.",
    "Let's keep the scope small and ship something by Friday.",
    "Could we try the other approach and compare the results?",
    "The warehouse in Denver reported a shortage of packing material.",
    "I talked to the supplier yesterday and they can deliver next Tuesday.",
    "What did the legal team say about the new contract terms?",
    "We should write this down so nobody forgets the decision.",
    "My main worry is the test coverage on the payment flow.",
    "Yes, exactly, that was my point as well.",
    "Right. Okay. Go ahead.",
    "Sorry, could you repeat the last part?",
    "I will follow up with the finance people this afternoon.",
    "The weather looks great for the team picnic on Saturday.",
    "We measured the latency at about forty milliseconds on average.",
    "Nobody expected the old server to survive another winter.",
    "Please remember to lock the door when you leave the lab.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Our hiking trip starts at the north gate at seven sharp.",
    "The museum is closed on Mondays but open late on Thursdays.",
    "I prefer the blue chart, it is much easier to read.",
    "Let me check my calendar and get back to you.",
    "Mm-hmm, sure.",
    "No, I don't think that will work for us.",
]


@dataclass(frozen=True)
class Voice:
    """One synthetic 'person': a TTS voice plus optional sox pitch/tempo and level."""

    tool: str  # "flite" or "espeak"
    name: str  # flite voice, or espeak-ng voice[+variant]
    pitch: int = 50  # espeak-ng -p (0-99)
    speed: int = 165  # espeak-ng -s (words per minute)
    shift_cents: int = 0  # sox pitch shift (formants move too: a different apparent speaker)
    tempo: float = 1.0  # sox tempo
    gain_db: float = 0.0

    def describe(self) -> str:
        parts = [f"{self.tool}:{self.name}"]
        if self.tool == "espeak":
            parts.append(f"p{self.pitch}s{self.speed}")
        if self.shift_cents:
            parts.append(f"shift{self.shift_cents:+d}c")
        if self.tempo != 1.0:
            parts.append(f"tempo{self.tempo:g}")
        return ",".join(parts)


@dataclass(frozen=True)
class Conversation:
    uri: str
    seed: int
    voices: dict[str, Voice]
    n_turns: int
    gap: tuple[float, float] = (0.2, 0.9)  # seconds of silence between turns
    overlap_prob: float = 0.0  # probability that a turn starts before the previous one ends
    overlap: tuple[float, float] = (0.3, 0.8)  # overlap length range (seconds)
    snr_db: float = 35.0
    sentences_per_turn: tuple[int, int] = (1, 2)
    dominant: str | None = None  # talks more often (weight 3); others say 1 sentence a turn
    notes: str = ""
    out_dir: str = "eval"
    extra: dict[str, str] = field(default_factory=dict)


# Distinct "people". flite: awb = Scottish male, rms = US male, slt = US female,
# kal16 = US male (diphone). espeak-ng variants change formants and pitch.
AWB = Voice("flite", "awb")
RMS = Voice("flite", "rms")
SLT = Voice("flite", "slt")
KAL = Voice("flite", "kal16", gain_db=-2.0)
SLT_LOW = Voice("flite", "slt", shift_cents=-350, tempo=0.95)
RMS_HIGH = Voice("flite", "rms", shift_cents=300, tempo=1.05, gain_db=-3.0)
ESP_F_US = Voice("espeak", "en-us+f3", pitch=62, speed=160)
ESP_M_SC = Voice("espeak", "en-gb-scotland+m3", pitch=35, speed=150, gain_db=-2.0)
ESP_F_RP = Voice("espeak", "en-gb-x-rp+f4", pitch=70, speed=175)
ESP_M_US = Voice("espeak", "en-us+m1", pitch=40, speed=170, gain_db=-1.0)

CONVERSATIONS = [
    Conversation("conv2_meeting", 11, {"A": SLT, "B": RMS}, n_turns=9, notes="2 speakers, calm pace, clean"),
    Conversation(
        "conv2_fast_overlap",
        12,
        {"A": AWB, "B": ESP_F_US},
        n_turns=12,
        sentences_per_turn=(1, 1),
        gap=(0.05, 0.5),
        overlap_prob=0.25,
        snr_db=30,
        notes="2 speakers, fast turn-taking, short overlaps",
    ),
    Conversation(
        "conv2_monologue",
        13,
        {"A": KAL, "B": ESP_F_RP},
        n_turns=9,
        dominant="A",
        sentences_per_turn=(2, 3),
        gap=(0.3, 1.2),
        snr_db=28,
        notes="2 speakers, one dominant speaker with short replies",
    ),
    Conversation(
        "conv3_standup",
        21,
        {"A": SLT, "B": AWB, "C": ESP_M_US},
        n_turns=12,
        snr_db=32,
        notes="3 speakers, round-robin-ish stand-up",
    ),
    Conversation(
        "conv3_noisy_overlap",
        22,
        {"A": RMS, "B": ESP_F_RP, "C": SLT_LOW},
        n_turns=14,
        sentences_per_turn=(1, 1),
        overlap_prob=0.2,
        snr_db=22,
        notes="3 speakers, overlaps, noisier",
    ),
    Conversation(
        "conv4_workshop",
        31,
        {"A": SLT, "B": RMS, "C": AWB, "D": ESP_F_US},
        n_turns=17,
        sentences_per_turn=(1, 1),
        gap=(0.15, 0.8),
        overlap_prob=0.1,
        snr_db=30,
        notes="4 speakers, mixed voices",
    ),
    Conversation(
        "conv4_panel",
        32,
        {"A": KAL, "B": ESP_M_SC, "C": SLT_LOW, "D": RMS_HIGH},
        n_turns=17,
        sentences_per_turn=(1, 1),
        gap=(0.2, 1.0),
        overlap_prob=0.08,
        snr_db=28,
        notes="4 speakers, pitch-shifted and espeak voices",
    ),
    Conversation(
        "conversation",
        1,
        {"A": SLT, "B": AWB, "C": RMS},
        n_turns=10,
        sentences_per_turn=(1, 1),
        gap=(0.35, 0.9),
        snr_db=40,
        out_dir="sample",
        notes="demo sample: 3 speakers, clear turns",
    ),
]


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def synthesize(voice: Voice, text: str, workdir: Path) -> np.ndarray:
    raw = workdir / "raw.wav"
    out = workdir / "out.wav"
    if voice.tool == "flite":
        run(["flite", "-voice", voice.name, "-t", text, "-o", str(raw)])
    elif voice.tool == "espeak":
        run(["espeak-ng", "-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.speed), "-w", str(raw), text])
    else:  # pragma: no cover - configuration error
        raise ValueError(voice.tool)
    effects: list[str] = []
    if voice.shift_cents:
        effects += ["pitch", str(voice.shift_cents)]
    if voice.tempo != 1.0:
        effects += ["tempo", "-s", f"{voice.tempo:g}"]
    effects += ["rate", "-h", str(SR)]
    run(["sox", "-D", str(raw), "-r", str(SR), "-c", "1", "-e", "floating-point", "-b", "32", str(out), *effects])
    audio, sr = sf.read(out, dtype="float64")
    assert sr == SR
    audio = audio * 10 ** (voice.gain_db / 20) / max(1e-9, np.max(np.abs(audio))) * 0.5
    return trim(audio)


def frame_energy_db(audio: np.ndarray, hop: int = 160) -> np.ndarray:
    n = len(audio) // hop
    frames = audio[: n * hop].reshape(n, hop)
    return np.asarray(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12))


def trim(audio: np.ndarray) -> np.ndarray:
    db = frame_energy_db(audio)
    active = np.flatnonzero(db > db.max() - 40)
    if active.size == 0:
        return audio[:0]
    return audio[active[0] * 160 : (active[-1] + 1) * 160]


def voiced_regions(audio: np.ndarray, min_gap: float = 0.25) -> list[tuple[float, float]]:
    """Voiced regions (seconds, relative to utterance start) of a clean utterance."""
    db = frame_energy_db(audio)
    active = db > db.max() - 40
    regions: list[list[float]] = []
    for i, on in enumerate(active):
        if not on:
            continue
        t0, t1 = i * 0.01, (i + 1) * 0.01
        if regions and t0 - regions[-1][1] < min_gap:
            regions[-1][1] = t1
        else:
            regions.append([t0, t1])
    return [(a, b) for a, b in regions]


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum[1:] /= np.sqrt(freqs[1:] / freqs[1])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / np.std(noise)


def build(conv: Conversation, workdir: Path) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    rng = np.random.default_rng(conv.seed)
    speakers = list(conv.voices)
    order = rng.permutation(len(SENTENCES))
    next_sentence = 0
    placed: list[tuple[int, np.ndarray, str]] = []
    turns: list[tuple[float, float, str]] = []
    cursor = 0.3  # leading silence
    prev_end = cursor
    prev: str | None = None
    for turn_index in range(conv.n_turns):
        if turn_index < len(speakers):  # everyone speaks early on
            spk = speakers[turn_index]
        else:
            weights = np.array([3.0 if s == conv.dominant else 1.0 for s in speakers])
            weights[[s == prev for s in speakers]] = 0.0
            spk = str(rng.choice(speakers, p=weights / weights.sum()))
        n_sent = int(rng.integers(conv.sentences_per_turn[0], conv.sentences_per_turn[1] + 1))
        if conv.dominant is not None and spk != conv.dominant:
            n_sent = 1
        text = " ".join(SENTENCES[order[(next_sentence + k) % len(order)]] for k in range(n_sent))
        next_sentence += n_sent
        audio = synthesize(conv.voices[spk], text, workdir)
        if prev is not None and rng.random() < conv.overlap_prob:
            start = prev_end - float(rng.uniform(*conv.overlap))
        else:
            start = prev_end + float(rng.uniform(*conv.gap))
        start = round(max(start, 0.0) * SR) / SR
        offset = round(start * SR)
        placed.append((offset, audio, spk))
        for a, b in voiced_regions(audio):
            turns.append((start + a, start + b, spk))
        prev_end = max(prev_end, start + len(audio) / SR)
        prev = spk
    total = round((prev_end + 0.5) * SR)
    mix = np.zeros(total)
    for offset, audio, _ in placed:
        mix[offset : offset + len(audio)] += audio
    speech_rms = np.sqrt(np.mean(np.concatenate([a for _, a, _ in placed]) ** 2))
    mix += pink_noise(total, rng) * speech_rms * 10 ** (-conv.snr_db / 20)
    mix *= 0.9 / np.max(np.abs(mix))
    turns.sort()
    return mix, turns


def write_rttm(path: Path, uri: str, turns: list[tuple[float, float, str]]) -> None:
    with path.open("w") as f:
        for start, end, spk in turns:
            f.write(f"SPEAKER {uri} 1 {start:.3f} {end - start:.3f} <NA> <NA> {spk} <NA> <NA>\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="root (default: tests/data)")
    args = parser.parse_args()
    for tool in ("flite", "espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install -y espeak-ng flite sox")
    manifest = []
    with tempfile.TemporaryDirectory() as tmp:
        for conv in CONVERSATIONS:
            mix, turns = build(conv, Path(tmp))
            out_dir = args.out / conv.out_dir
            out_dir.mkdir(parents=True, exist_ok=True)
            sf.write(out_dir / f"{conv.uri}.flac", mix, SR, subtype="PCM_16", format="FLAC")
            write_rttm(out_dir / f"{conv.uri}.rttm", conv.uri, turns)
            speech = {s: round(sum(e - b for b, e, k in turns if k == s), 2) for s in conv.voices}
            entry = {
                "uri": conv.uri,
                "audio": f"{conv.uri}.flac",
                "rttm": f"{conv.uri}.rttm",
                "num_speakers": len(conv.voices),
                "duration_s": round(len(mix) / SR, 2),
                "speech_s_per_speaker": speech,
                "voices": {s: v.describe() for s, v in conv.voices.items()},
                "snr_db": conv.snr_db,
                "overlap_prob": conv.overlap_prob,
                "notes": conv.notes,
            }
            print(f"{conv.uri}: {entry['duration_s']} s, {len(conv.voices)} speakers, {speech}")
            if conv.out_dir == "eval":
                manifest.append(entry)
    (args.out / "eval" / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
