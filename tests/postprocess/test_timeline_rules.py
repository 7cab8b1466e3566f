import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postprocess.timeline_rules import (
    PostprocessConfig,
    SpeechStats,
    build_output,
    clean,
    clean_exclusive,
    clean_with_labels,
    derive_exclusive,
    output_summary,
    speech_stats,
    summarize,
)
from speakerline import events
from speakerline.events import models
from speakerline.timeline import Turn, exclusive_timeline

ms_times = st.integers(min_value=0, max_value=120_000).map(lambda ms: ms / 1000)


@st.composite
def turn_st(draw: st.DrawFn) -> Turn:
    start = draw(ms_times)
    length = draw(st.integers(min_value=0, max_value=5_000)) / 1000
    return Turn(start, round(start + length, 3), draw(st.sampled_from(["a", "b", "c", "d"])))


turn_lists = st.lists(turn_st(), max_size=40)
configs = st.builds(
    PostprocessConfig,
    merge_gap_s=st.sampled_from([0.0, 0.25, 0.5, 2.0]),
    min_segment_s=st.sampled_from([0.0, 0.3, 1.0]),
)


def T(start: float, end: float, speaker: str) -> Turn:
    return Turn(start, end, speaker)


# --------------------------------------------------------------------------------------------- config


def test_config_validation():
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError):
            PostprocessConfig(merge_gap_s=bad)
        with pytest.raises(ValueError):
            PostprocessConfig(min_segment_s=bad)


# ---------------------------------------------------------------------------------------------- clean


def test_clean_merges_small_gaps_and_overlaps():
    turns = [T(0, 1, "x"), T(1.4, 2, "x"), T(1.9, 3, "x"), T(5, 6, "x")]
    assert clean(turns) == [T(0, 3, "SPEAKER_00"), T(5, 6, "SPEAKER_00")]


def test_clean_gap_boundary_is_inclusive_despite_float_noise():
    # 0.7 - 0.2 == 0.49999999999999994 and 1.2 - 0.7 == 0.5 (+ noise): both are a 0.5 s gap.
    assert clean([T(0, 0.2, "x"), T(0.7, 1.2, "x"), T(1.7, 2.0, "x")]) == [T(0, 2.0, "SPEAKER_00")]


def test_clean_does_not_bridge_a_gap_where_someone_else_talks():
    turns = [T(0, 1, "a"), T(1.05, 1.4, "b"), T(1.45, 3, "a")]
    assert clean(turns) == [T(0, 1, "SPEAKER_00"), T(1.05, 1.4, "SPEAKER_01"), T(1.45, 3, "SPEAKER_00")]


def test_clean_bridges_gap_when_other_speech_is_outside_it():
    # b's backchannel lies inside a's first turn, not in the gap: a's turns still merge.
    turns = [T(0, 5, "a"), T(3, 3.5, "b"), T(5.2, 8, "a")]
    assert clean(turns) == [T(0, 8, "SPEAKER_00"), T(3, 3.5, "SPEAKER_01")]


def test_clean_drops_blips_after_merging():
    # Three 0.2 s fragments form one 0.8 s turn and survive; the isolated 0.1 s cough does not.
    turns = [T(0, 0.2, "a"), T(0.3, 0.5, "a"), T(0.6, 0.8, "a"), T(5, 5.1, "a"), T(2, 4, "b")]
    assert clean(turns) == [T(0, 0.8, "SPEAKER_00"), T(2, 4, "SPEAKER_01")]


def test_clean_keeps_backchannel_only_speaker_with_enough_total_time():
    turns = [T(0, 10, "main"), T(2, 2.2, "mhm"), T(5, 5.2, "mhm"), T(20, 20.1, "ghost")]
    assert clean(turns) == [T(0, 10, "SPEAKER_00"), T(2, 2.2, "SPEAKER_01"), T(5, 5.2, "SPEAKER_01")]


def test_clean_merges_once_a_dropped_blip_no_longer_blocks_the_gap():
    turns = [T(0, 1, "a"), T(1.1, 1.2, "b"), T(1.3, 2, "a")]
    assert clean(turns) == [T(0, 2, "SPEAKER_00")]


