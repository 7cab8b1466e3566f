"""Diarization quality of an engine on a directory of audio files with reference RTTMs (`speakerline eval`).

Every ``<stem>.rttm`` in the directory is paired with the audio file of the same stem (any format ingest accepts:
WAV, FLAC, MP3, Ogg, M4A...; recognised by content or by a usual audio extension). The audio is normalized exactly
like the ingest service does (:func:`speakerline.audio.normalize_file`: 16 kHz mono PCM16 WAV), the engine
diarizes the WAV, and the result is scored with pyannote.metrics'
``DiarizationErrorRate(collar=0.0, skip_overlap=False)`` over the whole file (UEM 0 to the end of the audio): no
collar, overlapped speech scored. DER and its parts (missed detection, false alarm, confusion) are fractions of the
reference speech; the overall figures sum the errors and the reference speech of all files.

The reference of a file is the RTTM's own content: when the RTTM holds a single uri it is used whatever its name,
otherwise the uri equal to the file stem.

API (usable from tests)::

    report = evaluate_dir(engine, Path("tests/data/real-dev"), num_speakers_from_reference=False)
    print(format_report(report))
    report.der, report.files[0].der, report.exact_speaker_counts, report.to_dict()

Command line (``speakerline eval``, which calls :func:`add_arguments` and :func:`run` in-process)::

    speakerline eval DIR [--engine auto|pyannote|embedded|vertex] [--num-speakers-from-reference] [--json]
                         [--max-der X]

Exit codes: 0 evaluated (and overall DER within ``--max-der`` when given), 1 overall DER above ``--max-der``,
2 the directory cannot be evaluated (missing, no pairs, unreadable audio or RTTM, engine unavailable).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, cast, get_args

from diarization.engines.base import DiarizationEngine, DiarizationOptions
from diarization.engines.select import EngineConfig, EngineName
from speakerline.audio import DECODABLE_FORMATS, SNIFF_BYTES, MediaLimits, Rejection, normalize_file, sniff_format

__all__ = [
    "EXIT_DER_ABOVE_MAX",
    "EXIT_INPUT_ERROR",
    "EXIT_OK",
    "ErrorParts",
    "EvalError",
    "EvalPair",
    "EvalReport",
    "FileScore",
    "PreparedFile",
    "add_arguments",
    "evaluate_dir",
    "evaluate_prepared",
    "find_pairs",
    "format_report",
    "load_reference",
    "prepare",
    "run",
    "score_turns",
]

EXIT_OK: Final = 0
EXIT_DER_ABOVE_MAX: Final = 1
EXIT_INPUT_ERROR: Final = 2

#: Extensions that mark a file as audio even when its content is not recognised (so that a broken ``x.wav`` is
#: reported as unreadable rather than silently left out); anything else counts as audio only by its content.
AUDIO_SUFFIXES: Final = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".webm", ".mka", ".aif", ".aiff"}
)

#: Written into reports so that a number is never separated from how it was computed.
SCORING: Final[dict[str, object]] = {
    "metric": "pyannote.metrics.diarization.DiarizationErrorRate",
    "collar": 0.0,
    "skip_overlap": False,
    "uem": "whole file (0 to the end of the audio)",
}


DESCRIPTION: Final = (
    "DER (missed detection, false alarm, confusion), speaker counts and real-time factor of a diarization engine "
    "on every audio file with a reference RTTM of the same name in DIR (no collar, overlap scored, whole file)"
)


class EvalError(Exception):
    """The directory (or a file in it) cannot be evaluated; the message is for people."""


# --------------------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalPair:
    """One audio file and its reference RTTM (same stem)."""

    name: str  # the common file stem
    audio: Path
    rttm: Path


@dataclass(frozen=True)
class ErrorParts:
    """DER components in seconds: reference speech and the three kinds of error."""

    reference_s: float = 0.0
    missed_s: float = 0.0
    false_alarm_s: float = 0.0
    confusion_s: float = 0.0

    @property
    def error_s(self) -> float:
        return self.missed_s + self.false_alarm_s + self.confusion_s

    def _rate(self, seconds: float) -> float:
        if self.reference_s > 0:
            return seconds / self.reference_s
        return 0.0 if seconds == 0 else math.inf  # no reference speech: any output is infinitely wrong

    @property
    def der(self) -> float:
        """Diarization error rate: (missed + false alarm + confusion) / reference speech."""
        return self._rate(self.error_s)

    @property
    def miss(self) -> float:
        return self._rate(self.missed_s)

    @property
    def false_alarm(self) -> float:
        return self._rate(self.false_alarm_s)

    @property
    def confusion(self) -> float:
        return self._rate(self.confusion_s)

    def __add__(self, other: ErrorParts) -> ErrorParts:
        return ErrorParts(
            self.reference_s + other.reference_s,
            self.missed_s + other.missed_s,
            self.false_alarm_s + other.false_alarm_s,
            self.confusion_s + other.confusion_s,
        )


@dataclass(frozen=True)
class FileScore:
    """One file's result."""

    name: str  # file stem
    uri: str  # the reference's uri (from the RTTM)
    audio: str  # audio file name
    duration_s: float  # of the normalized audio: the scored region
    errors: ErrorParts
    reference_speakers: int
    found_speakers: int
    turns: int  # turns the engine returned
    inference_s: float
    num_speakers: int | None = None  # what the engine was told, if anything

    @property
    def der(self) -> float:
        return self.errors.der

    @property
    def rtf(self) -> float:
        """Real-time factor: inference seconds per second of audio."""
        return self.inference_s / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def exact_speaker_count(self) -> bool:
        return self.found_speakers == self.reference_speakers

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.name,
            "uri": self.uri,
            "audio": self.audio,
            "duration_s": _round(self.duration_s),
            "reference_speech_s": _round(self.errors.reference_s),
            "der": _round(self.der),
            "missed_detection": _round(self.errors.miss),
            "false_alarm": _round(self.errors.false_alarm),
            "confusion": _round(self.errors.confusion),
            "missed_detection_s": _round(self.errors.missed_s),
            "false_alarm_s": _round(self.errors.false_alarm_s),
            "confusion_s": _round(self.errors.confusion_s),
            "speakers_found": self.found_speakers,
            "speakers_reference": self.reference_speakers,
            "exact_speaker_count": self.exact_speaker_count,
            "num_speakers_given": self.num_speakers,
            "turns": self.turns,
            "inference_s": _round(self.inference_s),
            "rtf": _round(self.rtf),
        }


