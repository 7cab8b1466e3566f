"""speakerline_tools.evaluation without a real engine: pairing, scoring, sums, formatting, exit codes.

A fake engine returns known turns, so every DER here is worked out by hand (no collar, overlap scored, whole file).
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from speakerline.timeline import Turn
from speakerline_tools import cli, evaluation
from speakerline_tools.evaluation import ErrorParts, EvalError, evaluate_dir, find_pairs, format_report
from tests.fakes import ScriptedEngine

RATE = 16_000


def write_wav(path: Path, seconds: float, rate: int = RATE, channels: int = 1) -> Path:
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal((int(seconds * rate), channels)) * 1000).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def write_rttm(path: Path, uri: str, turns: list[tuple[float, float, str]]) -> Path:
    path.write_text("".join(f"SPEAKER {uri} 1 {s:.3f} {e - s:.3f} <NA> <NA> {spk} <NA> <NA>\n" for s, e, spk in turns))
    return path


def engine_by_duration(turns_by_duration: dict[float, list[tuple[float, float, str]]]) -> ScriptedEngine:
    """An engine that answers the turns given for each audio duration, and takes a tenth of it to do so."""

    def duration(audio_path: Path) -> float:
        with wave.open(str(audio_path), "rb") as wav:  # the engine gets 16 kHz mono PCM16 WAV
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
            return round(wav.getnframes() / RATE, 1)

    return ScriptedEngine(
        lambda path: [Turn(s, e, spk) for s, e, spk in turns_by_duration[duration(path)]],
        name="fake",
        model="fake-model",
        timings=lambda path: {"inference_s": duration(path) / 10, "audio_s": duration(path)},
    )


# Reference: A 0-4, B 5-9 (8 s of speech) in a 10 s file.
# Hypothesis: X 0-4 (= A), Y 5.5-8 (= B, 0.5 s missed at 5-5.5), Z 8-9.5 (8-9 is B: 1 s confusion; 9-9.5: 0.5 s
# false alarm). DER = (0.5 + 0.5 + 1) / 8 = 25 %.
REF_10 = [(0.0, 4.0, "A"), (5.0, 9.0, "B")]
HYP_10 = [(0.0, 4.0, "X"), (5.5, 8.0, "Y"), (8.0, 9.5, "Z")]
# Reference: C 1-3 (2 s) in a 4 s file (44.1 kHz stereo: normalized first). Hypothesis: nothing (2 s missed).
REF_4 = [(1.0, 3.0, "C")]


@pytest.fixture
def hand_made_set(tmp_path: Path) -> Path:
    """Two scored files (a 10 s and a 4 s one), one without a reference and one that is not audio (not the
    committed evaluation set of the `eval_dir` fixture)."""
    write_wav(tmp_path / "ten.wav", 10.0)
    write_rttm(tmp_path / "ten.rttm", "meeting_ten_original_uri", REF_10)  # uri differs from the stem
    write_wav(tmp_path / "four.wav", 4.0, rate=44_100, channels=2)
    write_rttm(tmp_path / "four.rttm", "four", REF_4)
    (tmp_path / "notes.txt").write_text("not audio, ignored\n")
    write_wav(tmp_path / "lonely.wav", 1.0)  # no reference: left out, reported
    return tmp_path


def test_known_turns_give_known_der(hand_made_set: Path) -> None:
    engine = engine_by_duration({10.0: HYP_10, 4.0: []})
    report = evaluate_dir(engine, hand_made_set)

    four, ten = report.files  # sorted by stem
    assert ten.name == "ten" and ten.uri == "meeting_ten_original_uri" and ten.audio == "ten.wav"
    assert ten.duration_s == pytest.approx(10.0)
    assert ten.errors.reference_s == pytest.approx(8.0)
    assert ten.errors.missed_s == pytest.approx(0.5)
    assert ten.errors.false_alarm_s == pytest.approx(0.5)
    assert ten.errors.confusion_s == pytest.approx(1.0)
    assert ten.der == pytest.approx(0.25)
    assert (ten.errors.miss, ten.errors.false_alarm, ten.errors.confusion) == pytest.approx((0.0625, 0.0625, 0.125))
    assert (ten.found_speakers, ten.reference_speakers, ten.exact_speaker_count) == (3, 2, False)
    assert ten.rtf == pytest.approx(0.1)

    assert four.duration_s == pytest.approx(4.0, abs=1e-3)
    assert four.der == pytest.approx(1.0) and four.errors.miss == pytest.approx(1.0)
    assert (four.found_speakers, four.reference_speakers, four.turns) == (0, 1, 0)

    # overall = summed errors / summed reference speech (not the mean of the files' DERs)
    assert report.errors.reference_s == pytest.approx(10.0)
    assert report.der == pytest.approx((2.0 + 2.0) / 10.0)
    assert report.exact_speaker_counts == 0
    assert report.files_without_output == ("four",)
    assert report.rtf == pytest.approx(1.4 / 14.0, abs=1e-3)
    assert report.unpaired == ("lonely.wav: no reference lonely.rttm",)
    assert all(options.num_speakers is None for _, options in engine.calls)


def test_num_speakers_from_reference_is_passed_to_the_engine(hand_made_set: Path) -> None:
    engine = engine_by_duration({10.0: [(0.0, 4.0, "X"), (5.0, 9.0, "Y")], 4.0: [(1.0, 3.0, "X")]})
    report = evaluate_dir(engine, hand_made_set, num_speakers_from_reference=True)
    assert sorted(options.num_speakers or 0 for _, options in engine.calls) == [1, 2]
    assert [f.num_speakers for f in report.files] == [1, 2]
    assert report.der == pytest.approx(0.0)
    assert report.exact_speaker_counts == 2


def test_report_formats_as_table_and_json(hand_made_set: Path) -> None:
    report = evaluate_dir(engine_by_duration({10.0: HYP_10, 4.0: []}), hand_made_set)
    table = format_report(report)
    lines = table.splitlines()
    row = next(line for line in lines if line.startswith("ten "))
    assert row.split() == ["ten", "25.0%", "6.2%", "6.2%", "12.5%", "3", "/", "2", "0.100"]
    assert next(line for line in lines if line.startswith("four ")).endswith("(no output)")
    overall = next(line for line in lines if line.startswith("overall "))
    assert overall.split()[:5] == ["overall", "40.0%", "25.0%", "5.0%", "10.0%"]
    assert "0/2 ok" in overall
    assert "not evaluated: lonely.wav: no reference lonely.rttm" in table

    doc = json.loads(json.dumps(report.to_dict()))
    assert [row["file"] for row in doc["files"]] == ["four", "ten"]
    assert doc["files"][1]["der"] == pytest.approx(0.25)
    assert doc["files"][1]["speakers_found"] == 3 and doc["files"][1]["speakers_reference"] == 2
    assert doc["overall"]["der"] == pytest.approx(0.4)
    assert doc["overall"]["files_without_output"] == ["four"]
    assert doc["scoring"] == {
        "metric": "pyannote.metrics.diarization.DiarizationErrorRate",
        "collar": 0.0,
        "skip_overlap": False,
        "uem": "whole file (0 to the end of the audio)",
    }


def test_hypothesis_outside_the_file_is_not_scored(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", 10.0)
    write_rttm(tmp_path / "a.rttm", "a", REF_10)
    report = evaluate_dir(engine_by_duration({10.0: [*REF_10, (10.0, 12.0, "A")]}), tmp_path)
    assert report.der == pytest.approx(0.0)


def test_reference_without_speech() -> None:
    assert ErrorParts().der == 0.0
    assert ErrorParts(false_alarm_s=1.0).der == float("inf")
    assert (
        evaluation.FileScore("x", "x", "x.wav", 1.0, ErrorParts(false_alarm_s=1.0), 0, 1, 1, 0.1).to_dict()["der"]
        is None
    )


def test_rttm_with_several_uris_uses_the_stem(tmp_path: Path) -> None:
    rttm = tmp_path / "b.rttm"
    rttm.write_text(
        "SPEAKER a 1 0.0 1.0 <NA> <NA> A <NA> <NA>\n"
        "SPEAKER b 1 0.0 2.0 <NA> <NA> B <NA> <NA>\n"
        "SPEAKER b 1 3.0 1.0 <NA> <NA> C <NA> <NA>\n"
    )
    assert sorted(evaluation.load_reference(rttm, "b").labels()) == ["B", "C"]
    with pytest.raises(EvalError, match="several uris"):
        evaluation.load_reference(rttm, "c")


def test_bad_inputs_are_eval_errors(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="no such directory"):
        find_pairs(tmp_path / "missing")
    with pytest.raises(EvalError, match="no audio file with a reference"):
        evaluate_dir(engine_by_duration({}), tmp_path)

    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    write_rttm(tmp_path / "broken.rttm", "broken", REF_4)
    with pytest.raises(EvalError, match=r"broken\.wav: unreadable audio \(undecodable\)"):
        evaluate_dir(engine_by_duration({}), tmp_path)

    write_wav(tmp_path / "broken.flac", 1.0)  # two audio files for one reference
    with pytest.raises(EvalError, match=r"several audio files for broken\.rttm"):
        find_pairs(tmp_path)


def test_cli_exit_codes_and_json(
    hand_made_set: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import diarization.engines.select as select
    from speakerline import logs

    monkeypatch.setattr(select, "load", lambda name, settings: engine_by_duration({10.0: HYP_10, 4.0: []}))
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)  # leave this process' logging alone
    assert cli.main(["eval", str(hand_made_set), "--json", "--max-der", "0.5"]) == evaluation.EXIT_OK
    out = capsys.readouterr()
    doc = json.loads(out.out)  # stdout holds only the report
    assert doc["overall"]["der"] == pytest.approx(0.4) and doc["passed"] is True and doc["max_der"] == 0.5
    assert "ten: DER 25.0%" in out.err  # progress goes to stderr

    assert cli.main(["eval", str(hand_made_set), "--max-der", "0.39"]) == evaluation.EXIT_DER_ABOVE_MAX
    out = capsys.readouterr()
    assert out.out.splitlines()[0].startswith("engine fake (fake-model, cpu)")
    assert "overall DER 40.0% is above --max-der 39.0%" in out.err

    assert cli.main(["eval", str(hand_made_set / "missing")]) == evaluation.EXIT_INPUT_ERROR
    assert "no such directory" in capsys.readouterr().err
