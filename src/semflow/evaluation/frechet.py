"""Fréchet distance between two Gaussians fitted to feature sets (the distance behind FID).

For ``N(mu1, S1)`` and ``N(mu2, S2)``::

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})

:class:`FeatureStatistics` streams features of shape ``(N, D)`` into additive float64 sums, so statistics
from several batches or processes combine by plain addition (an all-reduce sum). Features are whatever an
extractor produced (for FID, Inception pool features with ``D = 2048``); they carry no fixed unit.
"""

from __future__ import annotations

import numpy as np
import torch

from semflow.errors import SemflowInputError

Array = torch.Tensor | np.ndarray


class FeatureStatistics:
    """Running count, sum and sum of outer products of feature vectors, in float64.

    Stored as additive sums (not a running mean) so that :meth:`merge` — and an all-reduce across
    processes — is a plain sum; float64 keeps the ``sum(x x^T) - N mu mu^T`` cancellation harmless for
    features of order 1 to 100 such as Inception's.

    Attributes:
        count: ``N``, number of feature vectors seen.
        feature_sum: ``(D,)`` sum of the vectors, ``None`` before the first update.
        outer_sum: ``(D, D)`` sum of ``x x^T``, ``None`` before the first update.
    """

    def __init__(self) -> None:
        self.count = 0
        self.feature_sum: torch.Tensor | None = None
        self.outer_sum: torch.Tensor | None = None

    @property
    def dim(self) -> int | None:
        """``D``, fixed by the first update; ``None`` while empty."""
        return None if self.feature_sum is None else self.feature_sum.shape[0]

    def _check_dim(self, dim: int, what: str) -> None:
        if self.dim is not None and dim != self.dim:
            raise SemflowInputError(f"{what} have dimension {dim}, expected D={self.dim} as accumulated so far")

    def update(self, features: torch.Tensor) -> None:
        """Add a batch of feature vectors ``(N, D)``; the sums stay on the first batch's device."""
        if features.ndim != 2:
            raise SemflowInputError(f"features of shape {tuple(features.shape)}: expected (N, D)")
        self._check_dim(features.shape[1], "features")
        x = features.detach().to(torch.float64)
        if self.feature_sum is None:
            self.feature_sum = x.new_zeros(x.shape[1])
            self.outer_sum = x.new_zeros(x.shape[1], x.shape[1])
        x = x.to(self.feature_sum.device)
        self.feature_sum += x.sum(dim=0)
        self.outer_sum += x.T @ x
        self.count += x.shape[0]

    def merge(self, other: FeatureStatistics) -> None:
        """Add another accumulator's features (for example one gathered from another process)."""
        if other.feature_sum is None or other.outer_sum is None:
            return
        self._check_dim(other.feature_sum.shape[0], "merged statistics")
        if self.feature_sum is None or self.outer_sum is None:
            self.feature_sum = other.feature_sum.clone()
            self.outer_sum = other.outer_sum.clone()
        else:
            self.feature_sum += other.feature_sum.to(self.feature_sum.device)
            self.outer_sum += other.outer_sum.to(self.outer_sum.device)
        self.count += other.count

    @property
    def mean(self) -> torch.Tensor:
        """``(D,)`` float64 mean of all features seen."""
        if self.feature_sum is None:
            raise SemflowInputError("feature statistics are empty: update them with at least one feature vector")
        return self.feature_sum / self.count

    @property
    def covariance(self) -> torch.Tensor:
        """``(D, D)`` float64 unbiased covariance (divides by ``N - 1``, like ``numpy.cov``)."""
        if self.count < 2 or self.outer_sum is None:
            raise SemflowInputError(f"covariance needs at least 2 feature vectors, got {self.count}")
        mu = self.mean
        return (self.outer_sum - self.count * torch.outer(mu, mu)) / (self.count - 1)


def _psd_sqrt(sigma: torch.Tensor) -> torch.Tensor:
    """Symmetric square root ``(D, D)`` of a symmetric PSD matrix, rounding negative eigenvalues to 0."""
    eigenvalues, eigenvectors = torch.linalg.eigh(sigma)
    return (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def frechet_distance(mu1: Array, sigma1: Array, mu2: Array, sigma2: Array) -> float:
    """Squared Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``tr((S1 S2)^{1/2})`` is computed without the non-symmetric ``sqrtm(S1 S2)`` of the reference
    implementations: ``S1 S2`` has the same eigenvalues as the symmetric PSD matrix
    ``M = S1^{1/2} S2 S1^{1/2}`` (``AB`` and ``BA`` share their eigenvalues, with ``A = S1^{1/2}``), so the
    trace is ``sum(sqrt(eig(M)))``. Both square roots come from ``eigh``, with round-off negative
    eigenvalues clamped to 0; this stays accurate for the rank-deficient covariances of fewer samples than
    dimensions, where ``scipy.linalg.sqrtm`` warns and may return complex values. Computed in float64 on
    ``mu1``'s device.

    Args:
        mu1: ``(D,)`` mean of the first feature set.
        sigma1: ``(D, D)`` symmetric PSD covariance of the first feature set.
        mu2: ``(D,)`` mean of the second feature set.
        sigma2: ``(D, D)`` symmetric PSD covariance of the second feature set.

    Returns:
        The squared distance ``>= 0`` (tiny negative round-off is returned as 0), in squared feature units.
    """
    m1 = torch.as_tensor(mu1, dtype=torch.float64)
    device = m1.device
    m2, s1, s2 = (torch.as_tensor(a, dtype=torch.float64).to(device) for a in (mu2, sigma1, sigma2))
    if m1.ndim != 1:
        raise SemflowInputError(f"mu1 has shape {tuple(m1.shape)}, expected (D,)")
    d = m1.shape[0]
    for name, value, shape in (("mu2", m2, (d,)), ("sigma1", s1, (d, d)), ("sigma2", s2, (d, d))):
        if tuple(value.shape) != shape:
            raise SemflowInputError(f"{name} has shape {tuple(value.shape)}, expected {shape} (D={d} from mu1)")
    root1 = _psd_sqrt(s1)
    m = root1 @ s2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    distance = (m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * trace_sqrt
    return max(float(distance), 0.0)


def frechet_distance_between(a: FeatureStatistics, b: FeatureStatistics) -> float:
    """:func:`frechet_distance` between the Gaussians fitted to two accumulated feature sets."""
    if a.dim != b.dim:
        raise SemflowInputError(f"feature statistics have dimensions {a.dim} and {b.dim}; they must match")
    return frechet_distance(a.mean, a.covariance, b.mean, b.covariance)
