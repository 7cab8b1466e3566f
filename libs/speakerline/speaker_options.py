"""The speaker options of a job (`num_speakers`, or a `min_speakers`/`max_speakers` range) and the one rule of
what makes them wrong. The API (its request schema), ingest (object metadata), the engines and the CLI ask
`problems` and word the answer for their own audience: a flag, a metadata key, a JSON field."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from speakerline.uploads import MAX_SPEAKERS, MIN_SPEAKERS, NUM_SPEAKERS

#: The range of every speaker count (the event schema's bounds).
FEWEST: Final = 1
MOST: Final = 32


class Problem(StrEnum):
    #: a count outside FEWEST..MOST (`key` and `value` say which)
    OUT_OF_RANGE = "out_of_range"
    #: num_speakers together with a min/max range
    COUNT_AND_RANGE = "count_and_range"
    #: min_speakers greater than max_speakers
    MIN_ABOVE_MAX = "min_above_max"


@dataclass(frozen=True)
class OptionsProblem:
    problem: Problem
    #: the option at fault, for OUT_OF_RANGE ("num_speakers", ...)
    key: str = ""
    value: int = 0


def problems(
    num_speakers: int | None,
    min_speakers: int | None,
    max_speakers: int | None,
    *,
    fewest: int | None = FEWEST,
    most: int | None = MOST,
) -> list[OptionsProblem]:
    """Everything wrong with these options, in the order a caller reports them (each count's range, then
    count-and-range, then min above max); empty when they are fine. `fewest`/`most` None: that bound unchecked."""
    found: list[OptionsProblem] = []
    counts = ((NUM_SPEAKERS, num_speakers), (MIN_SPEAKERS, min_speakers), (MAX_SPEAKERS, max_speakers))
    for key, value in counts:
        if value is None:
            continue
        if (fewest is not None and value < fewest) or (most is not None and value > most):
            found.append(OptionsProblem(Problem.OUT_OF_RANGE, key, value))
    if num_speakers is not None and (min_speakers is not None or max_speakers is not None):
        found.append(OptionsProblem(Problem.COUNT_AND_RANGE))
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        found.append(OptionsProblem(Problem.MIN_ABOVE_MAX))
    return found


def given(num_speakers: int | None, min_speakers: int | None, max_speakers: int | None) -> dict[str, int]:
    """The options that are set, by name (the shape of object metadata and of the events' `options`)."""
    options = {NUM_SPEAKERS: num_speakers, MIN_SPEAKERS: min_speakers, MAX_SPEAKERS: max_speakers}
    return {key: value for key, value in options.items() if value is not None}