def test_clean_relabels_by_first_appearance_deterministically():
    turns = [T(5, 6, "spk9"), T(0, 1, "spk3"), T(2, 3, "spk9"), T(7, 8, "spk1")]
    assert [t.speaker for t in clean(turns)] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_01", "SPEAKER_02"]


def test_clean_label_width_grows_past_100_speakers():
    turns = [T(i * 10, i * 10 + 1, f"s{i}") for i in range(120)]
    labels = [t.speaker for t in clean(turns)]
    assert labels[0] == "SPEAKER_000" and labels[-1] == "SPEAKER_119"
    assert clean(clean(turns)) == clean(turns)


def test_clean_empty():
    assert clean([]) == []


@settings(max_examples=300)
@given(turn_lists, configs)
def test_clean_properties(turns, config):
    cleaned = clean(turns, config)
    assert cleaned == sorted(cleaned)
    assert clean(cleaned, config) == cleaned  # idempotent
    by_speaker: dict[str, list[Turn]] = {}
    for turn in cleaned:
        by_speaker.setdefault(turn.speaker, []).append(turn)
    for own in by_speaker.values():
        for first, second in itertools.pairwise(own):
            assert second.start > first.end  # no same-speaker overlap or contact left
    n = len(by_speaker)
    width = max(2, len(str(n - 1)))
    assert set(by_speaker) == {f"SPEAKER_{i:0{width}d}" for i in range(n)}
    first_seen = list(dict.fromkeys(t.speaker for t in cleaned))
    assert first_seen == sorted(first_seen)
    # Cleaning never invents speech outside what the input covered (plus bridged gaps).
    if turns:
        assert min(t.start for t in cleaned or turns) >= min(t.start for t in turns)
        assert max(t.end for t in cleaned or turns) <= max(t.end for t in turns)
    for turn in cleaned:
        is_blip = turn.duration < config.min_segment_s - 1e-9
        if is_blip:  # only backchannel-only speakers keep short turns
            assert all(t.duration < config.min_segment_s - 1e-9 for t in by_speaker[turn.speaker])


# ------------------------------------------------------------------------------------------ exclusive


def _assert_exclusive(turns: list[Turn]) -> None:
    assert turns == sorted(turns)
    for before, after in itertools.pairwise(turns):
        assert after.start >= before.end, (before, after)


def test_clean_with_labels_is_clean_plus_the_mapping_it_applied():
    turns = [T(0, 0.1, "ghost"), T(1, 3, "spk_b"), T(4, 6, "spk_a")]  # the ghost is a phantom speaker
    cleaned, labels = clean_with_labels(turns)
    assert cleaned == clean(turns) == [T(1, 3, "SPEAKER_00"), T(4, 6, "SPEAKER_01")]
    assert labels == {"spk_b": "SPEAKER_00", "spk_a": "SPEAKER_01"}


def test_clean_exclusive_uses_the_segments_labels_and_drops_speakers_they_lack():
    labels = {"spk_b": "SPEAKER_00", "spk_a": "SPEAKER_01"}
    exclusive = [T(0, 0.5, "ghost"), T(1, 3, "spk_b"), T(3, 6, "spk_a"), T(6, 7, "only_in_exclusive")]
    # spk_a comes first here in no way that matters: the labels are the segments', not recomputed.
    assert clean_exclusive(exclusive, labels) == [T(1, 3, "SPEAKER_00"), T(3, 6, "SPEAKER_01")]
    assert clean_exclusive([T(0, 2, "spk_a"), T(2, 3, "spk_b")], labels) == [
        T(0, 2, "SPEAKER_01"),
        T(2, 3, "SPEAKER_00"),
    ]


