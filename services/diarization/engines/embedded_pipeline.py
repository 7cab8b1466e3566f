"""The embedded engine's pipeline: pyannote's ``SpeakerDiarization`` with CAM++ embeddings, the speaker count
taken from the soft powerset output (:func:`soft_speaker_count`), local speakers split at pauses
(:func:`split_local_speakers`) and ``HintedClustering`` (spectral with an eigengap count, AHC at a requested count)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from .base import EngineUnavailable

SEGMENTATION_FILE = Path("pyannote_segmentation_3.0") / "pytorch_model.bin"
CAMPPLUS_FILE = Path("speech_campplus_sv_zh_en_16k-common_advanced") / "campplus_cn_en_common.pt"


def split_local_speakers(segmentations: Any, *, min_gap_frames: int) -> Any:
    """Give every separate stretch of a window-local speaker its own local-speaker column.

    segmentation-3.0 sometimes gives two different people the same local label inside one
    10 s window when they take turns with a pause in between; embedding that label would
    mix both voices. Splitting each local speaker's activity at pauses of at least
    ``min_gap_frames`` frames lets each stretch be embedded (and clustered) on its own.
    Instantaneous speaker counts are unchanged (same frames are active), so pyannote's
    reconstruction works as before.
    """
    import numpy as np
    from pyannote.core import SlidingWindowFeature

    data = np.nan_to_num(segmentations.data)
    num_chunks, num_frames, num_speakers = data.shape
    pieces: list[list[np.ndarray]] = []
    for c in range(num_chunks):
        chunk_pieces = []
        for s in range(num_speakers):
            active = data[c, :, s] > 0.5
            if not active.any():
                continue
            on = np.flatnonzero(active)
            breaks = np.flatnonzero(np.diff(on) > min_gap_frames)
            for run in np.split(on, breaks + 1):
                mask = np.zeros(num_frames, dtype=data.dtype)
                mask[run[0] : run[-1] + 1] = data[c, run[0] : run[-1] + 1, s]
                chunk_pieces.append(mask)
        pieces.append(chunk_pieces)
    width = max(num_speakers, max((len(p) for p in pieces), default=0))
    split = np.zeros((num_chunks, num_frames, width), dtype=data.dtype)
    for c, chunk_pieces in enumerate(pieces):
        for k, mask in enumerate(chunk_pieces):
            split[c, :, k] = mask
    return SlidingWindowFeature(split, segmentations.sliding_window)


#: Frame-level speaker count from the segmentation model's soft powerset output, averaged
#: over the overlapping windows: a frame has speech when P(speech) >= SPEECH_THRESHOLD and a
#: second speaker when P(two or more speakers) >= OVERLAP_THRESHOLD as well. pyannote rounds
#: the average of hard per-window decisions instead, which drops quiet speech that only some
#: windows pick up and most overlaps (in real meetings 21 % of speaker time is overlap).
#: Real meetings want these low, tightly referenced read speech wants them high; these sit
#: in the middle of that trade-off (EVAL.md: real-dev missed speech 21.7 % -> 17.0 %).
SPEECH_THRESHOLD = 0.4
OVERLAP_THRESHOLD = 0.3
#: A recording whose strongest speech evidence stays below SPEECH_THRESHOLD (a few quiet,
#: far-field words) would come back empty: there the threshold follows the recording's own
#: peak (SPEECH_RELATIVE x its highest averaged P(speech)), down to SPEECH_FLOOR, below which
#: nothing is called speech. Recordings with clear speech are unaffected.
SPEECH_RELATIVE = 0.9
SPEECH_FLOOR = 0.25
#: With a speaker-count hint, centroid-linkage AHC on CAM++ embeddings (cosine distance)
#: cut at the requested count; clusters are kept however small (see HintedClustering).
CLUSTERING_THRESHOLD = 0.9


def soft_speaker_count(
    log_probs: Any,
    powerset_sizes: Any,
    frames: Any,
    *,
    speech_threshold: float = SPEECH_THRESHOLD,
    overlap_threshold: float = OVERLAP_THRESHOLD,
    speech_relative: float = SPEECH_RELATIVE,
    speech_floor: float = SPEECH_FLOOR,
) -> Any:
    """Instantaneous speaker count (0, 1 or 2 per frame) from soft powerset segmentation.

    ``log_probs``: (num_chunks, num_frames, num_powerset_classes) ``SlidingWindowFeature`` of
    log-probabilities; ``powerset_sizes[k]``: number of speakers in class ``k``.
    """
    import numpy as np
    from pyannote.audio.core.inference import Inference
    from pyannote.core import SlidingWindowFeature

    probs = np.exp(np.nan_to_num(log_probs.data, nan=-np.inf))
    speech = 1.0 - probs[..., powerset_sizes == 0].sum(axis=-1)
    overlap = probs[..., powerset_sizes >= 2].sum(axis=-1)

    def aggregate(values: Any) -> Any:
        return Inference.aggregate(
            SlidingWindowFeature(values[..., None], log_probs.sliding_window),
            frames,
            hamming=False,
            missing=0.0,
            skip_average=False,
        )

    speech_avg, overlap_avg = aggregate(speech), aggregate(overlap)
    peak = float(np.max(speech_avg.data, initial=0.0))
    threshold = min(speech_threshold, max(speech_floor, speech_relative * peak))
    active = speech_avg.data >= threshold
    count = active.astype(np.uint8) + (active & (overlap_avg.data >= overlap_threshold)).astype(np.uint8)
    return SlidingWindowFeature(count, speech_avg.sliding_window)


def build_pipeline(
    weights_dir: Path,
    *,
    segmentation_step: float,
    onnxruntime: bool = False,
    num_threads: int | None = None,
    cache_dir: Path | None = None,
) -> Any:
    import numpy as np
    import torch
    from pyannote.audio import Inference, Model
    from pyannote.audio.core.plda import PLDA
    from pyannote.audio.pipelines import SpeakerDiarization
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering, BaseClustering
    from pyannote.audio.utils.powerset import Powerset
    from pyannote.core import SlidingWindowFeature

    from .campplus import CAMPPlusEmbedding
    from .spectral_clustering import SpectralClustering

    loaded = Model.from_pretrained(str(weights_dir / SEGMENTATION_FILE))
    if loaded is None:  # pragma: no cover - pyannote returns None on odd failures
        raise EngineUnavailable(f"could not load {weights_dir / SEGMENTATION_FILE}")
    segmentation: Model = loaded
    embedding = CAMPPlusEmbedding.from_state_dict_file(weights_dir / CAMPPLUS_FILE)
    if onnxruntime:
        embedding.run_on_onnxruntime(num_threads=num_threads, cache_dir=cache_dir)
    specifications: Any = segmentation.specifications  # one task: a single Specifications
    powerset = Powerset(len(specifications.classes), specifications.powerset_max_classes)
    mapping: Any = powerset.mapping
    powerset_sizes = mapping.sum(dim=1).numpy()

    class _UnusedPLDA(PLDA):
        """SpeakerDiarization insists on a PLDA; these clusterings never use it."""

        def __init__(self) -> None:
            pass

    class HintedAgglomerativeClustering(AgglomerativeClustering):
        """pyannote's AHC keeping small clusters, for runs with a speaker-count hint."""

        def filter_embeddings(
            self, embeddings: Any, segmentations: Any = None, min_active_ratio: float | None = None
        ) -> Any:
            ratio = SpectralClustering.min_active_ratio if min_active_ratio is None else min_active_ratio
            return super().filter_embeddings(embeddings, segmentations=segmentations, min_active_ratio=ratio)

    class HintedClustering(BaseClustering):
        """Spectral clustering when the count is estimated, AHC when the caller gives one.

        With no hint, spectral clustering with its eigengap count is the better estimator on
        real voices (EVAL.md). Asked for N speakers, k-means on the spectral embedding
        splits the dominant voice to reach N, while a quiet participant's few embeddings
        stay merged into someone else's; cutting the AHC dendrogram at N keeps outlying
        embeddings apart instead (real-dev with the reference count: DER 39.7 % -> 26.4 %).
        """

        def __init__(self) -> None:
            super().__init__(metric="cosine")
            self.estimated = SpectralClustering()
            self.hinted = HintedAgglomerativeClustering(metric="cosine")

        def __call__(
            self,
            embeddings: Any,
            segmentations: Any = None,
            num_clusters: int | None = None,
            min_clusters: int | None = None,
            max_clusters: int | None = None,
            **kwargs: Any,
        ) -> Any:
            hinted = num_clusters is not None or (min_clusters or 1) > 1
            clustering = self.hinted if hinted else self.estimated
            return clustering(
                embeddings,
                segmentations=segmentations,
                num_clusters=num_clusters,
                min_clusters=min_clusters,
                max_clusters=max_clusters,
                **kwargs,
            )

    class EmbeddedSpeakerDiarization(SpeakerDiarization):
        def __init__(self) -> None:
            super().__init__(
                segmentation=segmentation,
                segmentation_step=segmentation_step,
                embedding=embedding,
                embedding_exclude_overlap=True,
                plda=_UnusedPLDA(),
                clustering="AgglomerativeClustering",
                segmentation_batch_size=16,
                embedding_batch_size=16,
            )
            self.klustering = "HintedClustering"
            self.clustering = HintedClustering()
            # soft powerset output of the same windows (the pipeline's own Inference hardens it)
            self._soft_segmentation = Inference(
                segmentation,
                duration=self._segmentation.duration,
                step=self._segmentation.step,
                skip_aggregation=True,
                skip_conversion=True,
                batch_size=16,
            )
            self._soft: Any = None

        min_gap_frames = 6

        def get_segmentations(self, file: Any, hook: Any = None) -> Any:
            # one forward pass: keep the soft output for speaker counting, hand pyannote the
            # hard multi-label segmentation it expects, each local speaker split at pauses
            if hook is not None:
                hook = functools.partial(hook, "segmentation", None)
            soft: Any = self._soft_segmentation(file, hook=hook)
            self._soft = soft
            hard = powerset.to_multilabel(torch.from_numpy(np.asarray(soft.data)), soft=False).numpy()
            return split_local_speakers(
                SlidingWindowFeature(hard, soft.sliding_window), min_gap_frames=self.min_gap_frames
            )

        def speaker_count(  # type: ignore[override]  # pyannote's is a staticmethod; this needs the file's soft output
            self, binarized_segmentations: Any, frames: Any, warm_up: Any = (0.0, 0.0)
        ) -> Any:
            count = soft_speaker_count(self._soft, powerset_sizes, frames)
            if not np.any(np.nan_to_num(binarized_segmentations.data)):
                # no window names a speaker (faint noise): nobody to give the soft speech to
                count.data[:] = 0
            return count

    pipeline = EmbeddedSpeakerDiarization()
    pipeline.instantiate(
        {
            "segmentation": {"min_duration_off": 0.0},
            "clustering": {
                "hinted": {"method": "centroid", "threshold": CLUSTERING_THRESHOLD, "min_cluster_size": 1},
            },
        }
    )
    return pipeline
