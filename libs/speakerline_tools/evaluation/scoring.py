"""Scoring: an engine's turns against a reference with pyannote.metrics, file by file and over a directory."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from diarization.engines.base import DiarizationEngine, DiarizationOptions
from speakerline_tools.evaluation.inputs import EvalError, PreparedFile, find_pairs, no_pairs_message, prepare
from speakerline_tools.evaluation.report import ErrorParts, EvalReport, FileScore


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
        raise EvalError(no_pairs_message(directory, unpaired))
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
