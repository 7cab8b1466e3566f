"""Engine wrapping a real pyannote.audio ``Pipeline`` (HF hub id, local dir or GCS mirror)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
import structlog

from speakerline.settings import DEFAULT_DIARIZATION_DEVICE, DEFAULT_PYANNOTE_MODEL
from speakerline.timeline import Turn, merge_turns

from .base import (
    DiarizationOptions,
    DiarizationResult,
    EngineUnavailable,
    Progress,
    ProgressCallback,
)
from .hints import enforce_speaker_hints
from .pieces import DEFAULT_PIECE_S, link_speakers, plan_pieces

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_PYANNOTE_MODEL",
    "GcsDownloader",
    "PyannoteEngine",
    "download_gcs_prefix",
    "read_wav",
    "resolve_device",
    "run_pipeline",
]

log = structlog.get_logger()

SAMPLE_RATE = 16_000

#: ``downloader(gs_uri, local_dir)`` copies every object under ``gs://bucket/prefix`` into
#: ``local_dir`` (keeping the relative layout) and returns nothing.
GcsDownloader = Callable[[str, Path], None]


def _quiet_env() -> None:
    """pyannote phones home (telemetry) unless told not to; never wait on it."""
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise EngineUnavailable(f"invalid device {device!r}: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise EngineUnavailable(f"device {device!r} requested but CUDA is not available")
    return resolved


def read_wav(audio_path: Path, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, int]:
    """Read samples ``[start, stop)`` of a (16 kHz mono PCM16) file as float32 mono in [-1, 1]."""
    data, sample_rate = sf.read(str(audio_path), start=start, stop=stop, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), int(sample_rate)


def _annotation_turns(annotation: Any, audio_s: float) -> tuple[Turn, ...]:
    """pyannote ``Annotation`` -> turns clipped to the audio, sorted by (start, end, speaker)."""
    turns = []
    for segment, _, label in annotation.itertracks(yield_label=True):
        start = max(0.0, float(segment.start))
        end = min(audio_s, float(segment.end))
        if end > start:
            turns.append(Turn(round(start, 3), round(end, 3), str(label)))
    turns.sort(key=lambda t: (t.start, t.end, t.speaker))
    return tuple(turns)


#: Share of a pyannote diarization's time spent in each step with progress (measured on CPU:
#: segmentation 16 %, embeddings 83 %; clustering and reconstruction take the rest).
_STEP_SPANS: dict[str, tuple[float, float]] = {"segmentation": (0.0, 0.16), "embeddings": (0.16, 0.98)}


class PipelineProgress:
    """A pyannote pipeline ``hook`` that reports :class:`Progress` (never backwards) to ``callback``.

    pyannote calls ``hook(step_name, artifact, file=..., total=..., completed=...)`` per batch of
    its long steps and once (without counts) when a step ends. For a piece of a long recording the
    piece's own fraction is mapped onto ``offset + scale * fraction``.
    """

    def __init__(self, callback: ProgressCallback, offset: float = 0.0, scale: float = 1.0) -> None:
        self._callback = callback
        self._offset, self._scale = offset, scale
        self._last = offset

    def __call__(
        self, step_name: str, artifact: Any = None, file: Any = None, total: int | None = None,
        completed: int | None = None,
    ) -> None:  # fmt: skip
        span = _STEP_SPANS.get(step_name)
        if span is None:
            return
        done = 1.0 if not total else min(1.0, (completed or 0) / total)
        fraction = round(self._offset + self._scale * (span[0] + (span[1] - span[0]) * done), 4)
        if fraction > self._last:
            self._last = fraction
            self._callback(Progress(fraction=fraction, stage=step_name))


def run_pipeline(
    pipeline: Any,
    audio_path: Path,
    options: DiarizationOptions,
    *,
    engine: str,
    model: str,
    device: str,
    load_s: float,
    uri: str | None = None,
    progress: ProgressCallback | None = None,
    piece_s: float = DEFAULT_PIECE_S,
) -> DiarizationResult:
    """Run a pyannote ``SpeakerDiarization`` pipeline on the recording, in pieces when it is long.

    ``turns`` come from the overlap-aware ``speaker_diarization`` output and
    ``exclusive_turns`` from ``exclusive_speaker_diarization`` (pyannote 4; empty for a
    pipeline that returns a bare ``Annotation``). A recording of 1.5 ``piece_s`` or more is
    read and diarized one piece at a time and the pieces' speakers linked (:mod:`.pieces`), so
    memory stays bounded. Speaker-count hints are then enforced on both timelines
    (:func:`.hints.enforce_speaker_hints`).
    """
    info = sf.info(str(audio_path))
    sample_rate = int(info.samplerate)
    audio_s = info.frames / sample_rate if sample_rate else 0.0
    if sample_rate != SAMPLE_RATE:
        log.warning("diarization.unexpected_sample_rate", sample_rate=sample_rate)
    pieces = plan_pieces(int(info.frames), sample_rate, piece_s)
    several = len(pieces) > 1
    kwargs = _pipeline_hints(options, several)
    outputs: list[tuple[float, float, Any]] = []
    inference_s = 0.0
    for index, (start, stop) in enumerate(pieces):
        samples, _ = read_wav(audio_path, start, stop)
        if not np.any(samples):
            continue
        hook = PipelineProgress(progress, offset=index / len(pieces), scale=1 / len(pieces)) if progress else None
        started = time.perf_counter()
        output = _diarize_waveform(pipeline, samples, sample_rate, uri or audio_path.stem, hook, kwargs)
        inference_s += time.perf_counter() - started
        outputs.append((start / sample_rate, (stop - start) / sample_rate, output))
        del samples
    turns, exclusive = _piece_turns(outputs, options) if several else _whole_turns(outputs, audio_s)
    result = DiarizationResult(
        turns=turns,
        engine=engine,
        model=model,
        device=device,
        timings=_timings(load_s, inference_s, audio_s),
        exclusive_turns=exclusive,
    )
    return enforce_speaker_hints(result, options)


def _pipeline_hints(options: DiarizationOptions, several_pieces: bool) -> dict[str, int]:
    """Hints handed to the pipeline. A piece of a long recording may hold only some of its speakers:
    there the count is an upper bound only, and the linking step applies the hints to the whole."""
    if several_pieces:
        ceiling = options.num_speakers or options.max_speakers
        return {"max_speakers": ceiling} if ceiling is not None else {}
    kwargs: dict[str, int] = {}
    if options.num_speakers is not None:
        kwargs["num_speakers"] = options.num_speakers
    if options.min_speakers is not None:
        kwargs["min_speakers"] = options.min_speakers
    if options.max_speakers is not None:
        kwargs["max_speakers"] = options.max_speakers
    return kwargs


def _diarize_waveform(
    pipeline: Any, samples: np.ndarray, sample_rate: int, uri: str, hook: Any, kwargs: dict[str, int]
) -> Any:
    import torch

    file = {"waveform": torch.from_numpy(samples)[None], "sample_rate": sample_rate, "uri": uri}
    return pipeline(file, hook=hook, **kwargs)


def _whole_turns(outputs: list[tuple[float, float, Any]], audio_s: float) -> tuple[tuple[Turn, ...], tuple[Turn, ...]]:
    if not outputs:
        return (), ()
    _, _, output = outputs[0]
    turns = _annotation_turns(getattr(output, "speaker_diarization", output), audio_s)
    exclusive_annotation = getattr(output, "exclusive_speaker_diarization", None)
    exclusive = _annotation_turns(exclusive_annotation, audio_s) if exclusive_annotation is not None else ()
    return turns, exclusive


def _piece_turns(
    outputs: list[tuple[float, float, Any]], options: DiarizationOptions
) -> tuple[tuple[Turn, ...], tuple[Turn, ...]]:
    """Turns of every piece on the recording's clock, labelled by the linked global speakers."""
    centroids: list[dict[str, np.ndarray]] = []
    for _, _, output in outputs:
        annotation = getattr(output, "speaker_diarization", output)
        embeddings = getattr(output, "speaker_embeddings", None)
        labels = list(annotation.labels())
        if embeddings is None or len(embeddings) < len(labels):
            log.warning("diarization.piece_without_speaker_embeddings", labels=len(labels))
            embeddings = np.full((len(labels), 1), np.nan)
        centroids.append({label: np.asarray(embeddings[k]) for k, label in enumerate(labels)})
    mappings = link_speakers(
        centroids,
        num_speakers=options.num_speakers,
        min_speakers=options.min_speakers,
        max_speakers=options.max_speakers,
    )
    turns: list[Turn] = []
    exclusive: list[Turn] = []
    for (offset, duration, output), mapping in zip(outputs, mappings, strict=True):
        for target, annotation in (
            (turns, getattr(output, "speaker_diarization", output)),
            (exclusive, getattr(output, "exclusive_speaker_diarization", None)),
        ):
            if annotation is None:
                continue
            for turn in _annotation_turns(annotation, duration):
                speaker = mapping.get(turn.speaker, turn.speaker)
                target.append(Turn(round(turn.start + offset, 3), round(turn.end + offset, 3), speaker))
    return tuple(merge_turns(turns)), tuple(merge_turns(exclusive))


