"""PyannoteEngine on a pipeline directory built here from pyannote's own model classes.

No weights can be downloaded in CI, so the test writes what a pyannote-4 pipeline repo
(e.g. ``pyannote/speaker-diarization-community-1``) contains: ``config.yaml`` referencing
``$model/segmentation``, ``$model/embedding`` and ``$model/plda``, lightning checkpoints of a
powerset ``PyanNet`` (segmentation-3.0 specifications) and a ``WeSpeakerResNet34`` with random
weights, and a valid random PLDA. ``PyannoteEngine.from_pretrained(dir)`` then goes through
``pyannote.audio.Pipeline.from_pretrained`` and ``SpeakerDiarization`` (VBx clustering) exactly
as it would with the real weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from diarization.engines.base import DiarizationOptions, EngineUnavailable
from diarization.engines.pyannote import PyannoteEngine, parse_gs_uri

# random embedding weights on tiny speech pieces: pyannote's pooling warns about std() of 1 frame
pytestmark = pytest.mark.filterwarnings("ignore:std\\(\\):UserWarning")

CONFIG_YAML = """\
dependencies:
  pyannote.audio: 4.0.0
pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: VBxClustering
    embedding: $model/embedding
    embedding_batch_size: 8
    embedding_exclude_overlap: true
    plda: $model/plda
    segmentation: $model/segmentation
    segmentation_batch_size: 8
params:
  clustering:
    threshold: 0.6
    Fa: 0.07
    Fb: 0.8
  segmentation:
    min_duration_off: 0.0
"""


def _save_pyannote_checkpoint(model: Any, path: Path) -> None:
    """Write the lightning checkpoint layout that ``Model.from_pretrained`` loads."""
    import lightning
    import torch

    checkpoint: dict[str, Any] = {
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": model.state_dict(),
        "hparams_name": "kwargs",
        "hyper_parameters": dict(model.hparams),
    }
    model.on_save_checkpoint(checkpoint)  # adds the "pyannote.audio" section
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def build_random_pipeline_dir(root: Path) -> Path:
    """Create a community-1-shaped pipeline directory with random weights."""
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    # segmentation-3.0 specifications: 10 s chunks, 3 local speakers, powerset (<= 2 at once)
    segmentation = PyanNet(
        sincnet={"stride": 10},
        lstm={"hidden_size": 16, "num_layers": 1, "bidirectional": True, "monolithic": True},
        linear={"hidden_size": 16, "num_layers": 1},
    )
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=10.0,
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    segmentation.build()  # type: ignore[no-untyped-call]
    with torch.no_grad():
        # random weights would mostly predict "no speech": bias the powerset classes
        # {spk1}, {spk2} so the pipeline has speech to embed, cluster and reconstruct
        segmentation.classifier.bias.zero_()
        segmentation.classifier.bias[0] = -4.0
        segmentation.classifier.bias[1] = 2.0
        segmentation.classifier.bias[2] = 2.0
    _save_pyannote_checkpoint(segmentation, root / "segmentation" / "pytorch_model.bin")

    embedding = WeSpeakerResNet34()
    embedding.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=10.0
    )
    _save_pyannote_checkpoint(embedding, root / "embedding" / "pytorch_model.bin")

    # a valid PLDA for VBx: x-vector transform (256 -> 128) and a PLDA model in 128 dims
    dim, lda_dim = embedding.dimension, 128
    (root / "plda").mkdir()
    np.savez(
        root / "plda" / "xvec_transform.npz",
        mean1=rng.normal(size=dim) * 0.01,
        mean2=rng.normal(size=lda_dim) * 0.01,
        lda=np.linalg.qr(rng.normal(size=(dim, dim)))[0][:, :lda_dim],
    )
    np.savez(
        root / "plda" / "plda.npz",
        mu=np.zeros(lda_dim),
        tr=np.linalg.qr(rng.normal(size=(lda_dim, lda_dim)))[0],
        psi=np.sort(rng.uniform(0.5, 5.0, size=lda_dim))[::-1],
    )
    (root / "config.yaml").write_text(CONFIG_YAML)
    return root


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_pipeline_dir(tmp_path_factory.mktemp("pyannote-pipeline"))


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of the bundled sample (real synthetic speech) as 16 kHz PCM16 WAV."""
    data, sample_rate = sf.read(
        str(Path(__file__).resolve().parents[1] / "data" / "sample" / "conversation.flac"),
        dtype="int16",
    )
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    sf.write(str(path), data[: 12 * sample_rate], sample_rate, subtype="PCM_16")
    return path


