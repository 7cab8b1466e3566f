"""Post-processing rules for raw diarization turns: clean-up, summary statistics, output document.

The summary is the event contract's `Summary` (`speakerline.events.models`): `summarize` rounds the exact
`SpeechStats` into it, job.completed carries it, and output.json's ``summary`` is derived from that same object
(`output_summary`, which also keeps output.json's older key names).

Two timelines come out: the overlap-aware one (``segments``: two people talking at once are two turns) and the
exclusive one (``exclusive_segments``: at most one speaker at any instant, for aligning a transcript), cleaned by
the same rules and labelled with the same speaker names.

Everything here is pure (no I/O, no clock) so the handler stays a thin shell and the rules can be
tested exhaustively with property-based tests.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from speakerline.events import models, to_json
from speakerline.timeline import Turn, exclusive_timeline, speaker_label, turns_to_json

__all__ = [
    "DEFAULT_CONFIG",
    "RESERVED_OUTPUT_KEYS",
    "PostprocessConfig",
    "SpeakerStats",
    "SpeechStats",
    "build_output",
    "clean",
    "clean_exclusive",
    "clean_with_labels",
    "derive_exclusive",
    "output_summary",
    "speech_stats",
    "summarize",
]

# Float slack for comparisons against thresholds: timestamps arrive as decimal milliseconds, and
# e.g. 0.7 - 0.2 == 0.49999999999999994 must still count as a 0.5 s gap.
_EPS = 1e-9
_DECIMALS = 3

RESERVED_OUTPUT_KEYS = frozenset({"segments", "exclusive_segments", "speakers", "summary", "job_id"})


@dataclass(frozen=True)
class PostprocessConfig:
    """Thresholds for `clean`.

    merge_gap_s: segmentation models split one speaker's sentence at breaths and short pauses;
        0.5 s is below a typical turn-taking pause, so bridging gaps up to it rejoins a sentence
        without swallowing a real exchange between speakers.
    min_segment_s: turns shorter than 0.3 s are too short to carry a word and are mostly clustering
        noise (a cough, a handful of frames attributed to the wrong cluster).
    """

    merge_gap_s: float = 0.5
    min_segment_s: float = 0.3

    def __post_init__(self) -> None:
        for name in ("merge_gap_s", "min_segment_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


# -------------------------------------------------------------------------------------------- clean


DEFAULT_CONFIG = PostprocessConfig()


def clean(turns: Iterable[Turn], config: PostprocessConfig = DEFAULT_CONFIG) -> list[Turn]:
    """Merge fragmented turns, drop blips, relabel speakers; returns chronologically sorted turns.

    Rules, in order:

    1. Same-speaker turns that overlap or touch are always merged.
    2. Same-speaker turns separated by a gap of at most ``merge_gap_s`` are merged *unless another
       speaker talks inside that gap*: bridging it would invent overlapping speech over a real
       exchange ("yes" - "no" - "yes") and inflate the overlap statistic.
    3. Merged turns shorter than ``min_segment_s`` are dropped (after merging, so a fragmented
       sentence survives as a whole). Exception: a speaker whose every turn is that short but
       whose total talk time reaches ``min_segment_s`` keeps their turns: that is a real voice
       made of backchannels ("mm-hm", "yes"), and erasing them would under-count speakers. A
       speaker below the threshold even in total disappears: a phantom speaker in the count is
       worse for users than a missing cough.
    4. Steps 1-3 repeat until nothing changes, because dropping a blip can empty a gap and so allow
       a merge it blocked. This makes `clean` idempotent.
    5. Speakers are relabelled ``SPEAKER_00, SPEAKER_01, ...`` in order of first appearance, so the
       labels do not depend on the arbitrary cluster ids of the diarization engine.
    """
    return clean_with_labels(turns, config)[0]


def clean_with_labels(
    turns: Iterable[Turn], config: PostprocessConfig = DEFAULT_CONFIG
) -> tuple[list[Turn], dict[str, str]]:
    """`clean`, plus the relabelling it applied: engine label -> ``SPEAKER_xx``.

    A speaker that cleaning removed entirely is not in the mapping. `clean_exclusive` maps the engine's
    exclusive timeline through it, so both timelines of a job name the same voice the same way.
    """
    current = _settle(sorted(turns), config)
    labels = _labels(current)
    return _rename(current, labels), labels


def clean_exclusive(
    exclusive: Iterable[Turn], labels: Mapping[str, str], config: PostprocessConfig = DEFAULT_CONFIG
) -> list[Turn]:
    """Clean an exclusive (one speaker at a time) timeline; it stays exclusive.

    ``labels`` is the mapping `clean_with_labels` applied to the overlap-aware timeline of the same job.

    1. Turns of speakers absent from ``labels`` are dropped: cleaning removed that speaker from the
       overlap-aware timeline, and the exclusive one may not name a speaker the other lacks.
    2. The rest goes through `exclusive_timeline`: a no-op for a truly exclusive input (touching turns of one
       speaker are joined), and if an engine's turns overlap by a rounding error, that is resolved the same way
       as a derived timeline.
    3. Rules 1-4 of `clean`, unchanged. They cannot create overlap here: a gap is only bridged when nobody else
       speaks inside it, and dropping a blip only removes speech.
    4. Labels are mapped through ``labels`` (not recomputed by first appearance: the exclusive timeline may
       meet speakers in another order, or miss one whose speech is all overlapped).

    Dropped turns (speakers cleaned away, blips) leave silence rather than being handed to someone: an
    exclusive timeline carries no overlap information to tell who else was talking there.
    """
    kept = [t for t in exclusive if t.speaker in labels]
    return _rename(_settle(exclusive_timeline(kept), config), labels)


def derive_exclusive(cleaned: Iterable[Turn], config: PostprocessConfig = DEFAULT_CONFIG) -> list[Turn]:
    """The exclusive timeline of a job whose engine gave none, from its *cleaned* overlap-aware turns.

    Deriving after cleaning rather than from the raw turns means the "longest enclosing turn" that
    `exclusive_timeline` favours is a whole merged turn, not a fragment split at a breath. The result is then
    cleaned like an engine's (`clean_exclusive`, labels unchanged), which removes the slivers left where a
    shorter turn lost an overlap.
    """
    ordered = sorted(cleaned)
    return clean_exclusive(exclusive_timeline(ordered), {t.speaker: t.speaker for t in ordered}, config)


def _settle(turns: Sequence[Turn], config: PostprocessConfig) -> list[Turn]:
    """Rules 1-4 of `clean`: merge and drop blips until nothing changes (no relabelling)."""
    current = sorted(turns)
    while True:
        updated = _drop_blips(_merge(current, config.merge_gap_s), config.min_segment_s)
        if updated == current:
            return current
        current = updated


def _by_speaker(turns: Iterable[Turn]) -> dict[str, list[Turn]]:
    groups: dict[str, list[Turn]] = defaultdict(list)
    for turn in sorted(turns):
        groups[turn.speaker].append(turn)
    return groups


def _merge(turns: Sequence[Turn], merge_gap_s: float) -> list[Turn]:
    merged: list[Turn] = []
    for speaker, own in _by_speaker(turns).items():
        others = _union((t.start, t.end) for t in turns if t.speaker != speaker)
        merged.extend(_merge_speaker(own, others, merge_gap_s))
    return sorted(merged)


def _merge_speaker(own: Sequence[Turn], others: Sequence[tuple[float, float]], gap_s: float) -> list[Turn]:
    # `own` is sorted by start; `others` is the disjoint, sorted union of everyone else's speech,
    # so its ends are sorted too and a bisect finds the first stretch ending inside a gap.
    other_ends = [end for _, end in others]
    result: list[Turn] = []
    for turn in own:
        if result:
            last = result[-1]
            gap = turn.start - last.end
            if gap <= _EPS or (gap <= gap_s + _EPS and not _intersects(others, other_ends, last.end, turn.start)):
                result[-1] = Turn(last.start, max(last.end, turn.end), last.speaker)
                continue
        result.append(turn)
    return result


def _intersects(intervals: Sequence[tuple[float, float]], ends: Sequence[float], lo: float, hi: float) -> bool:
    """Whether any of the disjoint sorted `intervals` (with `ends` = their ends) meets (lo, hi)."""
    index = bisect.bisect_right(ends, lo)
    return index < len(intervals) and intervals[index][0] < hi


def _drop_blips(turns: Sequence[Turn], min_segment_s: float) -> list[Turn]:
    kept: list[Turn] = []
    for own in _by_speaker(turns).values():
        long_enough = [t for t in own if t.duration >= min_segment_s - _EPS]
        if long_enough:
            kept.extend(long_enough)
        elif sum(t.duration for t in own) >= min_segment_s - _EPS:
            kept.extend(own)  # a speaker made only of backchannels: see rule 3 of `clean`
    return sorted(kept)


def _labels(turns: Sequence[Turn]) -> dict[str, str]:
    """Engine label -> ``SPEAKER_xx``, numbered in order of first appearance."""
    order: dict[str, int] = {}
    for turn in sorted(turns):
        order.setdefault(turn.speaker, len(order))
    # Pad to a common width so string order equals numeric order even past 100 speakers; otherwise
    # "SPEAKER_100" < "SPEAKER_99" would reorder ties and break idempotence.
    width = max(2, len(str(len(order) - 1)))
    return {old: speaker_label(index, width) for old, index in order.items()}


def _rename(turns: Iterable[Turn], labels: Mapping[str, str]) -> list[Turn]:
    return sorted(Turn(t.start, t.end, labels[t.speaker]) for t in turns)


def _union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Disjoint sorted union of closed intervals (touching intervals are joined)."""
    result: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if result and start <= result[-1][1]:
            result[-1] = (result[-1][0], max(result[-1][1], end))
        else:
            result.append((start, end))
    return result


