"""Progress of a running diarization, throttled into `diarization.progress` events.

The engine reports a fraction of its work as it goes (many times a second on a long file); a
producer watching the job needs a fresh figure every few seconds, not a flood of events. A
:class:`ProgressReporter` turns the engine's reports into at most one event per ``interval_s``,
only when the fraction moved, with the audio seconds that fraction stands for and an estimate of
the time left (from the rate so far). Reporting is best effort: an ``emit`` that fails is logged
and the diarization goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from diarization.engines.base import Progress

log = structlog.get_logger()

#: The least time between two progress events of one job (seconds).
DEFAULT_INTERVAL_S = 5.0


@dataclass(frozen=True)
class ProgressReport:
    """What one `diarization.progress` event says (the event's ``progress`` object)."""

    fraction: float
    stage: str
    audio_s: float
    processed_audio_s: float
    elapsed_s: float
    eta_s: float | None
    sequence: int

    def to_json(self) -> dict[str, Any]:
        return {
            "fraction": self.fraction,
            "stage": self.stage,
            "audio_s": round(self.audio_s, 3),
            "processed_audio_s": round(self.processed_audio_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "sequence": self.sequence,
        }


class ProgressReporter:
    """Engine progress callback: calls ``emit`` with a :class:`ProgressReport` at most every
    ``interval_s`` seconds of ``clock``, and only when the fraction went up."""

    def __init__(
        self,
        emit: Callable[[ProgressReport], Any],
        *,
        audio_s: float,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._audio_s = max(0.0, audio_s)
        self._interval_s = interval_s
        self._clock = clock
        self._started = clock()
        self._last_at: float | None = None
        self._last_fraction = 0.0
        self.sequence = 0

    def __call__(self, progress: Progress) -> None:
        now = self._clock()
        fraction = min(1.0, max(0.0, progress.fraction))
        if fraction <= self._last_fraction:
            return
        if self._last_at is not None and now - self._last_at < self._interval_s:
            return
        elapsed = now - self._started
        eta = elapsed * (1.0 - fraction) / fraction if elapsed > 0 else None
        self.sequence += 1
        report = ProgressReport(
            fraction=round(fraction, 4),
            stage=progress.stage,
            audio_s=self._audio_s,
            processed_audio_s=fraction * self._audio_s,
            elapsed_s=elapsed,
            eta_s=eta,
            sequence=self.sequence,
        )
        self._last_at, self._last_fraction = now, fraction
        try:
            self._emit(report)
        except Exception:  # progress is best effort: never fail the job over it
            log.warning("diarization.progress_not_published", exc_info=True, fraction=report.fraction)
