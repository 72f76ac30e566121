"""Fixtures for the dependency tests: a Hugging Face hub cache in tmp_path, fixture copies, the policy."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from deps_helpers import CLEAN_BASE_COMMIT, HUB, MODELS, install_repo

from mlgate.analyzers.core.policy import Policy


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty hub cache, exported as HF_HUB_CACHE (what default_resolver reads)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture()
def acme_hub(hub_cache) -> Path:
    """The hub cache holding every fixture repo under ``acme/``."""
    install_repo(hub_cache, "acme/pickled-base", HUB / "acme--pickled-base")
    install_repo(hub_cache, "acme/clean-base", HUB / "acme--clean-base", commit=CLEAN_BASE_COMMIT)
    install_repo(hub_cache, "acme/clean-looking-base", HUB / "acme--clean-looking-base")
    install_repo(hub_cache, "acme/evil-code", HUB / "acme--evil-code")
    return hub_cache


@pytest.fixture()
def model_copy(tmp_path) -> Callable[[str], Path]:
    """Copy a committed fixture model into tmp_path (tests may modify it)."""

    def copy(name: str) -> Path:
        dest = tmp_path / "models" / name
        shutil.copytree(MODELS / name, dest)
        return dest

    return copy


@pytest.fixture()
def policy() -> Policy:
    return Policy()
