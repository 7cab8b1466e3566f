#!/usr/bin/env python3
"""Long recordings: peak memory, speed and label consistency of the embedded engine (`make bench-long`).

    python -m speakerline_tools.bench.long_audio                 # 5, 60 and 360 minutes (over an hour of CPU)
    python -m speakerline_tools.bench.long_audio --minutes 10,30 --json out.json

Each recording is built from the synthetic evaluation set (`tests/data/eval`: 7 conversations, 10 recurring
voices): the conversations are concatenated in a seeded shuffled order, again and again, up to the length asked.
The reference labels are the voices (from the manifest), so a voice must keep one label across the whole file.
Every length runs in its own process, so its peak RSS (ru_maxrss, torch and both models included) is its own.

Printed per length: peak RSS, RTF (inference seconds per audio second, one torch thread), DER (no collar,
overlap scored) and voices found; and the mean DER of the parts (each conversation diarized on its own), which
the long file's DER is compared with.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from speakerline_tools import repo

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

EVAL = repo.root() / "tests" / "data" / "eval"


def _parts() -> list[tuple[Any, Any]]:
    """(int16 samples, reference annotation labelled by voice) of every conversation of the set."""
    import soundfile as sf
    from pyannote.core import Annotation, Segment

    from speakerline.timeline import parse_rttm

    manifest = json.loads((EVAL / "manifest.json").read_text())
    parts = []
    for entry in manifest:
        samples, _ = sf.read(str(EVAL / entry["audio"]), dtype="int16")
        reference = Annotation()
        for turn in next(iter(parse_rttm((EVAL / entry["rttm"]).read_text()).values())):
            reference[Segment(turn.start, turn.end)] = entry["voices"][turn.speaker]
        parts.append((samples, reference))
    return parts


def build(minutes: float, out: Path, seed: int = 7) -> Any:
    """Write the recording; return its reference (pyannote Annotation)."""
    import numpy as np
    import soundfile as sf
    from pyannote.core import Annotation, Segment

    parts = _parts()
    rng = np.random.default_rng(seed)
    target = int(minutes * 60 * 16000)
    reference, offset = Annotation(), 0
    with sf.SoundFile(str(out), "w", samplerate=16000, channels=1, subtype="PCM_16") as sink:
        while offset < target:
            for index in rng.permutation(len(parts)):
                samples, part_reference = parts[index]
                samples = samples[: target - offset]
                sink.write(samples)
                shift, length = offset / 16000, len(samples) / 16000
                for segment, _, voice in part_reference.itertracks(yield_label=True):
                    if segment.start < length:
                        reference[Segment(segment.start + shift, min(segment.end, length) + shift)] = voice
                offset += len(samples)
                if offset >= target:
                    break
    return reference


def _der(reference: Any, turns: Any, duration: float) -> float:
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    hypothesis = Annotation()
    for turn in turns:
        hypothesis[Segment(turn.start, turn.end)] = turn.speaker
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    return float(metric(reference, hypothesis, uem=Timeline([Segment(0, duration)])))


def measure(minutes: float) -> dict[str, Any]:
    """One length, in this process (run by :func:`main` in a child process per length)."""
    from diarization.engines import select
    from diarization.engines.base import DiarizationOptions
    from speakerline.settings import Settings

    engine = select.load("embedded", Settings(diarization_device="cpu"))
    loaded_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        reference = build(minutes, wav)
        result = engine.diarize(wav, DiarizationOptions())
    audio_s = result.timings["audio_s"]
    return {
        "minutes": minutes,
        "audio_s": audio_s,
        "rss_loaded_mib": round(loaded_mib),
        "rss_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rtf": result.timings["rtf"],
        "der": round(_der(reference, result.turns, audio_s), 4),
        "speakers_found": len(result.speakers),
        "voices": len(reference.labels()),
    }


def parts_der() -> float:
    """DER over all parts, each diarized on its own (the figure a long file should stay close to)."""
    import soundfile as sf

    from diarization.engines import select
    from diarization.engines.base import DiarizationOptions
    from speakerline.settings import Settings

    engine = select.load("embedded", Settings(diarization_device="cpu"))
    errors = total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for k, (samples, reference) in enumerate(_parts()):
            wav = Path(tmp) / f"part{k}.wav"
            sf.write(str(wav), samples, 16000, subtype="PCM_16")
            result = engine.diarize(wav, DiarizationOptions())
            speech = sum(segment.duration for segment, _ in reference.itertracks())
            errors += _der(reference, result.turns, len(samples) / 16000) * speech
            total += speech
    return errors / total


def _against_targets(rows: list[dict[str, Any]], parts: float) -> list[str]:
    """Issue 7's targets, for the lengths measured: memory flat (longest vs the next shorter), time linear
    (longest vs the shortest), labels consistent (longest vs its parts), every voice found."""
    if not rows:
        return []
    by_length = sorted(rows, key=lambda row: row["minutes"])
    shortest, longest = by_length[0], by_length[-1]
    lines = []
    if len(by_length) > 1:
        previous = by_length[-2]
        memory = longest["rss_peak_mib"] / previous["rss_peak_mib"]
        speed = longest["rtf"] / shortest["rtf"]
        lines.append(
            f"peak RSS {longest['minutes']:.0f} min / {previous['minutes']:.0f} min: x{memory:.2f} (target <= 1.15);"
            f" RTF {longest['minutes']:.0f} min / {shortest['minutes']:.0f} min: x{speed:.2f} (target <= 1.10)"
        )
    lines.append(
        f"{longest['minutes']:.0f} min: peak RSS {longest['rss_peak_mib']} MiB (target < 2048);"
        f" DER {longest['der']:.1%}, {100 * (longest['der'] - parts):+.1f} points against its parts (target <= +3);"
        f" voices {longest['speakers_found']}/{longest['voices']} (target exact)"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", default="5,60,360", help="comma-separated lengths (default 5,60,360)")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)  # child process: measure one length
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one)))
        return 0

    rows = []
    for minutes in (float(m) for m in args.minutes.split(",")):
        child = subprocess.run(
            [sys.executable, "-m", "speakerline_tools.bench.long_audio", "--one", str(minutes)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(
            f"{row['minutes']:6.0f} min  peak RSS {row['rss_peak_mib']:5d} MiB (after load {row['rss_loaded_mib']})"
            f"  RTF {row['rtf']:.3f}  DER {row['der']:.1%}  voices {row['speakers_found']}/{row['voices']}",
            flush=True,
        )
    reference = parts_der()
    print(f"parts diarized one by one: DER {reference:.1%}")
    for line in _against_targets(rows, reference):
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"lengths": rows, "parts_der": reference}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