@dataclass(frozen=True)
class EvalReport:
    """Per-file rows and overall figures (summed errors over summed reference speech)."""

    directory: str
    engine: str
    model: str
    device: str
    num_speakers_from_reference: bool
    files: tuple[FileScore, ...]
    load_s: float | None = None
    #: files left out because they have no partner (audio without RTTM or RTTM without audio)
    unpaired: tuple[str, ...] = ()

    @property
    def errors(self) -> ErrorParts:
        return sum((f.errors for f in self.files), ErrorParts())

    @property
    def der(self) -> float:
        """Overall DER: summed errors / summed reference speech."""
        return self.errors.der

    @property
    def duration_s(self) -> float:
        return sum(f.duration_s for f in self.files)

    @property
    def inference_s(self) -> float:
        return sum(f.inference_s for f in self.files)

    @property
    def rtf(self) -> float:
        return self.inference_s / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def exact_speaker_counts(self) -> int:
        """How many files got exactly the reference's number of speakers."""
        return sum(f.exact_speaker_count for f in self.files)

    @property
    def files_without_output(self) -> tuple[str, ...]:
        """Files for which the engine returned no turn at all."""
        return tuple(f.name for f in self.files if f.turns == 0)

    def to_dict(self) -> dict[str, object]:
        errors = self.errors
        return {
            "directory": self.directory,
            "engine": self.engine,
            "model": self.model,
            "device": self.device,
            "num_speakers_from_reference": self.num_speakers_from_reference,
            "scoring": dict(SCORING),
            "files": [f.to_dict() for f in self.files],
            "overall": {
                "files": len(self.files),
                "duration_s": _round(self.duration_s),
                "reference_speech_s": _round(errors.reference_s),
                "der": _round(errors.der),
                "missed_detection": _round(errors.miss),
                "false_alarm": _round(errors.false_alarm),
                "confusion": _round(errors.confusion),
                "exact_speaker_counts": self.exact_speaker_counts,
                "files_without_output": list(self.files_without_output),
                "inference_s": _round(self.inference_s),
                "rtf": _round(self.rtf),
                "load_s": _round(self.load_s) if self.load_s is not None else None,
            },
            "unpaired": list(self.unpaired),
        }


