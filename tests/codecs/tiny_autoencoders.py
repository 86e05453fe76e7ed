"""Fixtures for the codec tests: the tiny autoencoders of ``tests/tiny.py`` written to disk, and one thread.

A helper module rather than ``conftest.py``: ``tests/`` is not a package, so a second ``conftest.py`` here
would shadow ``tests/conftest.py`` for ``from conftest import ...``, and this folder cannot be a package
either (it would be named ``codecs``, like the standard library module). Test modules import the fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import write_tiny_kl, write_tiny_taesd_diffusers

@pytest.fixture
def make_kl() -> object:
    """The :func:`write_tiny_kl` factory, for tests that choose the latent normalisation."""
    return write_tiny_kl


@pytest.fixture
def kl_folder(tmp_path: Path) -> Path:
    write_tiny_kl(tmp_path / "kl")
    return tmp_path / "kl"


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    write_tiny_taesd_diffusers(tmp_path / "tiny")
    return tmp_path / "tiny"


@pytest.fixture
def images() -> torch.Tensor:
    """Two RGB images ``(2, 3, 16, 16)`` in ``[0, 1]``."""
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    """Run codec tests on one intra-op thread, restoring the setting afterwards.

    On the project's 2-core CI machines, two OpenMP threads add ~45 ms of synchronisation to every
    convolution (measured: a 64-channel 3x3 conv on 8x8 takes 0.6 ms on one thread, 50 ms on two), which
    made these tests 10x slower; one thread is faster at every size used here.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
