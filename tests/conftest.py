"""Shared fixtures: tiny models that train in a second, and the path of ../shared when it exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny import TINY_NETWORK, tiny_train_args  # noqa: F401  (re-exported for older imports)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Decoded-image caches go to a temporary folder, never the user's ~/.cache."""
    import os

    os.environ["SEMFLOW_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder trained for 2 steps on 16x16 shapes."""
    from semflow.cli.main import main

    out = tmp_path_factory.mktemp("tiny") / "model"
    assert main(tiny_train_args(out)) == 0
    return out


@pytest.fixture
def shared() -> Path:
    """``../shared`` beside the checkout; skips the test on machines without it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (real data for tests ships only with the project's machines)")
    return SHARED