@dataclass(frozen=True)
class PreparedFile:
    """A pair ready to diarize: its normalized WAV, reference and duration."""

    pair: EvalPair
    wav: Path
    duration_s: float
    reference: Any  # pyannote.core.Annotation


def _round(value: float) -> float | None:
    """JSON-friendly: 6 decimals, ``None`` for an infinite rate (a file without reference speech)."""
    return round(value, 6) if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------------------
# Finding and reading the inputs
# --------------------------------------------------------------------------------------------------------


def _is_audio(path: Path) -> bool:
    if path.suffix.lower() in AUDIO_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            return sniff_format(fh.read(SNIFF_BYTES)) in DECODABLE_FORMATS
    except OSError:
        return False


def find_pairs(directory: Path) -> tuple[list[EvalPair], list[str]]:
    """Pair every ``<stem>.rttm`` in ``directory`` with the audio file of the same stem.

    Returns (pairs sorted by stem, notes on the files left without a partner). Raises :class:`EvalError` when
    ``directory`` is not a directory or a stem has several audio files.
    """
    if not directory.is_dir():
        raise EvalError(f"{directory}: no such directory")
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    rttms = {p.stem: p for p in files if p.suffix.lower() == ".rttm"}
    audio: dict[str, list[Path]] = {}
    for path in files:
        if path.suffix.lower() != ".rttm" and _is_audio(path):
            audio.setdefault(path.stem, []).append(path)
    pairs: list[EvalPair] = []
    unpaired: list[str] = []
    for stem, rttm in sorted(rttms.items()):
        candidates = audio.get(stem, [])
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            raise EvalError(f"{directory}: several audio files for {rttm.name}: {names}; keep one")
        if not candidates:
            unpaired.append(f"{rttm.name}: no audio file named {stem}.*")
            continue
        pairs.append(EvalPair(stem, candidates[0], rttm))
    unpaired += [
        f"{paths[0].name}: no reference {stem}.rttm" for stem, paths in sorted(audio.items()) if stem not in rttms
    ]
    return pairs, unpaired


def load_reference(rttm: Path, stem: str) -> Any:
    """The reference annotation in ``rttm`` (pyannote.core.Annotation): its only uri, else the one named ``stem``.

    An RTTM without SPEAKER lines is a reference without speech. Raises :class:`EvalError` when the file cannot be
    parsed or holds several uris none of which is ``stem``.
    """
    from pyannote.core import Annotation
    from pyannote.database.util import load_rttm

    try:
        text = rttm.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"{rttm}: cannot read the reference ({exc})") from exc
    if not text.strip():
        return Annotation(uri=stem)
    try:
        annotations: dict[str, Any] = load_rttm(str(rttm))  # type: ignore[no-untyped-call]
    except Exception as exc:  # pandas' parser errors are of many kinds
        raise EvalError(f"{rttm}: not a readable RTTM ({type(exc).__name__}: {exc})") from exc
    if len(annotations) == 1:
        return next(iter(annotations.values()))
    if stem in annotations:
        return annotations[stem]
    raise EvalError(f"{rttm}: holds several uris ({', '.join(sorted(annotations))}) and none is named {stem}")


