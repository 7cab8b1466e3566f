"""The speaker options of a job (`num_speakers`, or a `min_speakers`/`max_speakers` range), the one rule of what
makes them wrong and its one wording. The API (its request schema), ingest (object metadata), the engines and the
CLI ask `problems`; the CLI has the options named as its flags."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from speakerline.uploads import MAX_SPEAKERS, MIN_SPEAKERS, NUM_SPEAKERS

#: The range of every speaker count (the event schema's bounds).
FEWEST: Final = 1
MOST: Final = 32


class Problem(StrEnum):
    #: a count outside FEWEST..MOST (the message says which)
    OUT_OF_RANGE = "out_of_range"
    #: num_speakers together with a min/max range
    COUNT_AND_RANGE = "count_and_range"
    #: min_speakers greater than max_speakers
    MIN_ABOVE_MAX = "min_above_max"


@dataclass(frozen=True)
class OptionsProblem:
    problem: Problem
    #: what is wrong, each option named as the caller's audience writes it ("num_speakers=40 is outside 1..32")
    message: str


def problems(
    num_speakers: int | None,
    min_speakers: int | None,
    max_speakers: int | None,
    *,
    fewest: int | None = FEWEST,
    most: int | None = MOST,
    named: Callable[[str], str] = str,
) -> list[OptionsProblem]:
    """Everything wrong with these options, in the order a caller reports them (each count's range, then
    count-and-range, then min above max); empty when they are fine. `fewest`/`most` None: that bound unchecked.
    `named`: an option's name in the messages (the CLI's flags)."""
    found: list[OptionsProblem] = []
    counts = ((NUM_SPEAKERS, num_speakers), (MIN_SPEAKERS, min_speakers), (MAX_SPEAKERS, max_speakers))
    for key, value in counts:
        if value is None:
            continue
        if (fewest is not None and value < fewest) or (most is not None and value > most):
            if most is None:
                allowed = f"below {fewest}"
            elif fewest is None:
                allowed = f"above {most}"
            else:
                allowed = f"outside {fewest}..{most}"
            found.append(OptionsProblem(Problem.OUT_OF_RANGE, f"{named(key)}={value} is {allowed}"))
    if num_speakers is not None and (min_speakers is not None or max_speakers is not None):
        message = f"give {named(NUM_SPEAKERS)} or a {named(MIN_SPEAKERS)}/{named(MAX_SPEAKERS)} range, not both"
        found.append(OptionsProblem(Problem.COUNT_AND_RANGE, message))
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        message = f"{named(MIN_SPEAKERS)}={min_speakers} is greater than {named(MAX_SPEAKERS)}={max_speakers}"
        found.append(OptionsProblem(Problem.MIN_ABOVE_MAX, message))
    return found


def given(num_speakers: int | None, min_speakers: int | None, max_speakers: int | None) -> dict[str, int]:
    """The options that are set, by name (the shape of object metadata and of the events' `options`)."""
    options = {NUM_SPEAKERS: num_speakers, MIN_SPEAKERS: min_speakers, MAX_SPEAKERS: max_speakers}
    return {key: value for key, value in options.items() if value is not None}