# ---------------------------------------------------------------------------------------- summarize


@dataclass(frozen=True)
class SpeakerStats:
    speaker: str
    talk_time_s: float  # union of the speaker's turns: overlapping turns are not double-counted
    share_of_speech: float  # talk_time / sum of all speakers' talk times (shares sum to 1)
    share_of_audio: float  # talk_time / audio duration
    num_segments: int
    first_start_s: float
    last_end_s: float


@dataclass(frozen=True)
class SpeechStats:
    """Exact (unrounded) speaking statistics of a timeline; `summarize` rounds them into the job's `Summary`."""

    duration_s: float
    total_speech_s: float  # time where at least one speaker talks
    overlap_s: float  # time where at least two different speakers talk at once
    silence_s: float  # duration - total speech
    num_speakers: int
    speakers: tuple[SpeakerStats, ...]  # in order of first appearance


def _r(value: float) -> float:
    return round(value, _DECIMALS)


def speech_stats(turns: Iterable[Turn], duration_s: float) -> SpeechStats:
    """Speaking statistics for a timeline.

    ``share_of_speech`` divides by the *sum* of per-speaker talk times rather than the union of all
    speech, so shares add up to 1 even when people talk over each other. If a turn ends after
    ``duration_s`` (a probe that under-reports the length by a few frames), the duration is
    stretched to the last turn end rather than reporting negative silence.
    """
    if not math.isfinite(duration_s) or duration_s < 0:
        raise ValueError(f"duration_s must be a finite number >= 0, got {duration_s!r}")
    ordered = sorted(turns)
    duration = max([duration_s, *(t.end for t in ordered)])
    speech, overlap = _speech_and_overlap(ordered)
    groups = _by_speaker(ordered)
    talk = {speaker: _length(_union((t.start, t.end) for t in own)) for speaker, own in groups.items()}
    total_talk = sum(talk.values())
    stats = tuple(
        SpeakerStats(
            speaker=speaker,
            talk_time_s=talk[speaker],
            share_of_speech=_ratio(talk[speaker], total_talk),
            share_of_audio=_ratio(talk[speaker], duration),
            num_segments=len(own),
            first_start_s=own[0].start,
            last_end_s=max(t.end for t in own),
        )
        for speaker, own in groups.items()  # dicts keep insertion order = order of first appearance
    )
    return SpeechStats(
        duration_s=duration,
        total_speech_s=speech,
        overlap_s=overlap,
        silence_s=max(0.0, duration - speech),
        num_speakers=len(stats),
        speakers=stats,
    )