def prepare(pairs: Iterable[EvalPair], workdir: Path, limits: MediaLimits | None = None) -> list[PreparedFile]:
    """Read every reference and normalize every audio file into ``workdir`` (as ingest does), failing fast.

    Raises :class:`EvalError` naming the first file that cannot be read.
    """
    prepared: list[PreparedFile] = []
    for i, pair in enumerate(pairs):
        reference = load_reference(pair.rttm, pair.name)
        wav = workdir / f"{i:04d}.wav"
        try:
            normalized = normalize_file(pair.audio, wav, limits)
        except OSError as exc:
            raise EvalError(f"{pair.audio}: cannot read ({exc})") from exc
        if isinstance(normalized, Rejection):
            raise EvalError(f"{pair.audio}: unreadable audio ({normalized.code}): {normalized.message}")
        prepared.append(PreparedFile(pair, wav, normalized.duration_s, reference))
    return prepared


# --------------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------------


class TimedSpeaker(Protocol):
    """A speaker turn of any timeline: an engine's, the service's, an RTTM's."""

    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...

    @property
    def speaker(self) -> str: ...


def score_turns(reference: Any, turns: Iterable[TimedSpeaker], duration_s: float) -> ErrorParts:
    """Score ``turns`` against ``reference`` (pyannote.core.Annotation) over the whole file, 0 to ``duration_s``.

    pyannote.metrics' ``DiarizationErrorRate(collar=0.0, skip_overlap=False)``: no collar, overlap scored.
    """
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    hypothesis = Annotation(uri=reference.uri)
    for track, turn in enumerate(turns):
        if turn.end > turn.start:
            hypothesis[Segment(turn.start, turn.end), track] = turn.speaker
    uem = Timeline([Segment(0.0, duration_s)], uri=reference.uri)
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    detail: dict[str, float] = metric(reference, hypothesis, uem=uem, detailed=True)
    return ErrorParts(
        reference_s=float(detail["total"]),
        missed_s=float(detail["missed detection"]),
        false_alarm_s=float(detail["false alarm"]),
        confusion_s=float(detail["confusion"]),
    )


def timeline_der(reference: Iterable[TimedSpeaker], hypothesis: Iterable[TimedSpeaker], duration_s: float) -> float:
    """DER of a hypothesis timeline against a reference timeline (anything with start, end and speaker), scored
    exactly as `score_turns` scores an engine: over the whole file, no collar, overlap scored."""
    from pyannote.core import Annotation, Segment

    annotation = Annotation(uri="file")
    for track, turn in enumerate(reference):
        annotation[Segment(turn.start, turn.end), track] = turn.speaker
    return score_turns(annotation, hypothesis, duration_s).der


def _reference_speakers(reference: Any) -> int:
    return len(reference.labels())


def evaluate_prepared(
    engine: DiarizationEngine,
    files: Iterable[PreparedFile],
    *,
    directory: str = "",
    num_speakers_from_reference: bool = False,
    unpaired: Sequence[str] = (),
    load_s: float | None = None,
    progress: Callable[[FileScore], None] | None = None,
) -> EvalReport:
    """Diarize and score already prepared files (see :func:`prepare`)."""
    scores: list[FileScore] = []
    model = device = ""
    for item in files:
        ref_speakers = _reference_speakers(item.reference)
        num_speakers = ref_speakers if num_speakers_from_reference and ref_speakers > 0 else None
        started = time.perf_counter()
        result = engine.diarize(item.wav, DiarizationOptions(num_speakers=num_speakers))
        wall_s = time.perf_counter() - started
        model, device = result.model, result.device
        score = FileScore(
            name=item.pair.name,
            uri=str(item.reference.uri),
            audio=item.pair.audio.name,
            duration_s=item.duration_s,
            errors=score_turns(item.reference, result.turns, item.duration_s),
            reference_speakers=ref_speakers,
            found_speakers=len(result.speakers),
            turns=len(result.turns),
            inference_s=float(result.timings.get("inference_s", wall_s)),
            num_speakers=num_speakers,
        )
        scores.append(score)
        if progress is not None:
            progress(score)
    return EvalReport(
        directory=directory,
        engine=str(getattr(engine, "name", type(engine).__name__)),
        model=model or str(getattr(engine, "model", "")),
        device=device or str(getattr(engine, "device", "")),
        num_speakers_from_reference=num_speakers_from_reference,
        files=tuple(scores),
        load_s=load_s,
        unpaired=tuple(unpaired),
    )


