"""`speakerline eval` itself: its options and the run that prints the report (stdout) and progress (stderr)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Final, get_args

from diarization.engines.select import EngineName
from speakerline_tools.evaluation.inputs import EvalError, find_pairs, no_pairs_message, prepare
from speakerline_tools.evaluation.report import FileScore, format_report, percent
from speakerline_tools.evaluation.scoring import evaluate_prepared

EXIT_OK: Final = 0
EXIT_DER_ABOVE_MAX: Final = 1
EXIT_INPUT_ERROR: Final = 2

DESCRIPTION: Final = (
    "DER (missed detection, false alarm, confusion), speaker counts and real-time factor of a diarization engine "
    "on every audio file with a reference RTTM of the same name in DIR (no collar, overlap scored, whole file)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``eval`` options (``speakerline eval``)."""
    parser.add_argument("directory", type=Path, metavar="DIR", help="audio files with <name>.rttm references beside")
    parser.add_argument(
        "--engine",
        choices=get_args(EngineName),
        default="embedded",
        help="diarization engine (default: embedded); other settings come from the environment as for the service",
    )
    parser.add_argument(
        "--num-speakers-from-reference",
        action="store_true",
        help="tell the engine each file's reference speaker count (default: the engine estimates it)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON (per-file rows + overall)")
    parser.add_argument(
        "--max-der", type=float, metavar="X", help="exit 1 when the overall DER is above X (a fraction: 0.22 for 22%%)"
    )


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Anything libraries print while loading or diarizing goes to stderr: stdout carries only the report."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def run(args: argparse.Namespace) -> int:
    """Run ``eval`` from parsed arguments; returns the exit code."""
    from diarization.engines.base import EngineUnavailable
    from diarization.engines.select import load
    from speakerline import logs
    from speakerline.settings import Settings

    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    # pyannote.audio warns at import when torchcodec finds no FFmpeg; engines are handed decoded WAVs, not files to
    # decode with it
    warnings.filterwarnings("ignore", message=r"\s*torchcodec is not installed", category=UserWarning)
    logs.configure("diarization-eval", level=os.environ.get("SPEAKERLINE_LOG_LEVEL", "WARNING"))
    directory: Path = args.directory
    if args.max_der is not None and not args.max_der >= 0:
        return _fail("--max-der must be a non-negative number (a fraction: 0.22 for 22 %)")
    try:
        pairs, unpaired = find_pairs(directory)
        if not pairs:
            return _fail(no_pairs_message(directory, unpaired))
        for note in unpaired:
            print(f"not evaluated: {note}", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="speakerline-eval-") as tmp, _stdout_to_stderr():
            prepared = prepare(pairs, Path(tmp))
            # the engine's other settings come from the environment, read as the service reads them
            started = time.perf_counter()
            try:
                engine = load(args.engine, Settings())
            except (EngineUnavailable, ValueError) as exc:
                return _fail(f"engine {args.engine}: {exc}")
            load_s = time.perf_counter() - started
            report = evaluate_prepared(
                engine,
                prepared,
                directory=str(directory),
                num_speakers_from_reference=args.num_speakers_from_reference,
                unpaired=unpaired,
                load_s=load_s,
                progress=_print_progress,
            )
    except EvalError as exc:
        return _fail(str(exc))
    passed = None if args.max_der is None else report.der <= args.max_der
    if args.json:
        doc = report.to_dict()
        doc["max_der"] = args.max_der
        doc["passed"] = passed
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print(format_report(report))
    if passed is False:
        print(f"overall DER {report.der:.1%} is above --max-der {args.max_der:.1%}", file=sys.stderr)
        return EXIT_DER_ABOVE_MAX
    return EXIT_OK


def _print_progress(score: FileScore) -> None:
    print(
        f"{score.name}: DER {percent(score.der).strip()}, speakers {score.found_speakers}/{score.reference_speakers}, "
        f"RTF {score.rtf:.3f}",
        file=sys.stderr,
        flush=True,
    )


def _fail(message: str) -> int:
    print(f"speakerline eval: {message}", file=sys.stderr)
    return EXIT_INPUT_ERROR
