"""Kernel Inception Distance (Bińkowski et al., ICLR 2018, "Demystifying MMD GANs"), on any feature space.

KID is the squared maximum mean discrepancy between two feature sets under the cubic polynomial kernel

    k(x, y) = (x . y / D + 1)^3        (x, y in R^D)

estimated without bias (the diagonal terms ``k(x_i, x_i)`` left out):

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
              - 2 sum_{i, j} k(x_i, y_j) / (m n)

Unlike the Fréchet distance it has an unbiased estimator at any set size, so scores of 100-image test sets are
comparable with each other and with larger ones (its expectation is 0 for two samples of one distribution; a
single estimate can be slightly negative). :func:`kernel_distance` returns the estimate on all features and its
spread over random subsets, as Bińkowski et al. report KID as a mean and standard deviation over subsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semflow.errors import SemflowInputError


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> torch.Tensor:
    """``(x y^T / D + coef)^degree``: ``(m, D)`` and ``(n, D)`` to ``(m, n)`` (``gamma = 1/D``, KID's choice)."""
    return (x @ y.T / x.shape[1] + coef) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """The unbiased squared MMD under :func:`polynomial_kernel` of features ``(m, D)`` and ``(n, D)``, ``m, n >= 2``;
    computed in float64."""
    x, y = x.double(), y.double()
    m, n = x.shape[0], y.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


@dataclass(frozen=True)
class KernelDistance:
    """``kid``: the unbiased estimate on all features; ``std``: its standard deviation over ``subsets`` random
    subsets of ``subset_size`` features of each set (``None`` where the sets are too small to draw subsets)."""

    kid: float
    std: float | None
    subsets: int
    subset_size: int


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int | None = None,
                    generator: torch.Generator | None = None) -> KernelDistance:
    """KID between feature sets ``real`` ``(m, D)`` and ``fake`` ``(n, D)`` (module docstring).

    Args:
        subsets: random subsets for the spread (``0``: none).
        subset_size: features drawn without replacement from each set per subset; default ``min(m, n) // 2``, so that
            subsets differ (the spread of KID at half the test size; the full-set estimate varies less).
        generator: draws the subsets (default a fixed seed, so a score is reproducible).
    """
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise SemflowInputError(f"features of shapes {tuple(real.shape)} and {tuple(fake.shape)}: expected (m, D) "
                                "and (n, D)")
    m, n = real.shape[0], fake.shape[0]
    if min(m, n) < 2:
        raise SemflowInputError(f"KID needs at least 2 features per set, got {m} and {n}")
    kid = mmd2_unbiased(real, fake)
    size = min(m, n) // 2 if subset_size is None else int(subset_size)
    if subsets < 1 or size < 2 or size > min(m, n):
        return KernelDistance(kid, None, 0, size)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    values = torch.tensor([mmd2_unbiased(real[torch.randperm(m, generator=generator)[:size]],
                                         fake[torch.randperm(n, generator=generator)[:size]]) for _ in range(subsets)])
    return KernelDistance(kid, float(values.std()) if subsets > 1 else None, subsets, size)