def summarize(stats: SpeechStats, *, num_exclusive_segments: int | None = None) -> models.Summary:
    """The job's summary: the contract's `Summary` (the job.completed event's ``result.summary``), rounded to
    milliseconds. It is the one summary type: output.json's ``summary`` is derived from this very object
    (`output_summary`) and the notification service renders it.

    ``num_segments`` counts the overlap-aware segments `stats` were computed from; ``num_exclusive_segments``
    the exclusive timeline's, when there is one.
    """
    return models.Summary(
        duration_s=_r(stats.duration_s),
        num_speakers=stats.num_speakers,
        num_segments=sum(s.num_segments for s in stats.speakers),
        num_exclusive_segments=num_exclusive_segments,
        speech_s=_r(stats.total_speech_s),
        overlap_s=_r(stats.overlap_s),
        speakers=[
            models.Speaker(
                speaker=s.speaker,
                talk_time_s=_r(s.talk_time_s),
                share=_r(s.share_of_speech),
                num_segments=s.num_segments,
            )
            for s in stats.speakers
        ],
    )


def output_summary(summary: models.Summary, stats: SpeechStats) -> dict[str, Any]:
    """output.json's ``summary`` object, derived here and only here from the job's `Summary`.

    output.json is a published file format, so its keys are only ever added, never renamed or removed. It is the
    `Summary` JSON (what job.completed carries: ``speech_s``, speakers' ``share``, ...), so it validates as a
    `models.Summary`, plus the keys output.json had before that summary was the contract's:

    - ``total_speech_s`` (= ``speech_s``) and each speaker's ``share_of_speech`` (= ``share``): the same numbers
      under their older names, copied from `summary` so that the two names can never disagree;
    - ``silence_s`` and each speaker's ``share_of_audio``, ``first_start_s``, ``last_end_s``: figures only
      output.json has, rounded from the `stats` that `summary` was made from.
    """
    if [s.speaker for s in summary.speakers] != [s.speaker for s in stats.speakers]:
        raise ValueError("the summary was not made from these statistics")
    document = to_json(summary)
    document["total_speech_s"] = summary.speech_s
    document["silence_s"] = _r(stats.silence_s)
    document["speakers"] = [
        {
            **to_json(speaker),
            "share_of_speech": speaker.share,
            "share_of_audio": _r(own.share_of_audio),
            "first_start_s": _r(own.first_start_s),
            "last_end_s": _r(own.last_end_s),
        }
        for speaker, own in zip(summary.speakers, stats.speakers, strict=True)
    ]
    return document


