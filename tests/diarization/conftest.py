"""Shared fixtures for the diarization engine tests."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# pyannote: no telemetry, never reach the hub from tests
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# torchcodec warns at import when FFmpeg is absent; we only pass in-memory waveforms
warnings.filterwarnings("ignore", message=r".*torchcodec.*")
warnings.filterwarnings("ignore", message=r".*FFmpeg.*")

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
EVAL_DIR = DATA_DIR / "eval"
SAMPLE_DIR = DATA_DIR / "sample"


def flac_to_wav(flac: Path, out_dir: Path) -> Path:
    """The ingest service hands engines 16 kHz mono PCM16 WAV: convert like it would."""
    import soundfile as sf

    data, sample_rate = sf.read(str(flac), dtype="int16")
    wav = out_dir / f"{flac.stem}.wav"
    sf.write(str(wav), data, sample_rate, subtype="PCM_16", format="WAV")
    return wav


@pytest.fixture
def as_wav(tmp_path: Path) -> Callable[[Path], Path]:
    """Convert a committed FLAC to the 16 kHz PCM16 WAV the engines receive."""
    return lambda flac: flac_to_wav(flac, tmp_path)


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    return EVAL_DIR


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def eval_manifest() -> list[dict[str, Any]]:
    manifest: list[dict[str, Any]] = json.loads((EVAL_DIR / "manifest.json").read_text())
    return manifest


@pytest.fixture(scope="session")
def embedded_engine() -> Any:
    """One EmbeddedEngine for the whole session (loading takes a few seconds)."""
    from diarization.engines import select
    from diarization.engines.base import EngineUnavailable
    from speakerline.settings import Settings

    try:
        engine = select.load("embedded", Settings(diarization_device="cpu"))
    except EngineUnavailable as exc:  # pragma: no cover - install problem
        pytest.fail(f"embedded engine must be available in the test environment: {exc}")
    reuse_features(engine._pipeline)
    return engine


def reuse_features(pipeline: Any) -> None:
    """Each recording's segmentation and embeddings computed once per session, as pyannote itself caches them while
    tuning (its training mode): the quality tests diarize the same recordings under several speaker-count options,
    which change only the clustering, and each run still clusters, counts and reconstructs for real. (A recording
    seen again reports no progress for these two steps.)"""
    segmentations: dict[str, tuple[Any, Any]] = {}
    embeddings: dict[str, Any] = {}
    get_segmentations, get_embeddings = pipeline.get_segmentations, pipeline.get_embeddings

    def key(file: dict[str, Any]) -> str:
        return hashlib.blake2b(file["waveform"].numpy().tobytes(), digest_size=16).hexdigest()

    def cached_segmentations(file: dict[str, Any], hook: Any = None) -> Any:
        recording = key(file)
        if recording not in segmentations:
            segmentations[recording] = (get_segmentations(file, hook=hook), pipeline._soft)
        found, pipeline._soft = segmentations[recording]
        return found

    def cached_embeddings(file: dict[str, Any], binary_segmentations: Any, **kwargs: Any) -> Any:
        recording = key(file)
        if recording not in embeddings:
            embeddings[recording] = get_embeddings(file, binary_segmentations, **kwargs)
        return embeddings[recording].copy()

    pipeline.get_segmentations = cached_segmentations
    pipeline.get_embeddings = cached_embeddings


@pytest.fixture(scope="session")
def voices_generator() -> Any:
    """The real-voices set generator (`speakerline_tools.datasets.voices_set`)."""
    from speakerline_tools.datasets import voices_set

    return voices_set
