"""Speaker-count hints (:mod:`diarization.engines.hints`): `enforce_speaker_hints` and `speaker_bounds`.

No model is loaded: results are built from hand-made turns.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diarization.engines.base import DiarizationOptions, DiarizationResult
from diarization.engines.hints import enforce_speaker_hints, speaker_bounds
from speakerline.timeline import Turn


def make_result(
    turns: list[tuple[float, float, str]] | tuple[Turn, ...],
    exclusive: list[tuple[float, float, str]] | tuple[Turn, ...] = (),
) -> DiarizationResult:
    def as_turns(items):
        return tuple(t if isinstance(t, Turn) else Turn(*t) for t in items)

    return DiarizationResult(
        turns=as_turns(turns),
        engine="test",
        model="test-model",
        device="cpu",
        timings={"audio_s": 60.0},
        exclusive_turns=as_turns(exclusive),
    )


def intervals(turns: tuple[Turn, ...]) -> Counter[tuple[float, float]]:
    return Counter((t.start, t.end) for t in turns)


LABELS = [f"SPEAKER_{i:02d}" for i in range(8)] + ["alice", "bob", "SPEAKER_7", "spk"]


@st.composite
def timelines(draw, min_turns: int = 1, max_turns: int = 12) -> tuple[Turn, ...]:
    """Sorted turns, possibly overlapping, with random (possibly sparse) labels, no exact duplicates."""
    raw = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=600),  # start, in tenths of a second
                st.integers(min_value=1, max_value=80),  # duration, in tenths
                st.sampled_from(LABELS),
            ),
            min_size=min_turns,
            max_size=max_turns,
            unique=True,
        )
    )
    turns = {Turn(s / 10, (s + d) / 10, label) for s, d, label in raw}
    return tuple(sorted(turns, key=lambda t: (t.start, t.end, t.speaker)))


@st.composite
def one_at_a_time(draw, min_turns: int = 1, max_turns: int = 12) -> tuple[Turn, ...]:
    """Non-overlapping sorted turns (gaps may be zero), as an exclusive timeline would be."""
    raw = draw(
        st.lists(
            st.tuples(st.integers(0, 20), st.integers(1, 80), st.sampled_from(LABELS)),
            min_size=min_turns,
            max_size=max_turns,
        )
    )
    turns, now = [], 0
    for gap, duration, label in raw:
        start = now + gap
        turns.append(Turn(start / 10, (start + duration) / 10, label))
        now = start + duration
    return tuple(turns)


def check_only_labels_changed(before: DiarizationResult, after: DiarizationResult) -> None:
    """Every instant covered before is covered after (merges may only dedupe identical turns)."""
    assert set(intervals(after.turns)) == set(intervals(before.turns))
    assert len(after.turns) <= len(before.turns)
    assert all(isinstance(label, str) and label for label in after.speakers)
    assert len(set(after.speakers)) == len(after.speakers)
    assert (after.engine, after.model, after.device, after.timings) == (
        before.engine,
        before.model,
        before.device,
        before.timings,
    )


def test_speaker_bounds() -> None:
    assert speaker_bounds(DiarizationOptions()) == (0, None)
    assert speaker_bounds(DiarizationOptions(num_speakers=3)) == (3, 3)
    assert speaker_bounds(DiarizationOptions(num_speakers=3, min_speakers=1, max_speakers=5)) == (3, 3)
    assert speaker_bounds(DiarizationOptions(min_speakers=2)) == (2, None)
    assert speaker_bounds(DiarizationOptions(max_speakers=4)) == (0, 4)
    assert speaker_bounds(DiarizationOptions(min_speakers=2, max_speakers=4)) == (2, 4)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), turns=timelines())
def test_num_speakers_gives_exactly_n_labels_when_turns_allow(data, turns) -> None:
    n = data.draw(st.integers(min_value=1, max_value=len(turns)), label="num_speakers")
    before = make_result(turns, exclusive=turns)
    after = enforce_speaker_hints(before, DiarizationOptions(num_speakers=n))
    assert len(after.speakers) == n
    check_only_labels_changed(before, after)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), turns=timelines(max_turns=8))
def test_num_speakers_above_turn_count_gives_one_label_per_turn(data, turns) -> None:
    n = data.draw(st.integers(min_value=len(turns) + 1, max_value=len(turns) + 10), label="num_speakers")
    before = make_result(turns)
    after = enforce_speaker_hints(before, DiarizationOptions(num_speakers=n))
    assert len(after.speakers) == len(turns)
    assert len(after.turns) == len(turns)
    check_only_labels_changed(before, after)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), turns=timelines())
def test_min_speakers_never_violated_when_turns_allow(data, turns) -> None:
    low = data.draw(st.integers(min_value=1, max_value=len(turns)), label="min_speakers")
    before = make_result(turns)
    after = enforce_speaker_hints(before, DiarizationOptions(min_speakers=low))
    assert len(after.speakers) == max(low, len(before.speakers))
    check_only_labels_changed(before, after)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), turns=timelines())
def test_max_speakers_never_violated(data, turns) -> None:
    high = data.draw(st.integers(min_value=1, max_value=len(LABELS)), label="max_speakers")
    before = make_result(turns, exclusive=turns)
    after = enforce_speaker_hints(before, DiarizationOptions(max_speakers=high))
    assert len(after.speakers) == min(high, len(before.speakers))
    assert {t.speaker for t in after.exclusive_turns} <= set(after.speakers)
    check_only_labels_changed(before, after)
    # merging only ever maps an old label onto another old label
    assert set(after.speakers) <= set(before.speakers)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), turns=timelines())
def test_result_within_bounds_is_returned_unchanged(data, turns) -> None:
    before = make_result(turns, exclusive=turns)
    count = len(before.speakers)
    low = data.draw(st.none() | st.integers(min_value=1, max_value=count), label="min_speakers")
    high = data.draw(st.none() | st.integers(min_value=max(count, low or 1), max_value=count + 5), label="max")
    exact = data.draw(st.sampled_from([None, count]), label="num_speakers")
    options = DiarizationOptions(num_speakers=exact, min_speakers=low, max_speakers=high)
    after = enforce_speaker_hints(before, options)
    assert after == before


@settings(max_examples=200, deadline=None)
@given(data=st.data(), turns=timelines())
def test_new_labels_never_collide_and_old_turns_keep_theirs(data, turns) -> None:
    n = data.draw(st.integers(min_value=1, max_value=len(turns)), label="num_speakers")
    before = make_result(turns)
    if n <= len(before.speakers):
        return  # splitting only
    after = enforce_speaker_hints(before, DiarizationOptions(num_speakers=n))
    old = set(before.speakers)
    assert len(after.turns) == len(before.turns)
    for was, now in zip(before.turns, after.turns, strict=True):
        assert (was.start, was.end) == (now.start, now.end)
        assert now.speaker == was.speaker or now.speaker not in old
    new_labels = set(after.speakers) - old
    assert len(new_labels) == n - len(old)
    # every new label holds exactly one (moved) turn, and every old speaker keeps at least one
    assert all(sum(t.speaker == label for t in after.turns) == 1 for label in new_labels)
    assert old <= set(after.speakers)


@settings(max_examples=200, deadline=None)
@given(turns=one_at_a_time(min_turns=2))
def test_exclusive_timeline_follows_the_relabelling(turns) -> None:
    """With exclusive == turns (one speaker at a time), both timelines stay identical."""
    before = make_result(turns, exclusive=turns)
    for options in (
        DiarizationOptions(num_speakers=len(turns)),
        DiarizationOptions(min_speakers=len(turns)),
        DiarizationOptions(max_speakers=1),
    ):
        after = enforce_speaker_hints(before, options)
        assert after.exclusive_turns == after.turns


def test_shortest_turn_of_a_speaker_with_several_is_moved() -> None:
    before = make_result(
        [
            (0.0, 5.0, "SPEAKER_00"),
            (5.0, 6.0, "SPEAKER_01"),  # long-ish, SPEAKER_01 has several turns
            (6.0, 6.3, "SPEAKER_02"),  # shortest overall, but SPEAKER_02's only turn
            (7.0, 7.5, "SPEAKER_01"),  # SPEAKER_01's shortest: this one moves
            (8.0, 12.0, "SPEAKER_01"),
            (12.0, 12.6, "SPEAKER_00"),  # SPEAKER_00's shortest, but longer than 7.0-7.5
        ]
    )
    after = enforce_speaker_hints(before, DiarizationOptions(num_speakers=4))
    assert [t.speaker for t in after.turns] == [
        "SPEAKER_00",
        "SPEAKER_01",
        "SPEAKER_02",
        "SPEAKER_03",
        "SPEAKER_01",
        "SPEAKER_00",
    ]
    after = enforce_speaker_hints(before, DiarizationOptions(num_speakers=5))
    moved = {t for t in after.turns if t.speaker not in before.speakers}
    assert {(t.start, t.end) for t in moved} == {(7.0, 7.5), (12.0, 12.6)}


def test_new_label_fills_the_first_gap() -> None:
    before = make_result([(0.0, 4.0, "SPEAKER_00"), (4.0, 5.0, "SPEAKER_02"), (5.0, 9.0, "SPEAKER_02")])
    after = enforce_speaker_hints(before, DiarizationOptions(num_speakers=3))
    assert after.speakers == ("SPEAKER_00", "SPEAKER_01", "SPEAKER_02")
    assert after.turns[1] == Turn(4.0, 5.0, "SPEAKER_01")


def test_new_label_next_to_arbitrary_names() -> None:
    before = make_result([(0.0, 4.0, "alice"), (4.0, 5.0, "alice"), (5.0, 6.0, "SPEAKER_00")])
    after = enforce_speaker_hints(before, DiarizationOptions(min_speakers=3))
    assert after.turns[1] == Turn(4.0, 5.0, "SPEAKER_01")


def test_exclusive_turns_follow_a_split_where_they_coincide() -> None:
    # overlap-aware: B talks over A's long turn; A comes back briefly at 12 s
    before = make_result(
        [(0.0, 10.0, "A"), (2.0, 3.0, "B"), (12.0, 13.0, "A")],
        exclusive=[(0.0, 2.0, "A"), (2.0, 3.0, "B"), (3.0, 10.0, "A"), (12.0, 13.0, "A")],
    )
    after = enforce_speaker_hints(before, DiarizationOptions(num_speakers=3))
    assert after.turns == (
        Turn(0.0, 10.0, "A"),
        Turn(2.0, 3.0, "B"),
        Turn(12.0, 13.0, "SPEAKER_00"),
    )
    assert after.exclusive_turns == (
        Turn(0.0, 2.0, "A"),
        Turn(2.0, 3.0, "B"),
        Turn(3.0, 10.0, "A"),
        Turn(12.0, 13.0, "SPEAKER_00"),
    )


def test_too_many_speakers_merge_the_quietest_into_the_loudest() -> None:
    before = make_result(
        [(0.0, 10.0, "A"), (10.0, 11.0, "B"), (11.0, 16.0, "C"), (16.0, 16.5, "B"), (16.5, 20.0, "A")],
        exclusive=[(0.0, 10.0, "A"), (10.0, 11.0, "B"), (11.0, 16.0, "C"), (16.0, 16.5, "B"), (16.5, 20.0, "A")],
    )
    after = enforce_speaker_hints(before, DiarizationOptions(max_speakers=2))
    expected = (
        Turn(0.0, 10.0, "A"),
        Turn(10.0, 11.0, "A"),
        Turn(11.0, 16.0, "C"),
        Turn(16.0, 16.5, "A"),
        Turn(16.5, 20.0, "A"),
    )
    assert after.turns == expected
    assert after.exclusive_turns == expected
    after = enforce_speaker_hints(before, DiarizationOptions(num_speakers=1))
    assert after.speakers == ("A",)


def test_merge_dedupes_turns_that_become_identical() -> None:
    # B and C say the same thing at the same time (an echo); merging C into A leaves one turn there
    before = make_result([(0.0, 10.0, "A"), (10.0, 11.0, "A"), (10.0, 11.0, "C"), (11.0, 14.0, "B")])
    after = enforce_speaker_hints(before, DiarizationOptions(max_speakers=2))
    assert after.turns == (Turn(0.0, 10.0, "A"), Turn(10.0, 11.0, "A"), Turn(11.0, 14.0, "B"))


def test_single_turns_cannot_be_split_further() -> None:
    before = make_result([(0.0, 1.0, "A"), (1.0, 2.0, "B")])
    assert enforce_speaker_hints(before, DiarizationOptions(num_speakers=5)) == before
    empty = make_result([])
    assert enforce_speaker_hints(empty, DiarizationOptions(num_speakers=2)) == empty


DUPLICATE_TURNS_SCRIPT = """
from diarization.engines.base import DiarizationOptions, DiarizationResult
from speakerline.timeline import Turn
from diarization.engines.hints import enforce_speaker_hints

turns = (Turn(0.0, 1.0, "A"), Turn(0.0, 1.0, "A"))
result = DiarizationResult(turns=turns, engine="test", model="m", device="cpu")
print(len(enforce_speaker_hints(result, DiarizationOptions(num_speakers=2)).speakers))
"""


def test_identical_duplicate_turns_do_not_hang() -> None:
    # in a subprocess: interrupting the endless loop in-process can crash pytest's reporting. The limit covers a fresh
    # interpreter's imports too, which took over 3 s on a loaded machine (a coverage run): a hang never returns.
    try:
        done = subprocess.run(
            [sys.executable, "-c", DUPLICATE_TURNS_SCRIPT], capture_output=True, text=True, timeout=60, check=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail("enforce_speaker_hints did not return within 60 s")
    assert done.stdout.strip() == "2"
