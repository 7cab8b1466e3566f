#!/usr/bin/env python3
"""Real-time factor and peak memory of the embedded engine (plain script, for `make bench`).

    python -m speakerline_tools.bench.engines                 # every eval file + the sample
    python -m speakerline_tools.bench.engines --rounds 3 --json out.json
    python -m speakerline_tools.bench.engines --dir tests/data/real-dev --threads 2

Each file is diarized ``--rounds`` times after one warm-up run; RTF = inference seconds per
second of audio (best and median round). Peak memory is the process's max RSS (ru_maxrss),
which includes loading torch and both models.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from speakerline_tools import repo

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

DATA = repo.root() / "tests" / "data"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads while diarizing (default 1)")
    parser.add_argument(
        "--dir", type=Path, help="diarize the audio files of this folder instead (e.g. tests/data/real-dev)"
    )
    args = parser.parse_args()

    import soundfile as sf

    from diarization.engines.base import DiarizationOptions
    from diarization.engines.embedded import EmbeddedEngine

    rss_before = peak_rss_mib()
    started = time.perf_counter()
    # the engine's own entry point, not `select.load`: --threads (torch's and ONNX Runtime's threads, fixed at load)
    # is a knob of this benchmark only; the service always runs the engine's default of one thread
    engine = EmbeddedEngine.from_pretrained(device="cpu", num_threads=args.threads)
    load_s = time.perf_counter() - started
    rss_loaded = peak_rss_mib()

    if args.dir:
        files = sorted(f for f in args.dir.iterdir() if f.suffix in (".flac", ".wav"))
    else:
        files = [*sorted((DATA / "eval").glob("*.flac")), DATA / "sample" / "conversation.flac"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for flac in files:
            data, rate = sf.read(str(flac), dtype="int16")
            wav = Path(tmp) / f"{flac.stem}.wav"
            sf.write(str(wav), data, rate, subtype="PCM_16")
            engine.diarize(wav, DiarizationOptions())  # warm-up
            rtfs = [engine.diarize(wav, DiarizationOptions()).timings["rtf"] for _ in range(args.rounds)]
            rows.append(
                {
                    "file": flac.stem,
                    "audio_s": round(len(data) / rate, 2),
                    "rtf_best": round(min(rtfs), 3),
                    "rtf_median": round(statistics.median(rtfs), 3),
                }
            )
            print(
                f"{flac.stem:22s} {rows[-1]['audio_s']:6.1f}s  RTF best {min(rtfs):.3f}  median "
                f"{statistics.median(rtfs):.3f}",
                flush=True,
            )
    result = {
        "engine": engine.name,
        "model": engine.model,
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "load_s": round(load_s, 2),
        "peak_rss_mib": {
            "before_load": round(rss_before, 1),
            "after_load": round(rss_loaded, 1),
            "after_runs": round(peak_rss_mib(), 1),
        },
        "rtf_median_overall": round(statistics.median(r["rtf_median"] for r in rows), 3),
        "files": rows,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "files"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
