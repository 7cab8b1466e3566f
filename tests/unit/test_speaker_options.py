import pytest

from speakerline.speaker_options import MOST, OptionsProblem, Problem, given, problems

COUNT_AND_RANGE = "give num_speakers or a min_speakers/max_speakers range, not both"


def test_a_count_or_a_range_is_fine() -> None:
    assert problems(3, None, None) == []
    assert problems(None, 2, 5) == []
    assert problems(None, 4, 4) == []
    assert problems(None, None, None) == []


@pytest.mark.parametrize(
    ("num", "low", "high", "expected"),
    [
        (0, None, None, [OptionsProblem(Problem.OUT_OF_RANGE, "num_speakers=0 is outside 1..32")]),
        (
            None,
            1,
            MOST + 1,
            [OptionsProblem(Problem.OUT_OF_RANGE, "max_speakers=33 is outside 1..32")],
        ),
        (2, 1, None, [OptionsProblem(Problem.COUNT_AND_RANGE, COUNT_AND_RANGE)]),
        (None, 5, 2, [OptionsProblem(Problem.MIN_ABOVE_MAX, "min_speakers=5 is greater than max_speakers=2")]),
        (
            40,
            5,
            2,
            [
                OptionsProblem(Problem.OUT_OF_RANGE, "num_speakers=40 is outside 1..32"),
                OptionsProblem(Problem.COUNT_AND_RANGE, COUNT_AND_RANGE),
                OptionsProblem(Problem.MIN_ABOVE_MAX, "min_speakers=5 is greater than max_speakers=2"),
            ],
        ),
    ],
)
def test_every_problem_in_the_order_callers_report_them(
    num: int | None, low: int | None, high: int | None, expected: list[OptionsProblem]
) -> None:
    assert problems(num, low, high) == expected


def test_a_bound_left_out_is_not_checked() -> None:
    assert problems(100, None, None, most=None) == []
    assert problems(0, None, None, fewest=None) == []
    assert problems(0, None, None, most=None) == [OptionsProblem(Problem.OUT_OF_RANGE, "num_speakers=0 is below 1")]
    assert problems(40, None, None, fewest=None)[0].message == "num_speakers=40 is above 32"


def test_given_keeps_the_options_that_are_set() -> None:
    assert given(None, 2, None) == {"min_speakers": 2}
    assert given(3, None, None) == {"num_speakers": 3}
    assert given(None, None, None) == {}


def test_the_cli_words_the_rule_with_its_flags_and_leaves_ranges_to_ingest() -> None:
    from speakerline_tools import client

    assert client.speaker_options(None, 2, 4) == {"min_speakers": 2, "max_speakers": 4}
    assert client.speaker_options(40, None, None) == {"num_speakers": 40}  # ingest rejects it, with its reason
    with pytest.raises(ValueError, match="give --num-speakers or a --min-speakers/--max-speakers range, not both"):
        client.speaker_options(2, 1, None)
    with pytest.raises(ValueError, match="--min-speakers=5 is greater than --max-speakers=2"):
        client.speaker_options(None, 5, 2)