def _length(intervals: Iterable[tuple[float, float]]) -> float:
    return sum(end - start for start, end in intervals)


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _speech_and_overlap(turns: Sequence[Turn]) -> tuple[float, float]:
    """Sweep line over turn boundaries: (time with >= 1 speaker, time with >= 2 distinct speakers).

    Counts *speakers*, not turns, so two overlapping turns of one speaker (uncleaned input) are
    not reported as overlap.
    """
    events: dict[float, list[tuple[str, int]]] = defaultdict(list)
    for turn in turns:
        events[turn.start].append((turn.speaker, +1))
        events[turn.end].append((turn.speaker, -1))
    active: dict[str, int] = defaultdict(int)
    speaking = speech = overlap = 0.0
    previous: float | None = None
    for time in sorted(events):
        if previous is not None:
            span = time - previous
            speech += span if speaking >= 1 else 0.0
            overlap += span if speaking >= 2 else 0.0
        for speaker, delta in events[time]:
            active[speaker] += delta
        speaking = sum(1 for count in active.values() if count > 0)
        previous = time
    return speech, overlap


# ------------------------------------------------------------------------------------- build_output


def build_output(
    turns: Iterable[Turn],
    summary: models.Summary,
    job_id: str,
    extra: Mapping[str, Any] | None = None,
    *,
    stats: SpeechStats,
    exclusive: Iterable[Turn] | None = None,
) -> dict[str, Any]:
    """The ``output.json`` document.

    ``segments`` keeps the exact lineage format (`turns_to_json`); ``speakers`` lists labels in
    order of first appearance. ``exclusive`` (when given) becomes ``exclusive_segments`` in the
    same format; it must not overlap and may only name speakers of ``turns``. ``extra`` (engine
    name, config, input URI...) is merged at top level but may not shadow the reserved keys, so
    consumers can rely on them. ``summary`` (made by `summarize` from ``stats``) describes the
    overlap-aware timeline; it becomes ``summary`` through `output_summary`.
    """
    extra = dict(extra or {})
    clashes = sorted(RESERVED_OUTPUT_KEYS & extra.keys())
    if clashes:
        raise ValueError(f"extra keys clash with reserved output keys: {clashes}")
    ordered = sorted(turns)
    speakers = list(dict.fromkeys(t.speaker for t in ordered))
    summarized = [s.speaker for s in summary.speakers]
    if sorted(speakers) != sorted(summarized):
        # A summary computed from a different timeline would make the document contradict itself.
        raise ValueError(f"summary speakers {summarized} do not match segment speakers {speakers}")
    document: dict[str, Any] = {"segments": turns_to_json(ordered)}
    if exclusive is not None:
        document["exclusive_segments"] = turns_to_json(_checked_exclusive(exclusive, speakers))
    return {
        **document,
        "speakers": speakers,
        "summary": output_summary(summary, stats),
        "job_id": job_id,
        **extra,
    }


def _checked_exclusive(exclusive: Iterable[Turn], speakers: Sequence[str]) -> list[Turn]:
    ordered = sorted(exclusive)
    unknown = sorted({t.speaker for t in ordered} - set(speakers))
    if unknown:
        raise ValueError(f"exclusive timeline names speakers {unknown} that are not in the segments")
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end - _EPS:
            raise ValueError(f"exclusive timeline overlaps: {before} and {after}")
    return ordered
