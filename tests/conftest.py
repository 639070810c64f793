"""Shared fixtures: real data under ``../shared/data`` (or ``$SIGNALS_DATA``), skipped where absent, and
``one_torch_thread`` for the torch test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from signals.paths import data_root


def shared_dataset(name: str) -> Path:
    """Path of a real dataset folder, or skip the test saying where it was looked for."""
    path = data_root() / name
    if not path.exists():
        pytest.skip(f"real dataset {name!r} not found at {path} (set SIGNALS_DATA to its parent folder)")
    return path


@pytest.fixture
def hapt_root() -> Path:
    return shared_dataset("uci-hapt")


@pytest.fixture
def librispeech_root() -> Path:
    return shared_dataset("librispeech-mini")


@pytest.fixture
def vctk_root() -> Path:
    return shared_dataset("vctk-wideband")


@pytest.fixture
def basicmotions_root() -> Path:
    return shared_dataset("uea-basicmotions")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small ops on shared CI cores: one torch thread avoids OpenMP oversubscription (10x faster here).

    Use it for a whole module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; torch is
    imported here, not at the top, so torch-free test modules stay torch-free.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