def evaluate_dir(
    engine: DiarizationEngine,
    directory: Path,
    *,
    num_speakers_from_reference: bool = False,
    progress: Callable[[FileScore], None] | None = None,
) -> EvalReport:
    """Run ``engine`` over every audio + RTTM pair in ``directory`` and score it (see the module docstring).

    Raises :class:`EvalError` when the directory is missing, has no pair, or a file cannot be read.
    """
    pairs, unpaired = find_pairs(directory)
    if not pairs:
        raise EvalError(_no_pairs_message(directory, unpaired))
    with tempfile.TemporaryDirectory(prefix="speakerline-eval-") as tmp:
        prepared = prepare(pairs, Path(tmp))
        return evaluate_prepared(
            engine,
            prepared,
            directory=str(directory),
            num_speakers_from_reference=num_speakers_from_reference,
            unpaired=unpaired,
            progress=progress,
        )


def _no_pairs_message(directory: Path, unpaired: Sequence[str]) -> str:
    message = f"{directory}: no audio file with a reference RTTM of the same name (<name>.rttm beside <name>.flac)"
    return message + "".join(f"\n  {note}" for note in unpaired)


# --------------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{value:6.1%}" if math.isfinite(value) else f"{'inf':>6s}"


def format_report(report: EvalReport, *, title: str | None = None) -> str:
    """The report as a fixed-width table: one row per file, then the overall row."""
    given = "from the reference" if report.num_speakers_from_reference else "not given"
    header = title or (
        f"engine {report.engine} ({report.model}, {report.device}) on {report.directory or 'files'}: "
        f"{len(report.files)} file{'' if len(report.files) == 1 else 's'}, {report.duration_s:.1f} s audio; "
        f"speaker count {given}"
    )
    width = max([22, *(len(f.name) for f in report.files)])
    lines = [
        header,
        "DER: no collar, overlap scored, whole file; parts are fractions of reference speech",
        f"{'file':{width}s} {'DER':>6s} {'miss':>6s} {'FA':>6s} {'conf':>6s} {'speakers':>9s} {'RTF':>6s}",
    ]
    for f in report.files:
        e = f.errors
        speakers = f"{f.found_speakers} / {f.reference_speakers}"
        mark = "" if f.turns else "  (no output)"
        lines.append(
            f"{f.name:{width}s} {_pct(e.der)} {_pct(e.miss)} {_pct(e.false_alarm)} {_pct(e.confusion)} "
            f"{speakers:>9s} {f.rtf:6.3f}{mark}"
        )
    e = report.errors
    exact = f"{report.exact_speaker_counts}/{len(report.files)} ok"
    lines.append(
        f"{'overall':{width}s} {_pct(e.der)} {_pct(e.miss)} {_pct(e.false_alarm)} {_pct(e.confusion)} "
        f"{exact:>9s} {report.rtf:6.3f}"
    )
    lines.append(
        f"speaker count exact on {report.exact_speaker_counts} of {len(report.files)} files; "
        f"reference speech {e.reference_s:.1f} s"
    )
    lines += [f"not evaluated: {note}" for note in report.unpaired]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------


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
    from diarization.engines.select import load_engine
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
            return _fail(_no_pairs_message(directory, unpaired))
        for note in unpaired:
            print(f"not evaluated: {note}", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="speakerline-eval-") as tmp, _stdout_to_stderr():
            prepared = prepare(pairs, Path(tmp))
            # the engine's other settings come from the environment, read as the service reads them
            config = dataclasses.replace(EngineConfig.from_settings(Settings()), engine=cast(EngineName, args.engine))
            started = time.perf_counter()
            try:
                engine = load_engine(config)
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
        f"{score.name}: DER {_pct(score.der).strip()}, speakers {score.found_speakers}/{score.reference_speakers}, "
        f"RTF {score.rtf:.3f}",
        file=sys.stderr,
        flush=True,
    )


def _fail(message: str) -> int:
    print(f"speakerline eval: {message}", file=sys.stderr)
    return EXIT_INPUT_ERROR
