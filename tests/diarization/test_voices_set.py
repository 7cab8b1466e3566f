"""The real-voices evaluation set generator (speakerline_tools.datasets.voices_set): determinism and exact references.

Pure logic, no engine: plans for every conversation, audio for two of them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
VOICES = DATA_DIR / "voices"
GENERATED = ["lv2_tel", "lv3_minor"]  # telephone (8 kHz, mu-law) and reverb paths, one minor speaker


@pytest.fixture(scope="module")
def gen(voices_generator: ModuleType) -> ModuleType:
    return voices_generator


@pytest.fixture(scope="module")
def voices(gen):
    return gen.load_voices()


@pytest.fixture(scope="module")
def plans(gen, voices):
    return {c.uri: gen.plan_conversation(c, voices) for c in gen.CONVERSATIONS}


def _read_rttm(path: Path) -> list[tuple[float, float, str]]:
    turns = []
    for line in path.read_text().splitlines():
        f = line.split()
        assert f[0] == "SPEAKER" and f[2] == "1" and f[5:7] == ["<NA>", "<NA>"] and f[8:] == ["<NA>", "<NA>"], line
        turns.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return turns


def test_script_reads_only_the_committed_voices(gen) -> None:
    text = Path(gen.__file__).read_text()
    assert "shared" not in text and "librispeech-voices" not in text
    assert gen.VOICES_DIR == VOICES
    with (VOICES / "speakers.tsv").open(newline="") as f:
        listed = {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}
    assert set(listed) == {p.name for p in VOICES.glob("*.flac")}
    assert sum(p.stat().st_size for p in VOICES.glob("*.flac")) < 11e6
    sexes = [row["sex"] for row in listed.values()]
    assert sexes.count("F") == sexes.count("M")
    for name, row in listed.items():
        assert name.split("-")[0] == row["speaker"]
        info = sf.info(str(VOICES / name))
        assert (info.samplerate, info.channels) == (16_000, 1)
    readme = (VOICES / "README.md").read_text()
    assert "CC BY 4.0" in readme and all(name in readme for name in listed)


def test_default_output_is_generated_not_committed(gen) -> None:
    root = DATA_DIR.parents[1]
    assert root / ".stack" / "eval-voices" == gen.DEFAULT_OUT
    assert ".stack/" in (root / ".gitignore").read_text().split()


def test_reference_does_not_mark_background_as_speech(gen, voices) -> None:
    for v in voices.values():
        audio, _ = sf.read(str(VOICES / v.file), dtype="float64")
        db = gen.frame_db(audio)
        ref = np.zeros(len(v.voiced), dtype=bool)
        for a, b in gen.regions(v.voiced):
            ref[a:b] = True
        assert 0.5 < ref.mean() < 0.95, v.speaker
        assert np.median(db[ref]) - np.median(db[~ref]) > 15, v.speaker
        # every voiced frame is well above the background of the utterance
        assert np.percentile(db[ref & v.voiced], 1) > np.median(db[~ref]) + 5, v.speaker


def test_every_plan_is_a_valid_conversation(gen, voices, plans) -> None:
    assert len(plans) >= 20
    assert {c.n_speakers for c in gen.CONVERSATIONS} == {2, 3, 4, 5, 6, 8}
    for conv in gen.CONVERSATIONS:
        plan = plans[conv.uri]
        duration = plan.n_samples / gen.SR
        assert 20 <= duration <= 125, (conv.uri, duration)
        assert len(set(plan.speakers.values())) == conv.n_speakers, conv.uri
        sexes = {voices[v].sex for v in plan.speakers.values()}
        assert sexes == ({conv.sexes} if conv.sexes in ("F", "M") else {"F", "M"}), conv.uri

        seen: set[tuple[str, int]] = set()
        for p in plan.placements:
            assert plan.speakers[p.speaker] == p.voice
            assert list(p.pieces) == list(range(p.pieces[0], p.pieces[-1] + 1)), "a turn is consecutive pieces"
            for index in p.pieces:
                assert (p.voice, index) not in seen, f"{conv.uri}: piece {index} of {p.voice} used twice"
                seen.add((p.voice, index))
            assert p.offset >= 0 and p.offset + (p.end_frame - p.start_frame) * gen.HOP <= plan.n_samples

        turns = gen.reference(plan, voices)
        assert {s for _, _, s in turns} == set(plan.speakers), conv.uri
        assert all(0 <= a < b <= duration for a, b, _ in turns), conv.uri
        speech = {s: sum(b - a for a, b, k in turns if k == s) for s in plan.speakers}
        assert min(speech.values()) >= gen.MIN_SPEAKER_S, (conv.uri, speech)


def test_conditions_are_realistic_not_trivial(gen, voices, plans) -> None:
    overlapped = backchannels = 0.0
    for plan in plans.values():
        turns = gen.reference(plan, voices)
        edges = sorted([(a, 1) for a, _, _ in turns] + [(b, -1) for _, b, _ in turns])
        active, last = 0, 0.0
        for t, step in edges:
            if active >= 2:
                overlapped += t - last
            active, last = active + step, t
        backchannels += sum(p.kind == "backchannel" for p in plan.placements)
    assert overlapped > 30  # seconds of overlapped speech over the whole set
    assert backchannels >= 20
    speech = [gen.reference(plans[u], voices) for u in ("lv2_minor", "lv3_minor")]
    for turns in speech:
        per = sorted(sum(b - a for a, b, k in turns if k == s) for s in {k for _, _, k in turns})
        assert per[0] < 5.0 < 2 * per[0] < per[-1], per  # a minor speaker with only a few seconds
    levels = [c.rms_dbfs for c in gen.CONVERSATIONS]
    assert sum(level <= -35 for level in levels) >= 4
    assert sum(c.telephone is not None for c in gen.CONVERSATIONS) >= 3
    assert sum(c.noise is None for c in gen.CONVERSATIONS) >= 2


@pytest.mark.slow
def test_generation_is_bit_identical_and_consistent(gen, tmp_path: Path) -> None:
    first = gen.generate(tmp_path / "a", GENERATED)
    gen.generate(tmp_path / "b", GENERATED)
    gen.generate(tmp_path / "c", GENERATED[:1])  # a subset gives the same bytes
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(["manifest.json"] + [f"{u}.{ext}" for u in GENERATED for ext in ("flac", "rttm")])
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for ext in ("flac", "rttm"):
        name = f"{GENERATED[0]}.{ext}"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name

    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest == first and [e["uri"] for e in manifest] == GENERATED
    for entry in manifest:
        audio, sr = sf.read(str(tmp_path / "a" / entry["audio"]), dtype="float64")
        info = sf.info(str(tmp_path / "a" / entry["audio"]))
        assert (sr, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        assert abs(len(audio) / sr - entry["duration_s"]) < 0.01
        assert np.max(np.abs(audio)) < 1.0 and np.sqrt(np.mean(audio**2)) > 10 ** (-50 / 20)
        turns = _read_rttm(tmp_path / "a" / entry["rttm"])
        assert {s for _, _, s in turns} == set(entry["speech_s_per_speaker"])
        assert len(entry["speech_s_per_speaker"]) == entry["num_speakers"] == len(entry["voices"])
        assert all(0 <= a < b <= entry["duration_s"] + 1e-3 for a, b, _ in turns)
        for s, seconds in entry["speech_s_per_speaker"].items():
            assert seconds >= 3.0
            assert abs(sum(b - a for a, b, k in turns if k == s) - seconds) < 0.05
        # the reference covers the audible speech: frames outside it are much quieter than frames inside
        frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
        db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
        inside = np.zeros(len(db), dtype=bool)
        for a, b, _ in turns:
            inside[int(a * 100) : int(b * 100)] = True
        assert np.median(db[inside]) - np.median(db[~inside]) > 10, entry["uri"]


def test_unknown_conversation_is_refused(gen, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown conversation"):
        gen.generate(tmp_path, ["lv9_nope"])