def test_clean_exclusive_merges_and_drops_blips_like_clean_but_stays_exclusive():
    labels = {"a": "SPEAKER_00", "b": "SPEAKER_01"}
    # a's 0.4 s pause is bridged; b's 0.1 s sliver is a blip, and once gone a's next gap is empty: bridged too.
    exclusive = [T(0, 2, "a"), T(2.4, 4, "a"), T(4, 4.1, "b"), T(4.3, 6, "a"), T(6, 9, "b")]
    assert clean_exclusive(exclusive, labels) == [T(0, 6, "SPEAKER_00"), T(6, 9, "SPEAKER_01")]
    # A gap with someone else in it is not bridged (that would overlap them).
    exclusive = [T(0, 2, "a"), T(2, 2.4, "b"), T(2.4, 4, "a"), T(5, 6, "b")]
    assert clean_exclusive(exclusive, labels) == [
        T(0, 2, "SPEAKER_00"),
        T(2, 2.4, "SPEAKER_01"),
        T(2.4, 4, "SPEAKER_00"),
        T(5, 6, "SPEAKER_01"),
    ]


def test_clean_exclusive_resolves_an_engines_rounding_overlap():
    labels = {"a": "SPEAKER_00", "b": "SPEAKER_01"}
    assert clean_exclusive([T(0, 2.001, "a"), T(2, 5, "b")], labels) == [T(0, 2, "SPEAKER_00"), T(2, 5, "SPEAKER_01")]


def test_derive_exclusive_gives_a_backchannel_to_the_long_turn_speaker():
    cleaned = clean([T(0, 10, "a"), T(3, 3.6, "b"), T(9.5, 25, "b"), T(24, 26, "a")])
    assert cleaned == [
        T(0, 10, "SPEAKER_00"),
        T(3, 3.6, "SPEAKER_01"),
        T(9.5, 25, "SPEAKER_01"),
        T(24, 26, "SPEAKER_00"),
    ]
    # b's "mm-hm" disappears inside a's turn; in each handover the longer turn keeps the overlap: b's 15.5 s
    # over a's 10 s, then b's over a's 2 s.
    assert derive_exclusive(cleaned) == [T(0, 9.5, "SPEAKER_00"), T(9.5, 25, "SPEAKER_01"), T(25, 26, "SPEAKER_00")]
    assert derive_exclusive([]) == []


exclusive_inputs = turn_lists.map(exclusive_timeline)
raw_speakers = st.sets(st.sampled_from(["a", "b", "c", "d"]))


@settings(max_examples=200)
@given(turn_lists, exclusive_inputs, configs)
def test_clean_exclusive_properties(turns, exclusive, config):
    cleaned, labels = clean_with_labels(turns, config)
    out = clean_exclusive(exclusive, labels, config)
    _assert_exclusive(out)
    assert {t.speaker for t in out} <= {t.speaker for t in cleaned}  # the segments' speakers, same names
    identity = {name: name for name in labels.values()}
    assert clean_exclusive(out, identity, config) == out  # idempotent
    # A turn long enough to survive is never lost: it lies inside an output turn of its (mapped) speaker.
    for turn in exclusive:
        if turn.speaker in labels and turn.duration >= config.min_segment_s:
            name = labels[turn.speaker]
            assert any(o.speaker == name and o.start <= turn.start and turn.end <= o.end for o in out), turn


@settings(max_examples=200)
@given(turn_lists, configs)
def test_derive_exclusive_properties(turns, config):
    cleaned = clean(turns, config)
    out = derive_exclusive(cleaned, config)
    _assert_exclusive(out)
    assert {t.speaker for t in out} <= {t.speaker for t in cleaned}
    assert derive_exclusive(out, config) == out
    # Solo speech long enough to survive keeps its speaker.
    for turn in exclusive_timeline(cleaned):
        if turn.duration >= config.min_segment_s:
            assert any(o.speaker == turn.speaker and o.start <= turn.start and turn.end <= o.end for o in out)


# ------------------------------------------------------------------------------------------ summarize


