"""Spectral clustering of speaker embeddings with eigengap speaker-count estimation.

Follows 3D-Speaker's ``SpectralCluster`` (Apache-2.0,
https://github.com/modelscope/3D-Speaker/blob/main/speakerlab/process/cluster.py): cosine
affinity, per-row p-pruning, unnormalised Laplacian, eigengap over the smallest eigenvalues
to pick the number of speakers (within the allowed range), k-means on the spectral
embedding, then merging of clusters whose centroids are very similar and re-assignment of
tiny clusters. ``spectral_clustering.SpectralClustering`` plugs this into pyannote's ``BaseClustering`` so the
rest of pyannote's ``SpeakerDiarization`` machinery (embedding filtering, centroid
assignment, reconstruction) is reused unchanged.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from sklearn.cluster import KMeans

__all__ = ["spectral_cluster"]


def _normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norm, 1e-12))


def _p_pruning(affinity: np.ndarray, pval: float, min_neighbours: int = 6) -> np.ndarray:
    """Keep, in each row, only the largest ``pval`` fraction (at least ``min_neighbours``)."""
    n = affinity.shape[0]
    keep = max(int(np.ceil(pval * n)), min(min_neighbours, n))
    pruned = affinity.copy()
    drop = np.argsort(pruned, axis=1)[:, : n - keep]
    np.put_along_axis(pruned, drop, 0.0, axis=1)
    return pruned


def _centroids(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.stack([x[labels == k].mean(axis=0) for k in np.unique(labels)])


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(labels, return_inverse=True)
    return np.asarray(inverse.reshape(labels.shape))


def spectral_cluster(
    embeddings: np.ndarray,
    *,
    num_clusters: int | None = None,
    min_clusters: int = 1,
    max_clusters: int = 10,
    pval: float = 0.2,
    merge_threshold: float = 0.65,
    min_cluster_size: int = 3,
    estimate_up_to: int = 10,
    max_embeddings: int = 2000,
) -> np.ndarray:
    """Cluster (n, dim) embeddings; return 0-based labels of shape (n,).

    ``merge_threshold`` 0.65 (was 0.75, set on synthetic voices whose CAM++ similarity within
    a speaker is 0.62-0.91): one real voice across a meeting room or a phone line often
    spreads into clusters whose centroids are 0.65-0.75 alike, and at 0.75 they stayed
    separate speakers (EVAL.md: real-voices suite 20 -> 22 of 24 counts exact).

    ``num_clusters`` fixes the count. Otherwise it is estimated with the eigengap heuristic
    (up to ``max(max_clusters, estimate_up_to)``) and clipped to
    ``[min_clusters, max_clusters]``, after which clusters whose
    centroids have cosine similarity above ``merge_threshold`` are merged and clusters with
    fewer than ``min_cluster_size`` members are folded into their nearest larger cluster
    (never going below ``min_clusters``). Above ``max_embeddings`` inputs, an evenly spaced
    subset is clustered and the rest are assigned to the nearest centroid.
    """
    x = _normalize(np.asarray(embeddings, dtype=np.float64))
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, dtype=int)
    if n > max_embeddings:
        # long recordings: the eigendecomposition is O(n^3); cluster an evenly spaced subset
        # and give every embedding the label of its nearest cluster centroid
        subset = np.linspace(0, n - 1, max_embeddings).round().astype(int)
        sub_labels = spectral_cluster(
            x[subset],
            num_clusters=num_clusters,
            min_clusters=min_clusters,
            max_clusters=max_clusters,
            pval=pval,
            merge_threshold=merge_threshold,
            min_cluster_size=min_cluster_size,
            estimate_up_to=estimate_up_to,
        )
        cents = _normalize(_centroids(x[subset], sub_labels))
        return _relabel(np.argmax(x @ cents.T, axis=1))
    max_clusters = max(1, min(max_clusters, n))
    min_clusters = max(1, min(min_clusters, max_clusters))
    if num_clusters is not None:
        num_clusters = max(1, min(num_clusters, n))
    if n < 3 or (num_clusters or max_clusters) == 1:
        k = num_clusters or 1
        return np.arange(n) % k if k > 1 else np.zeros(n, dtype=int)

    affinity = x @ x.T
    pruned = _p_pruning(affinity, pval)
    sym = 0.5 * (pruned + pruned.T)
    np.fill_diagonal(sym, 0.0)
    laplacian = np.diag(np.abs(sym).sum(axis=1)) - sym
    eigenvalues, eigenvectors = scipy.linalg.eigh(laplacian)

    if num_clusters is not None:
        k = num_clusters
    else:
        # eigengap: the largest gap lambda_(k+1) - lambda_k among the smallest eigenvalues.
        # Estimate over a wide range first and clip afterwards: when the caller's bounds
        # exclude the true count, the gaps inside the bounds carry no information.
        upper = min(n - 1, max(max_clusters, estimate_up_to))
        gaps = np.diff(eigenvalues[: upper + 1])
        k = int(np.argmax(gaps)) + 1 if gaps.size else 1
        k = int(np.clip(k, min_clusters, max_clusters))

    spectral = eigenvectors[:, :k]
    labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(spectral)
    labels = _relabel(labels)
    if num_clusters is not None:
        return labels

    # merge near-duplicate clusters (over-segmentation of one speaker)
    while labels.max() + 1 > min_clusters:
        cents = _normalize(_centroids(x, labels))
        sim = cents @ cents.T
        np.fill_diagonal(sim, -np.inf)
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if sim[i, j] < merge_threshold:
            break
        labels = _relabel(np.where(labels == j, i, labels))

    # fold tiny clusters into the nearest big one
    while labels.max() + 1 > min_clusters:
        sizes = np.bincount(labels)
        small = int(np.argmin(sizes))
        if sizes[small] >= min_cluster_size:
            break
        cents = _normalize(_centroids(x, labels))
        sim = cents @ cents[small]
        sim[small] = -np.inf
        labels = _relabel(np.where(labels == small, int(np.argmax(sim)), labels))
    return labels
