"""Engine-independent types shared by every diarization engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from speakerline import speaker_options
from speakerline.timeline import Turn

__all__ = [
    "DiarizationEngine",
    "DiarizationOptions",
    "DiarizationResult",
    "DispatchUnavailable",
    "EngineUnavailable",
    "Progress",
    "ProgressCallback",
]


class EngineUnavailable(Exception):
    """Raised by a loader when its engine cannot be used here.

    Typical causes: the model is not cached and there is no token / no network, the weights
    package is not installed, or an optional dependency is missing. The message says which.
    """


class DispatchUnavailable(Exception):
    """Raised by a dispatcher when the GPU path cannot take a job: the worker then runs the job itself.

    ``engine`` names the path that failed (``vertex``), ``reason`` is a stable code (e.g. ``gpu_dispatch_refused``,
    ``gpu_start_timeout``) and ``message`` says what happened, for people: the job's ``engine.fallback``.
    """

    def __init__(self, engine: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.engine = engine
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class DiarizationOptions:
    """Optional constraints on the number of speakers (``num_speakers`` wins when set)."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    def __post_init__(self) -> None:
        # An engine takes any count from one up (an evaluation set may hold more speakers than a job may ask for),
        # and num_speakers with a range is not an error here: num_speakers wins.
        found = speaker_options.problems(self.num_speakers, self.min_speakers, self.max_speakers, most=None)
        for problem in found:
            if problem.problem is not speaker_options.Problem.COUNT_AND_RANGE:
                raise ValueError(problem.message)


@dataclass(frozen=True)
class Progress:
    """How far a running diarization is: ``fraction`` of the work done (0-1), in ``stage``."""

    fraction: float
    stage: str


#: Called by an engine as its work advances (from the thread running ``diarize``); never required.
ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class DiarizationResult:
    """What an engine returns: turns sorted by start time, plus provenance and timings.

    ``turns`` is the overlap-aware timeline (two people speaking at once are two turns).
    ``exclusive_turns`` is the same diarization with one speaker at a time (pyannote 4's
    ``exclusive_speaker_diarization``), for aligning a transcript; empty when the engine
    does not produce one. ``timings`` holds e.g. ``load_s``, ``inference_s``, ``audio_s``
    and ``rtf`` (inference seconds per second of audio).
    """

    turns: tuple[Turn, ...]
    engine: str
    model: str
    device: str
    timings: dict[str, float] = field(default_factory=dict)
    exclusive_turns: tuple[Turn, ...] = ()

    @property
    def speakers(self) -> tuple[str, ...]:
        """Distinct speaker labels, in order of first appearance."""
        return tuple(dict.fromkeys(turn.speaker for turn in self.turns))


@runtime_checkable
class DiarizationEngine(Protocol):
    """Anything that turns a 16 kHz mono PCM16 WAV file into speaker turns.

    ``progress``, when given, is called as the work advances (an engine that cannot tell may
    never call it).
    """

    name: str

    def diarize(
        self, audio_path: Path, options: DiarizationOptions, progress: ProgressCallback | None = None
    ) -> DiarizationResult: ...
