"""KID: the unbiased MMD^2 under the cubic kernel, against closed forms, its expectation, and a brute-force sum."""

from __future__ import annotations

import itertools

import pytest
import torch

from semflow.errors import SemflowInputError
from semflow.evaluation.kid import kernel_distance, mmd2_unbiased, polynomial_kernel


def brute_force(x: torch.Tensor, y: torch.Tensor) -> float:
    """The estimator written as its three sums over index pairs, one term at a time."""
    k = lambda a, b: (float(a @ b) / a.shape[0] + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


def test_matches_the_sums_over_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(9, 5, generator=g, dtype=torch.float64) + 0.3
    assert mmd2_unbiased(x, y) == pytest.approx(brute_force(x, y), rel=1e-10)


def test_point_masses_give_the_kernel_distance() -> None:
    """Sets of copies of ``a`` and of ``b``: every off-diagonal term is known, ``k(a,a) + k(b,b) - 2 k(a,b)``; for
    ``a = 0`` and ``b = s 1`` in ``D`` dims that is ``1 + (s^2 + 1)^3 - 2``."""
    d, s = 4, 0.5
    a, b = torch.zeros(d, dtype=torch.float64), torch.full((d,), s, dtype=torch.float64)
    value = mmd2_unbiased(a.expand(6, d), b.expand(5, d))
    assert value == pytest.approx(1 + (s * s + 1) ** 3 - 2, rel=1e-12)
    assert polynomial_kernel(b[None], b[None]).item() == pytest.approx((s * s + 1) ** 3)


def test_a_set_against_itself_and_unbiasedness() -> None:
    """Two samples of one distribution: the estimates average to 0 (the biased V-statistic would stay above 0 by
    ~(E k(x,x) - E k(x,y)) (1/m + 1/n)); a set against itself is ~0 too; a shifted set is far from 0."""
    g = torch.Generator().manual_seed(1)
    values = torch.tensor([mmd2_unbiased(torch.randn(20, 8, generator=g), torch.randn(30, 8, generator=g))
                           for _ in range(400)])
    standard_error = float(values.std()) / 20
    assert abs(float(values.mean())) < 3 * standard_error
    x = torch.randn(50, 8, generator=g)
    biased_gap = float(polynomial_kernel(x, x).diagonal().mean() - polynomial_kernel(x, x).mean())
    assert abs(mmd2_unbiased(x, x)) < 0.05 * biased_gap
    assert mmd2_unbiased(x, x + 1.0) > 20 * standard_error


def test_subsets_give_a_spread_and_the_estimate_is_reproducible() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(40, 6, generator=g), torch.randn(60, 6, generator=g) + 0.5
    first, again = kernel_distance(x, y), kernel_distance(x, y)
    assert first == again and first.subset_size == 20 and first.subsets == 100
    assert first.kid == pytest.approx(mmd2_unbiased(x, y)) and first.std is not None and first.std > 0
    assert kernel_distance(x, y, subsets=0).std is None


def test_bad_shapes_raise() -> None:
    with pytest.raises(SemflowInputError, match="expected"):
        kernel_distance(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(SemflowInputError, match="at least 2"):
        kernel_distance(torch.zeros(1, 3), torch.zeros(4, 3))
