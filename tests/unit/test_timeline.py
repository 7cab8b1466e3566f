import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speakerline.timeline import (
    Turn,
    exclusive_timeline,
    merge_turns,
    parse_rttm,
    speaker_label,
    to_rttm,
    to_webvtt,
    turns_from_json,
    turns_to_json,
)

# Millisecond-grid times: the formats round to 3 decimals, so round-trips are exact on this grid.
ms_times = st.integers(min_value=0, max_value=10_000_000).map(lambda ms: ms / 1000)
speakers = st.sampled_from(["SPEAKER_00", "SPEAKER_01", "spk_b", "x"])


@st.composite
def turns_strategy(draw: st.DrawFn) -> Turn:
    start = draw(ms_times)
    length = draw(st.integers(min_value=0, max_value=600_000)) / 1000
    return Turn(start, round(start + length, 3), draw(speakers))


turn_lists = st.lists(turns_strategy(), max_size=30)


# ---------------------------------------------------------------------------------------------- Turn


def test_turn_duration_and_order():
    a = Turn(1.0, 2.5, "B")
    b = Turn(1.0, 2.0, "A")
    assert a.duration == pytest.approx(1.5)
    assert sorted([a, b]) == [b, a]


@pytest.mark.parametrize(
    ("start", "end", "speaker"),
    [(2.0, 1.0, "A"), (-1.0, 1.0, "A"), (math.nan, 1.0, "A"), (0.0, math.inf, "A"), (0.0, 1.0, "")],
)
def test_turn_rejects_invalid_values(start, end, speaker):
    with pytest.raises(ValueError):
        Turn(start, end, speaker)


# ---------------------------------------------------------------------------------------------- RTTM


def test_to_rttm_exact_format():
    text = to_rttm([Turn(3.25, 4.0, "SPEAKER_01"), Turn(0.5, 1.2345, "SPEAKER_00")], "meeting")
    assert text == (
        "SPEAKER meeting 1 0.500 0.734 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
        "SPEAKER meeting 1 3.250 0.750 <NA> <NA> SPEAKER_01 <NA> <NA>\n"
    )


def test_to_rttm_empty_and_invalid_ids():
    assert to_rttm([], "f") == ""
    with pytest.raises(ValueError):
        to_rttm([], "two words")
    with pytest.raises(ValueError, match="whitespace"):
        to_rttm([Turn(0, 1, "Ada Lovelace")], "f")


def test_parse_rttm_skips_blank_comments_and_other_types():
    text = (
        "# produced by pyannote\n"
        "\n"
        ";; NIST style comment\n"
        "SPKR-INFO meeting 1 <NA> <NA> <NA> unknown SPEAKER_00 <NA> <NA>\n"
        "SPEAKER meeting 1 3.000 1.000 <NA> <NA> B <NA> <NA>\n"
        "  SPEAKER meeting 1 0.500 2.000 <NA> <NA> A <NA> <NA>  \n"
        "SPEAKER other 1 0 1 <NA> <NA> A\n"  # 8 fields: confidence/lookahead omitted
    )
    assert parse_rttm(text) == {
        "meeting": [Turn(0.5, 2.5, "A"), Turn(3.0, 4.0, "B")],
        "other": [Turn(0.0, 1.0, "A")],
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("SPEAKER f 1 0.0 1.0 <NA> <NA>", "at least 8 fields"),
        ("SPEAKER f 1 abc 1.0 <NA> <NA> A <NA> <NA>", "must be numbers"),
        ("SPEAKER f 1 0.0 -1.0 <NA> <NA> A <NA> <NA>", "invalid"),
        ("SPEAKER f 1 nan 1.0 <NA> <NA> A <NA> <NA>", "invalid"),
        ("SPEAKER f 1 -2.0 1.0 <NA> <NA> A <NA> <NA>", ">= 0"),
    ],
)
def test_parse_rttm_reports_line_number(line, message):
    text = "SPEAKER f 1 0.0 1.0 <NA> <NA> A <NA> <NA>\n\n" + line + "\n"
    with pytest.raises(ValueError, match=rf"line 3: .*{message}"):
        parse_rttm(text)


@given(turn_lists)
def test_rttm_round_trip(turns):
    parsed = parse_rttm(to_rttm(turns, "file"))
    back = parsed.get("file", [])
    assert len(back) == len(turns)
    for original, read in zip(sorted(turns), back, strict=True):
        assert read.speaker == original.speaker
        assert read.start == pytest.approx(original.start, abs=1e-9)
        assert read.end == pytest.approx(original.end, abs=1.1e-3)


