"""Long recordings in bounded pieces, with one set of speakers across the whole recording.

A pyannote pipeline keeps the whole waveform, every window's segmentation and every embedding in
memory, and clusters all embeddings at once (an affinity matrix quadratic in their number): its
memory grows with the recording. Here a long recording is cut into pieces of ``piece_s`` seconds,
read from the WAV one at a time; each piece is diarized on its own (bounded memory, time linear in
the length), and the pieces' speakers are then *linked*: agglomerative clustering of the per-piece
speaker centroids (the mean embedding of each piece-local speaker, which the pipeline returns)
decides which local speakers are the same voice, so a voice keeps its label at minute 5 and at
hour 5. Recordings shorter than 1.5 pieces go through in one piece, exactly as before.

Pure parts (:func:`plan_pieces`, :func:`link_speakers`) are unit-tested; the engines call
:func:`..pyannote.run_pipeline`, which uses them (and `speakerline.timeline.merge_turns` to join turns cut at a
piece boundary).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from speakerline.timeline import speaker_label

__all__ = ["DEFAULT_PIECE_S", "LINK_THRESHOLD", "link_speakers", "plan_pieces"]

#: Length of a piece of a long recording (seconds). Short pieces bound memory (a piece's waveform,
#: segmentation, embeddings and clustering take tens of MB) and also count better: on
#: concatenated real-voice conversations (3 min, 10 voices) one clustering of the whole found 5
#: speakers (DER 46.5 %), pieces of 60 s / 120 s linked found all 10 (22.0 % / 17.8 %; EVAL.md).
#: Recordings under 3 minutes (every file of the quality suites) stay in one piece.
DEFAULT_PIECE_S = 120.0
#: Two piece-local speakers are the same voice when the cosine distance of their centroids is below
#: this (average linkage). Centroids average many embeddings, so one voice's centroids sit close
#: together (median distance 0.07); 0.3 keeps near-identical synthetic voices apart and never split
#: a real voice in the measurements of EVAL.md (0.5 merged synthetic voices; 0.6 and up real ones).
LINK_THRESHOLD = 0.3


def plan_pieces(num_samples: int, sample_rate: int, piece_s: float) -> list[tuple[int, int]]:
    """[start, end) sample ranges covering the recording: equal pieces of about ``piece_s``.

    One piece when the recording is shorter than 1.5 pieces; otherwise ``round(duration /
    piece_s)`` pieces of equal length (so none is a sliver).
    """
    if num_samples <= 0:
        return []
    duration = num_samples / sample_rate
    if piece_s <= 0 or duration < 1.5 * piece_s:
        return [(0, num_samples)]
    count = max(1, round(duration / piece_s))
    bounds = np.linspace(0, num_samples, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def link_speakers(
    centroids: Sequence[Mapping[str, np.ndarray]],
    *,
    threshold: float | None = None,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
) -> list[dict[str, str]]:
    """For each piece, a map from its local labels to global labels (``SPEAKER_00``, ...).

    ``centroids[i]``: piece i's local label -> centroid embedding. Average-linkage AHC on cosine
    distances, cut at ``threshold`` (default :data:`LINK_THRESHOLD`), or at the requested count
    (``num_speakers``, or the nearest count within ``min_speakers``/``max_speakers``). A centroid
    that is not finite (a speaker with no usable embedding) stays a speaker of its own. Global
    labels are numbered in piece order.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    keys = [(piece, label) for piece, mapping in enumerate(centroids) for label in mapping]
    if not keys:
        return [{} for _ in centroids]
    vectors = np.stack([np.asarray(centroids[p][label], dtype=np.float64) for p, label in keys])
    finite = np.all(np.isfinite(vectors), axis=1) & (np.linalg.norm(np.nan_to_num(vectors), axis=1) > 0)
    cluster_of = np.zeros(len(keys), dtype=int)
    usable = np.flatnonzero(finite)
    if len(usable) == 1:
        cluster_of[usable] = 1
    elif len(usable) > 1:
        unit = vectors[usable] / np.linalg.norm(vectors[usable], axis=1, keepdims=True)
        tree = linkage(unit, method="average", metric="cosine")
        labels = fcluster(tree, t=LINK_THRESHOLD if threshold is None else threshold, criterion="distance")
        want = _wanted_count(int(labels.max()), len(usable), num_speakers, min_speakers, max_speakers)
        if want is not None:
            labels = fcluster(tree, t=want, criterion="maxclust")
        cluster_of[usable] = labels
    next_cluster = int(cluster_of.max()) + 1
    for index in np.flatnonzero(~finite):
        cluster_of[index] = next_cluster
        next_cluster += 1

    names: dict[int, str] = {}
    mappings: list[dict[str, str]] = [{} for _ in centroids]
    for (piece, label), cluster in zip(keys, cluster_of, strict=True):
        if int(cluster) not in names:
            names[int(cluster)] = speaker_label(len(names))
        mappings[piece][label] = names[int(cluster)]
    return mappings


def _wanted_count(found: int, available: int, num: int | None, low: int | None, high: int | None) -> int | None:
    if num is not None:
        return min(num, available)
    if low is not None and found < low:
        return min(low, available)
    if high is not None and found > high:
        return high
    return None