def test_summarize_example():
    turns = [T(0, 4, "A"), T(3, 6, "B"), T(8, 10, "A")]
    summary = speech_stats(turns, 12.0)
    assert summary.num_speakers == 2
    assert summary.total_speech_s == pytest.approx(8)
    assert summary.overlap_s == pytest.approx(1)
    assert summary.silence_s == pytest.approx(4)
    a, b = summary.speakers
    assert (a.speaker, a.talk_time_s, a.num_segments, a.first_start_s, a.last_end_s) == ("A", 6, 2, 0, 10)
    assert a.share_of_speech == pytest.approx(6 / 9)
    assert b.share_of_audio == pytest.approx(3 / 12)
    # The job's summary (job.completed's) is the contract's Summary, rounded; output.json's is that summary plus
    # the older names of its figures (total_speech_s, share_of_speech) and output.json's own figures.
    contract = summarize(summary, num_exclusive_segments=4)
    assert isinstance(contract, models.Summary)
    assert events.to_json(contract) == {
        "duration_s": 12.0,
        "num_speakers": 2,
        "num_segments": 3,
        "num_exclusive_segments": 4,
        "speech_s": 8.0,
        "overlap_s": 1.0,
        "speakers": [
            {"speaker": "A", "talk_time_s": 6.0, "share": 0.667, "num_segments": 2},
            {"speaker": "B", "talk_time_s": 3.0, "share": 0.333, "num_segments": 1},
        ],
    }
    assert output_summary(summarize(summary), summary) == {
        "duration_s": 12.0,
        "num_segments": 3,
        "speech_s": 8.0,
        "total_speech_s": 8.0,
        "overlap_s": 1.0,
        "silence_s": 4.0,
        "num_speakers": 2,
        "speakers": [
            {
                "speaker": "A",
                "talk_time_s": 6.0,
                "share": 0.667,
                "share_of_speech": 0.667,
                "share_of_audio": 0.5,
                "num_segments": 2,
                "first_start_s": 0.0,
                "last_end_s": 10.0,
            },
            {
                "speaker": "B",
                "talk_time_s": 3.0,
                "share": 0.333,
                "share_of_speech": 0.333,
                "share_of_audio": 0.25,
                "num_segments": 1,
                "first_start_s": 3.0,
                "last_end_s": 6.0,
            },
        ],
    }
    with pytest.raises(ValueError, match="not made from"):
        output_summary(contract, speech_stats(turns[:1], 12.0))


def test_summarize_same_speaker_overlap_is_not_overlap_and_not_double_counted():
    summary = speech_stats([T(0, 4, "A"), T(2, 6, "A")], 6.0)
    assert summary.overlap_s == 0
    assert summary.speakers[0].talk_time_s == pytest.approx(6)
    assert summary.speakers[0].share_of_audio == pytest.approx(1)


def test_summarize_stretches_duration_to_last_turn_and_handles_empty():
    assert speech_stats([T(0, 10.02, "A")], 10.0).duration_s == pytest.approx(10.02)
    empty = speech_stats([], 30.0)
    assert (empty.num_speakers, empty.total_speech_s, empty.silence_s, empty.speakers) == (0, 0, 30, ())
    nothing = speech_stats([], 0.0)
    assert output_summary(summarize(nothing), nothing)["speakers"] == []
    assert summarize(nothing).speakers == []
    with pytest.raises(ValueError):
        speech_stats([], -1.0)