# -------------------------------------------------------------------------------------------- WebVTT


def test_to_webvtt_exact_format():
    vtt = to_webvtt([Turn(3725.5, 3726.0, "SPEAKER_01"), Turn(0.0, 1.2345, "SPEAKER_00")])
    assert vtt == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.234\n<v SPEAKER_00>SPEAKER_00\n\n"
        "01:02:05.500 --> 01:02:06.000\n<v SPEAKER_01>SPEAKER_01\n"
    )


def test_to_webvtt_escapes_and_skips_empty_cues():
    vtt = to_webvtt([Turn(1.0, 1.0002, "A"), Turn(2.0, 3.0, "<b>&co")])
    assert vtt == "WEBVTT\n\n00:00:02.000 --> 00:00:03.000\n<v &lt;b&gt;&amp;co>&lt;b&gt;&amp;co\n"
    assert to_webvtt([]) == "WEBVTT\n\n"


def test_to_webvtt_hours_beyond_99():
    assert "100:00:00.000 --> 100:00:01.000" in to_webvtt([Turn(360_000.0, 360_001.0, "A")])


@given(turn_lists)
def test_webvtt_one_cue_per_nonempty_turn(turns):
    vtt = to_webvtt(turns)
    assert vtt.startswith("WEBVTT\n\n")
    expected = sum(1 for t in turns if round(t.end * 1000) > round(t.start * 1000))
    assert vtt.count(" --> ") == expected


# ---------------------------------------------------------------------------------------------- JSON


def test_turns_to_json_lineage_format():
    assert turns_to_json([Turn(1.23456, 2.0004, "SPEAKER_00")]) == [
        {"speaker": "SPEAKER_00", "start": 1.235, "end": 2.0, "duration": 0.765}
    ]


@given(turn_lists)
def test_json_round_trip(turns):
    doc = turns_to_json(turns)
    assert [list(item) for item in doc] == [["speaker", "start", "end", "duration"]] * len(turns)
    assert turns_from_json(doc) == sorted(turns)


def test_turns_from_json_duration_optional():
    assert turns_from_json([{"speaker": "A", "start": 0, "end": 1}]) == [Turn(0.0, 1.0, "A")]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"start": 0, "end": 1}, "'speaker'"),
        ({"speaker": "A", "start": "0", "end": 1}, "'start' must be a number"),
        ({"speaker": "A", "start": True, "end": 1}, "'start' must be a number"),
        ({"speaker": "A", "start": 2, "end": 1}, "before its start"),
        ({"speaker": "A", "start": 0, "end": 1, "duration": 2}, "disagrees"),
        ("not an object", "expected an object"),
    ],
)
def test_turns_from_json_errors_name_the_segment(item, message):
    with pytest.raises(ValueError, match=rf"segment 1: .*{message}"):
        turns_from_json([{"speaker": "A", "start": 0, "end": 1}, item])


# ----------------------------------------------------------------------------------------- exclusive


def test_exclusive_backchannel_inside_a_long_turn_goes_to_the_long_turn_speaker():
    turns = [Turn(0, 10, "A"), Turn(3, 3.5, "B")]
    assert exclusive_timeline(turns) == [Turn(0, 10, "A")]


def test_exclusive_overlap_goes_to_the_longer_enclosing_turn():
    # B's interjection starts just before A's long turn: A keeps its opening words.
    assert exclusive_timeline([Turn(9.8, 10.5, "B"), Turn(10, 30, "A")]) == [Turn(9.8, 10, "B"), Turn(10, 30, "A")]
    # A handover: the longer turn keeps the overlap, the shorter one is trimmed, never split.
    assert exclusive_timeline([Turn(0, 5, "A"), Turn(4, 12, "B")]) == [Turn(0, 4, "A"), Turn(4, 12, "B")]


def test_exclusive_enclosing_turn_is_the_speakers_joined_turns():
    # A's two touching turns form one 6 s stretch, longer than B's 5 s turn: A wins the overlap.
    turns = [Turn(0, 3, "A"), Turn(3, 6, "A"), Turn(5, 10, "B")]
    assert exclusive_timeline(turns) == [Turn(0, 6, "A"), Turn(6, 10, "B")]


