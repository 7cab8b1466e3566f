"""An evaluation's figures (errors in seconds, per-file scores, the report of a directory) and their table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

#: Written into reports so that a number is never separated from how it was computed.
SCORING: Final[dict[str, object]] = {
    "metric": "pyannote.metrics.diarization.DiarizationErrorRate",
    "collar": 0.0,
    "skip_overlap": False,
    "uem": "whole file (0 to the end of the audio)",
}


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


def _round(value: float) -> float | None:
    """JSON-friendly: 6 decimals, ``None`` for an infinite rate (a file without reference speech)."""
    return round(value, 6) if math.isfinite(value) else None


def percent(value: float) -> str:
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
            f"{f.name:{width}s} {percent(e.der)} {percent(e.miss)} {percent(e.false_alarm)} {percent(e.confusion)} "
            f"{speakers:>9s} {f.rtf:6.3f}{mark}"
        )
    e = report.errors
    exact = f"{report.exact_speaker_counts}/{len(report.files)} ok"
    lines.append(
        f"{'overall':{width}s} {percent(e.der)} {percent(e.miss)} {percent(e.false_alarm)} {percent(e.confusion)} "
        f"{exact:>9s} {report.rtf:6.3f}"
    )
    lines.append(
        f"speaker count exact on {report.exact_speaker_counts} of {len(report.files)} files; "
        f"reference speech {e.reference_s:.1f} s"
    )
    lines += [f"not evaluated: {note}" for note in report.unpaired]
    return "\n".join(lines)
