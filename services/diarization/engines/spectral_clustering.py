"""pyannote's ``BaseClustering`` backed by :func:`spectral.spectral_cluster`: the clustering step of the embedded
pipeline. Kept apart from the pure function so that importing that (tests, tooling) does not import pyannote.audio
(seconds)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pyannote.audio.pipelines.clustering import BaseClustering

from .spectral import spectral_cluster

__all__ = ["SpectralClustering"]


class SpectralClustering(BaseClustering):
    """pyannote ``BaseClustering`` backed by :func:`spectral_cluster`."""

    expects_num_clusters: bool = False

    def __init__(
        self,
        metric: str = "cosine",
        pval: float = 0.2,
        merge_threshold: float = 0.65,
        min_cluster_size: int = 3,
        constrained_assignment: bool = False,
    ) -> None:
        super().__init__(metric=metric, constrained_assignment=constrained_assignment)
        self.pval = pval
        self.merge_threshold = merge_threshold
        self.min_cluster_size = min_cluster_size

    #: a (window, local speaker) embedding is used to *find* clusters only when that speaker
    #: speaks alone for at least this fraction of the window; all are assigned afterwards
    min_active_ratio: float = 0.1

    def filter_embeddings(
        self,
        embeddings: np.ndarray,
        segmentations: Any = None,
        min_active_ratio: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return super().filter_embeddings(
            embeddings,
            segmentations=segmentations,
            min_active_ratio=self.min_active_ratio if min_active_ratio is None else min_active_ratio,
        )

    def cluster(
        self,
        embeddings: np.ndarray,
        min_clusters: int,
        max_clusters: int,
        num_clusters: int | None = None,
    ) -> np.ndarray:
        return spectral_cluster(
            embeddings,
            num_clusters=num_clusters,
            min_clusters=min_clusters,
            max_clusters=max_clusters,
            pval=self.pval,
            merge_threshold=self.merge_threshold,
            min_cluster_size=self.min_cluster_size,
        )
