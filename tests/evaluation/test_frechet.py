"""Fréchet distance against scipy's sqrtm formula and closed forms; streaming statistics against numpy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from semflow.errors import SemflowInputError
from semflow.evaluation.frechet import FeatureStatistics, frechet_distance, frechet_distance_between


def scipy_frechet(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """The reference formula of pytorch-fid / the FID paper's code: ``sqrtm`` of the product."""
    linalg = pytest.importorskip("scipy.linalg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns on the singular products of rank-deficient covariances
        covmean = np.real(linalg.sqrtm(s1 @ s2))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def gaussian_stats(rng: np.random.Generator, n: int, d: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` of ``n`` correlated samples; rank ``min(n - 1, d)``."""
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d) + shift
    return x.mean(axis=0), np.cov(x, rowvar=False)


@pytest.mark.parametrize(("d", "n1", "n2"), [(8, 200, 300), (64, 500, 400), (64, 20, 500), (64, 30, 40)])
def test_matches_scipy_sqrtm(d: int, n1: int, n2: int) -> None:
    # (64, 20, ...) and (64, 30, 40): fewer samples than dimensions, so singular covariances.
    rng = np.random.default_rng(d + n1 + n2)
    mu1, s1 = gaussian_stats(rng, n1, d, 0.0)
    mu2, s2 = gaussian_stats(rng, n2, d, 0.5)
    expected = scipy_frechet(mu1, s1, mu2, s2)
    got = frechet_distance(torch.from_numpy(mu1), torch.from_numpy(s1), torch.from_numpy(mu2), torch.from_numpy(s2))
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_accepts_numpy_arrays() -> None:
    rng = np.random.default_rng(0)
    mu1, s1 = gaussian_stats(rng, 100, 8, 0.0)
    mu2, s2 = gaussian_stats(rng, 100, 8, 1.0)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-8)


@pytest.mark.parametrize("n", [10, 1000])
def test_identical_statistics_give_zero(n: int) -> None:
    rng = np.random.default_rng(n)
    mu, s = (torch.from_numpy(a) for a in gaussian_stats(rng, n, 64, 3.0))
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-7)


def test_same_singular_covariance_leaves_mean_term() -> None:
    # tr((S S)^{1/2}) = tr(S) for PSD S, also rank-deficient: only ||mu1 - mu2||^2 remains.
    rng = np.random.default_rng(1)
    mu, s = (torch.from_numpy(a) for a in gaussian_stats(rng, 10, 32, 0.0))
    shift = torch.arange(32, dtype=torch.float64) / 10
    assert frechet_distance(mu, s, mu + shift, s) == pytest.approx(float(shift.square().sum()), rel=1e-7)


def test_diagonal_closed_form() -> None:
    # Diagonal covariances commute: d^2 = sum((mu1 - mu2)^2) + sum((sqrt(a) - sqrt(b))^2).
    g = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)
    a, b = torch.rand(16, generator=g, dtype=torch.float64) * 4, torch.rand(16, generator=g, dtype=torch.float64)
    a[3] = 0.0  # a zero variance, as in a degenerate feature
    expected = (mu1 - mu2).square().sum() + (a.sqrt() - b.sqrt()).square().sum()
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(float(expected), rel=1e-10)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(SemflowInputError, match="sigma2"):
        frechet_distance(torch.zeros(4), torch.eye(4), torch.zeros(4), torch.eye(5))


def test_streaming_updates_match_numpy() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(103, 12)) * 5 + 20
    stats = FeatureStatistics()
    for chunk in np.array_split(features, [1, 30, 31, 80]):  # uneven batches, one of a single vector
        stats.update(torch.from_numpy(chunk).float())
    features32 = features.astype(np.float32).astype(np.float64)  # what the float32 batches carried
    assert stats.count == 103 and stats.dim == 12
    np.testing.assert_allclose(stats.mean.numpy(), features32.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance.numpy(), np.cov(features32, rowvar=False), rtol=1e-9, atol=1e-9)


def test_merge_matches_all_at_once() -> None:
    rng = np.random.default_rng(3)
    features = torch.from_numpy(rng.normal(size=(50, 6)))
    first, second, empty = FeatureStatistics(), FeatureStatistics(), FeatureStatistics()
    first.update(features[:20])
    second.update(features[20:])
    first.merge(second)
    first.merge(empty)
    empty.merge(first)  # into an empty accumulator: a copy
    for stats in (first, empty):
        assert stats.count == 50
        np.testing.assert_allclose(stats.mean.numpy(), features.numpy().mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(stats.covariance.numpy(), np.cov(features.numpy(), rowvar=False), rtol=1e-10)


def test_distance_between_statistics() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(300, 8)), rng.normal(size=(200, 8)) * 2 + 1
    a, b = FeatureStatistics(), FeatureStatistics()
    a.update(torch.from_numpy(x))
    b.update(torch.from_numpy(y))
    expected = scipy_frechet(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert frechet_distance_between(a, b) == pytest.approx(expected, rel=1e-8)


def test_dimension_mismatch_raises() -> None:
    stats = FeatureStatistics()
    stats.update(torch.zeros(3, 4))
    with pytest.raises(SemflowInputError, match="dimension 5"):
        stats.update(torch.zeros(3, 5))
    other = FeatureStatistics()
    other.update(torch.zeros(3, 5))
    with pytest.raises(SemflowInputError, match="dimension 5"):
        stats.merge(other)
    with pytest.raises(SemflowInputError, match="dimensions 4 and 5"):
        frechet_distance_between(stats, other)
    with pytest.raises(SemflowInputError, match=r"\(N, D\)"):
        stats.update(torch.zeros(4))


def test_too_few_samples_raise() -> None:
    stats = FeatureStatistics()
    with pytest.raises(SemflowInputError, match="empty"):
        _ = stats.mean
    with pytest.raises(SemflowInputError, match="at least 2"):
        _ = stats.covariance
    stats.update(torch.ones(1, 3))
    assert torch.equal(stats.mean, torch.ones(3, dtype=torch.float64))
    with pytest.raises(SemflowInputError, match="got 1"):
        _ = stats.covariance