def download_gcs_prefix(gs_uri: str, local_dir: Path) -> None:
    """Default :data:`GcsDownloader`, using google-cloud-storage (imported lazily)."""
    bucket_name, prefix = parse_gs_uri(gs_uri)
    try:
        from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EngineUnavailable("google-cloud-storage is needed for gs:// model sources") from exc
    client = storage.Client()
    found = False
    for blob in client.list_blobs(bucket_name, prefix=prefix):
        if blob.name.endswith("/"):
            continue
        relative = blob.name[len(prefix) :].lstrip("/")
        target = local_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
        found = True
    if not found:
        raise EngineUnavailable(f"no objects under {gs_uri}")


def parse_gs_uri(gs_uri: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix/`` -> ``("bucket", "some/prefix/")``."""
    if not gs_uri.startswith("gs://"):
        raise ValueError(f"not a gs:// URI: {gs_uri!r}")
    bucket, _, prefix = gs_uri[len("gs://") :].partition("/")
    if not bucket:
        raise ValueError(f"gs:// URI without a bucket: {gs_uri!r}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def materialize_gcs_source(gs_uri: str, cache_dir: Path, downloader: GcsDownloader | None = None) -> Path:
    """Mirror ``gs://bucket/prefix`` into ``cache_dir`` once; return the local directory.

    A completed mirror is marked with a ``.complete`` file so an interrupted download is
    redone rather than half-used.
    """
    bucket, prefix = parse_gs_uri(gs_uri)
    local_dir = cache_dir / "gcs" / bucket / prefix.strip("/")
    marker = local_dir / ".complete"
    if marker.exists():
        return local_dir
    if local_dir.exists():
        shutil.rmtree(local_dir)
    local_dir.mkdir(parents=True)
    try:
        (downloader or download_gcs_prefix)(gs_uri, local_dir)
    except EngineUnavailable:
        raise
    except Exception as exc:
        raise EngineUnavailable(f"could not download {gs_uri}: {exc}") from exc
    if not (local_dir / "config.yaml").exists():
        raise EngineUnavailable(f"{gs_uri} has no config.yaml at its root")
    marker.touch()
    return local_dir


class PyannoteEngine:
    """Diarization with a pretrained pyannote.audio pipeline (overlap-aware turns)."""

    name = "pyannote"

    def __init__(self, pipeline: Any, *, model: str, device: str, load_s: float = 0.0) -> None:
        self._pipeline = pipeline
        self.model = model
        self.device = device
        self.load_s = load_s

    @classmethod
    def from_pretrained(
        cls,
        source: str = DEFAULT_PYANNOTE_MODEL,
        *,
        token: str | None,
        device: str = DEFAULT_DIARIZATION_DEVICE,
        cache_dir: Path | None = None,
        downloader: GcsDownloader | None = None,
    ) -> PyannoteEngine:
        """Load a pipeline from a HF repo id, a local directory with ``config.yaml``, or a
        ``gs://bucket/prefix`` mirror of such a directory.

        Raises :class:`EngineUnavailable` with the reason when it cannot be loaded.
        """
        _quiet_env()
        started = time.perf_counter()
        try:
            from pyannote.audio import Pipeline
        except ImportError as exc:
            raise EngineUnavailable(f"pyannote.audio is not installed: {exc}") from exc

        torch_device = resolve_device(device)
        checkpoint: str | Path
        if source.startswith("gs://"):
            if cache_dir is None:
                cache_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                cache_dir = cache_dir / "speakerline" / "models"
            checkpoint = materialize_gcs_source(source, cache_dir, downloader)
        elif Path(source).exists():
            checkpoint = Path(source)
            if checkpoint.is_dir() and not (checkpoint / "config.yaml").exists():
                raise EngineUnavailable(f"{source} has no config.yaml")
        else:
            checkpoint = source
        try:
            pipeline = Pipeline.from_pretrained(
                checkpoint,
                token=token,
                cache_dir=str(cache_dir) if cache_dir is not None else None,
            )
        except EngineUnavailable:
            raise
        except Exception as exc:
            hint = "" if token else " (no Hugging Face token configured)"
            raise EngineUnavailable(
                f"cannot load pyannote pipeline {source!r}{hint}: {type(exc).__name__}: {exc}"
            ) from exc
        if pipeline is None:
            # pyannote returns None (after printing a message) for gated/missing repos
            hint = "" if token else "; set a Hugging Face token with access to it"
            raise EngineUnavailable(f"pyannote pipeline {source!r} could not be fetched{hint}")
        pipeline.to(torch_device)
        load_s = time.perf_counter() - started
        log.info(
            "diarization.engine_loaded",
            engine=cls.name,
            model=source,
            device=str(torch_device),
            load_s=round(load_s, 3),
        )
        return cls(pipeline, model=source, device=str(torch_device), load_s=load_s)

    def diarize(
        self, audio_path: Path, options: DiarizationOptions, progress: ProgressCallback | None = None
    ) -> DiarizationResult:
        return run_pipeline(
            self._pipeline,
            audio_path,
            options,
            engine=self.name,
            model=self.model,
            device=self.device,
            load_s=self.load_s,
            progress=progress,
        )


def _timings(load_s: float, inference_s: float, audio_s: float) -> dict[str, float]:
    return {
        "load_s": round(load_s, 4),
        "inference_s": round(inference_s, 4),
        "audio_s": round(audio_s, 4),
        "rtf": round(inference_s / audio_s, 4) if audio_s > 0 else 0.0,
    }
