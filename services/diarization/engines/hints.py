"""Speaker-count hints as a guarantee, whatever the engine did.

pyannote-style pipelines honour ``num_speakers``/``min_speakers`` while clustering, but a
cluster can still vanish afterwards: reconstruction gives each frame to the clusters with the
most activation, and a cluster that never wins a frame leaves no turn. Users of pyannote,
WhisperX and cloud APIs report exactly that ("asked for 4, got 3"). This module is the last
step of every in-process engine: it makes the labels respect the hint whenever the timeline
allows it (at least N separate turns for N speakers).

* Too few speakers: the shortest turn of a speaker who has several is given a new label,
  repeatedly. Short turns are where a missed participant most often hides (a quiet "yes",
  a question from the back), and moving the shortest turn costs the least if it was wrong.
* Too many speakers (an engine that ignored ``max_speakers``): the speaker with the least
  speech is merged into the one with the most.

The exclusive timeline follows the same relabelling.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace

from speakerline.timeline import Turn, speaker_label

from .base import DiarizationOptions, DiarizationResult

__all__ = ["enforce_speaker_hints", "speaker_bounds"]


def speaker_bounds(options: DiarizationOptions) -> tuple[int, int | None]:
    """(fewest, most) speakers the caller allows; ``most`` is None when unbounded."""
    if options.num_speakers is not None:
        return options.num_speakers, options.num_speakers
    return options.min_speakers or 0, options.max_speakers


def _new_label(existing: set[str]) -> str:
    index = 0
    while speaker_label(index) in existing:
        index += 1
    return speaker_label(index)


def _talk_time(turns: tuple[Turn, ...]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for turn in turns:
        totals[turn.speaker] += turn.duration
    return totals


def _split_off_shortest(result: DiarizationResult) -> DiarizationResult | None:
    counts = Counter(turn.speaker for turn in result.turns)
    candidates = [turn for turn in result.turns if counts[turn.speaker] > 1]
    if not candidates:
        return None
    moved = min(candidates, key=lambda t: (t.duration, -t.start))
    moved_index = result.turns.index(moved)  # only this one: identical copies stay behind
    label = _new_label(set(counts))

    def relabel(turn: Turn) -> Turn:
        inside = turn.start < moved.end and turn.end > moved.start
        return replace(turn, speaker=label) if turn.speaker == moved.speaker and inside else turn

    return replace(
        result,
        turns=tuple(relabel(t) if i == moved_index else t for i, t in enumerate(result.turns)),
        exclusive_turns=tuple(relabel(t) for t in result.exclusive_turns),
    )


def _merge_smallest(result: DiarizationResult) -> DiarizationResult:
    totals = _talk_time(result.turns)
    smallest = min(totals, key=lambda s: (totals[s], s))
    largest = max(totals, key=lambda s: (totals[s], s))

    def relabel(turns: tuple[Turn, ...]) -> tuple[Turn, ...]:
        merged = [replace(t, speaker=largest) if t.speaker == smallest else t for t in turns]
        return tuple(sorted(set(merged), key=lambda t: (t.start, t.end, t.speaker)))

    return replace(result, turns=relabel(result.turns), exclusive_turns=relabel(result.exclusive_turns))


def enforce_speaker_hints(result: DiarizationResult, options: DiarizationOptions) -> DiarizationResult:
    """``result`` with between ``speaker_bounds(options)`` labels wherever its turns allow."""
    fewest, most = speaker_bounds(options)
    while most is not None and len(result.speakers) > most:
        result = _merge_smallest(result)
    while len(result.speakers) < fewest:
        split = _split_off_shortest(result)
        if split is None:
            break
        result = split
    return result