def test_exclusive_ties_go_to_the_earlier_start_then_the_smaller_label():
    assert exclusive_timeline([Turn(1, 3, "A"), Turn(0, 2, "B")]) == [Turn(0, 2, "B"), Turn(2, 3, "A")]
    assert exclusive_timeline([Turn(0, 2, "B"), Turn(0, 2, "A")]) == [Turn(0, 2, "A")]


def test_exclusive_three_speakers_and_silence():
    turns = [Turn(0, 4, "A"), Turn(1, 2, "B"), Turn(3.5, 9, "C"), Turn(8, 8.5, "A"), Turn(12, 13, "B")]
    assert exclusive_timeline(turns) == [Turn(0, 3.5, "A"), Turn(3.5, 9, "C"), Turn(12, 13, "B")]


def test_exclusive_of_exclusive_input_is_unchanged_and_zero_length_turns_vanish():
    exclusive = [Turn(0, 1, "A"), Turn(1, 2, "B"), Turn(2.5, 3, "A")]
    assert exclusive_timeline(exclusive) == exclusive
    assert exclusive_timeline([Turn(1, 1, "A")]) == []
    assert exclusive_timeline([]) == []


ms_turn_lists = st.lists(
    st.builds(
        lambda start, length, speaker: Turn(start / 1000, (start + length) / 1000, speaker),
        st.integers(0, 20_000),
        st.integers(0, 5_000),
        st.sampled_from(["a", "b", "c", "d"]),
    ),
    max_size=25,
)


def _enclosing_ms(turns: list[Turn], speaker: str, at_ms: float) -> tuple[int, int] | None:
    """The test's own oracle: the joined stretch of `speaker`'s turns containing `at_ms`, in integer ms."""
    spans = sorted((round(t.start * 1000), round(t.end * 1000)) for t in turns if t.speaker == speaker)
    joined: list[list[int]] = []
    for lo, hi in spans:
        if hi == lo:
            continue
        if joined and lo <= joined[-1][1]:
            joined[-1][1] = max(joined[-1][1], hi)
        else:
            joined.append([lo, hi])
    return next(((lo, hi) for lo, hi in joined if lo < at_ms < hi), None)


@given(ms_turn_lists)
def test_exclusive_properties(turns):
    out = exclusive_timeline(turns)
    assert out == sorted(out) and all(t.end > t.start for t in out)
    points = sorted({round(t * 1000) for turn in [*turns, *out] for t in (turn.start, turn.end)})
    for lo, hi in itertools.pairwise(points):
        mid = (lo + hi) / 2
        active = {t.speaker for t in turns if t.start * 1000 < mid < t.end * 1000}
        chosen = [t.speaker for t in out if t.start * 1000 < mid < t.end * 1000]
        # Never overlaps, covers exactly the union of speech, and only gives an instant to an active speaker.
        assert len(chosen) == (1 if active else 0), (mid, active, chosen)
        if active:
            (speaker,) = chosen
            assert speaker in active
            # ... and the one whose enclosing stretch is the longest (ties: earlier start, then label).
            stretches = {s: _enclosing_ms(turns, s, mid) for s in active}
            best = min(active, key=lambda s: (-(stretches[s][1] - stretches[s][0]), stretches[s][0], s))
            assert speaker == best
    for speaker in {t.speaker for t in out}:
        pieces = [t for t in out if t.speaker == speaker]
        own = exclusive_timeline([t for t in turns if t.speaker == speaker])  # the speaker's stretches
        assert len(pieces) <= len(own)  # no stretch is ever fragmented
    assert exclusive_timeline(out) == out


def test_merge_turns_joins_a_speakers_touching_and_overlapping_turns():
    turns = [Turn(100.0, 120.0, "A"), Turn(120.0, 125.5, "A"), Turn(119.0, 121.0, "B")]
    assert merge_turns(turns) == [Turn(100.0, 125.5, "A"), Turn(119.0, 121.0, "B")]
    assert merge_turns([Turn(0, 1, "A"), Turn(1.5, 2, "A")]) == [Turn(0, 1, "A"), Turn(1.5, 2, "A")]
    assert merge_turns([Turn(0, 5, "A"), Turn(1, 2, "A")]) == [Turn(0, 5, "A")]


def test_speaker_labels_are_zero_padded():
    assert [speaker_label(i) for i in (0, 7, 12)] == ["SPEAKER_00", "SPEAKER_07", "SPEAKER_12"]
    assert speaker_label(3, width=3) == "SPEAKER_003"
