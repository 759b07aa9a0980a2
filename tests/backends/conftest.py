"""Fixtures of the backend tests: one tiny checkpoint per module, built under a temporary cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module", autouse=True)
def example_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The bundled example's database (the tokenizer's corpus) is built under a temporary cache, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen3 checkpoint, with heads of 64 dimensions: a size every vLLM attention kernel takes."""
    from mtsql.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", hidden_size=128, num_heads=2, seed=0)