@settings(max_examples=300)
@given(turn_lists, st.integers(min_value=0, max_value=200_000).map(lambda ms: ms / 1000))
def test_summarize_properties(turns, duration):
    summary = speech_stats(turns, duration)
    eps = 1e-6
    assert summary.duration_s >= duration
    assert 0 <= summary.overlap_s <= summary.total_speech_s + eps
    assert summary.total_speech_s <= summary.duration_s + eps
    assert summary.silence_s == pytest.approx(max(0.0, summary.duration_s - summary.total_speech_s))
    talk = [s.talk_time_s for s in summary.speakers]
    assert all(0 <= t <= summary.duration_s + eps for t in talk)
    # Union of speakers <= sum of their talk times <= union + overlap counted per extra speaker.
    assert summary.total_speech_s <= sum(talk) + eps
    if sum(talk) > 0:
        assert sum(s.share_of_speech for s in summary.speakers) == pytest.approx(1)
    assert summary.num_speakers == len({t.speaker for t in turns})
    assert sum(s.num_segments for s in summary.speakers) == len(turns)
    contract = summarize(summary)  # valid as the contract's Summary (shares within [0, 1], ...)
    document = output_summary(contract, summary)
    models.Summary.model_validate(document)
    assert {k: document[k] for k in ("duration_s", "num_speakers", "num_segments", "speech_s", "overlap_s")} == {
        "duration_s": contract.duration_s,
        "num_speakers": contract.num_speakers,
        "num_segments": contract.num_segments,
        "speech_s": contract.speech_s,
        "overlap_s": contract.overlap_s,
    }
    assert [(s["speaker"], s["share"], s["share_of_speech"]) for s in document["speakers"]] == [
        (s.speaker, s.share, s.share) for s in contract.speakers
    ]
    assert contract.num_segments == len(turns)
    json.dumps(output_summary(contract, summary))


# --------------------------------------------------------------------------------------- build_output


def _build_output(turns, duration_s, job_id, extra=None, *, summarized=None, exclusive=None):
    """`build_output` with the summary of `summarized` (default: of `turns`), as the handler makes it."""
    stats = speech_stats(turns if summarized is None else summarized, duration_s)
    return build_output(turns, summarize(stats), job_id, extra, stats=stats, exclusive=exclusive)


def test_build_output_document():
    turns = clean([T(0, 1.23456, "z"), T(2, 3, "y")])
    doc = _build_output(turns, 4.0, "job-1", {"engine": "pyannote", "input": "gs://b/a"})
    assert doc["segments"] == [
        {"speaker": "SPEAKER_00", "start": 0.0, "end": 1.235, "duration": 1.235},
        {"speaker": "SPEAKER_01", "start": 2.0, "end": 3.0, "duration": 1.0},
    ]
    assert doc["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    assert doc["summary"]["num_speakers"] == 2
    assert (doc["job_id"], doc["engine"], doc["input"]) == ("job-1", "pyannote", "gs://b/a")
    assert list(doc)[:4] == ["segments", "speakers", "summary", "job_id"]
    json.dumps(doc)


def test_build_output_with_the_exclusive_timeline():
    turns = [T(0, 4, "SPEAKER_00"), T(3, 6.0004, "SPEAKER_01")]
    exclusive = [T(3, 6.0004, "SPEAKER_01"), T(0, 3, "SPEAKER_00")]
    doc = _build_output(turns, 7.0, "job-1", exclusive=exclusive)
    assert list(doc)[:3] == ["segments", "exclusive_segments", "speakers"]
    assert doc["exclusive_segments"] == [
        {"speaker": "SPEAKER_00", "start": 0.0, "end": 3.0, "duration": 3.0},
        {"speaker": "SPEAKER_01", "start": 3.0, "end": 6.0, "duration": 3.0},
    ]
    assert "exclusive_segments" not in _build_output(turns, 7.0, "job-1")
    with pytest.raises(ValueError, match="overlaps"):
        _build_output(turns, 7.0, "j", exclusive=turns)
    with pytest.raises(ValueError, match="not in the segments"):
        _build_output(turns, 7.0, "j", exclusive=[T(0, 1, "SPEAKER_07")])
    with pytest.raises(ValueError, match="reserved"):
        _build_output(turns, 7.0, "j", {"exclusive_segments": []})


def test_build_output_rejects_reserved_extra_keys_and_mismatched_summary():
    turns = [T(0, 1, "SPEAKER_00")]
    with pytest.raises(ValueError, match="reserved"):
        _build_output(turns, 1, "j", {"segments": []})
    with pytest.raises(ValueError, match="do not match"):
        _build_output(turns, 1, "j", {}, summarized=[])
    assert _build_output([], 1, "j", None)["segments"] == []


def test_summary_is_frozen():
    with pytest.raises(AttributeError):
        speech_stats([], 1).num_speakers = 3  # type: ignore[misc, unused-ignore]
    assert isinstance(speech_stats([], 1), SpeechStats)