def _assert_well_formed(turns: tuple[Any, ...], duration: float) -> None:
    assert turns, "expected speech turns"
    assert list(turns) == sorted(turns, key=lambda t: (t.start, t.end, t.speaker))
    for turn in turns:
        assert 0.0 <= turn.start < turn.end <= duration + 1e-6
        assert turn.speaker.startswith("SPEAKER_")


def test_local_pipeline_dir_runs_end_to_end(pipeline_dir: Path, speech_wav: Path) -> None:
    engine = PyannoteEngine.from_pretrained(str(pipeline_dir), token=None, device="cpu")
    assert engine.name == "pyannote"
    assert engine.device == "cpu"

    result = engine.diarize(speech_wav, DiarizationOptions())

    _assert_well_formed(result.turns, 12.0)
    assert result.engine == "pyannote"
    assert result.model == str(pipeline_dir)
    assert result.timings["audio_s"] == pytest.approx(12.0)
    assert result.timings["inference_s"] > 0
    assert result.timings["rtf"] == pytest.approx(result.timings["inference_s"] / result.timings["audio_s"], rel=1e-2)

    # speaker-count constraints reach the pipeline
    forced = engine.diarize(speech_wav, DiarizationOptions(num_speakers=1))
    _assert_well_formed(forced.turns, 12.0)
    assert len(forced.speakers) == 1


def test_silence_gives_no_turns(pipeline_dir: Path, tmp_path: Path) -> None:
    engine = PyannoteEngine.from_pretrained(str(pipeline_dir), token=None, device="cpu")
    silent = tmp_path / "silence.wav"
    sf.write(str(silent), np.zeros(16000 * 3, dtype=np.int16), 16000, subtype="PCM_16")
    result = engine.diarize(silent, DiarizationOptions())
    assert result.turns == ()
    assert result.timings["audio_s"] == pytest.approx(3.0)


def test_gcs_source_is_mirrored_once_then_loaded(pipeline_dir: Path, tmp_path: Path) -> None:
    calls: list[tuple[str, Path]] = []

    def fake_download(gs_uri: str, local_dir: Path) -> None:
        calls.append((gs_uri, local_dir))
        shutil.copytree(pipeline_dir, local_dir, dirs_exist_ok=True)

    source = "gs://models-bucket/pyannote/community-1"
    engine = PyannoteEngine.from_pretrained(
        source, token=None, device="cpu", cache_dir=tmp_path, downloader=fake_download
    )
    assert engine.model == source
    assert calls == [(source, tmp_path / "gcs" / "models-bucket" / "pyannote" / "community-1")]

    PyannoteEngine.from_pretrained(source, token=None, device="cpu", cache_dir=tmp_path, downloader=fake_download)
    assert len(calls) == 1, "a completed mirror is reused"


def test_gcs_download_failure_is_engine_unavailable(tmp_path: Path) -> None:
    def broken(gs_uri: str, local_dir: Path) -> None:
        raise PermissionError("403 caller lacks storage.objects.list")

    with pytest.raises(EngineUnavailable, match="403"):
        PyannoteEngine.from_pretrained("gs://b/p", token=None, device="cpu", cache_dir=tmp_path, downloader=broken)
    # nothing marked complete: the next call retries
    assert not (tmp_path / "gcs" / "b" / "p" / ".complete").exists()


def test_gcs_mirror_without_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match=r"config\.yaml"):
        PyannoteEngine.from_pretrained(
            "gs://b/empty",
            token=None,
            device="cpu",
            cache_dir=tmp_path,
            downloader=lambda uri, d: None,
        )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("gs://bucket/a/b", ("bucket", "a/b/")),
        ("gs://bucket/a/b/", ("bucket", "a/b/")),
        ("gs://bucket", ("bucket", "")),
    ],
)
def test_parse_gs_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_gs_uri(uri) == expected


@pytest.mark.parametrize("uri", ["s3://bucket/x", "gs:///x"])
def test_parse_gs_uri_rejects(uri: str) -> None:
    with pytest.raises(ValueError):
        parse_gs_uri(uri)


def test_uncached_hub_model_without_token_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EngineUnavailable, match=r"speaker-diarization-3\.1"):
        PyannoteEngine.from_pretrained("pyannote/speaker-diarization-3.1", token=None, device="cpu", cache_dir=tmp_path)


def test_local_dir_without_config_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match=r"config\.yaml"):
        PyannoteEngine.from_pretrained(str(tmp_path), token=None, device="cpu")


def test_cuda_request_without_cuda_is_unavailable(pipeline_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(EngineUnavailable, match="CUDA"):
        PyannoteEngine.from_pretrained(str(pipeline_dir), token=None, device="cuda")
