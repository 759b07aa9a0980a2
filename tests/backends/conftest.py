"""Fixtures of the backend tests: one tiny checkpoint per module, built under a temporary cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen3 checkpoint, with heads of 64 dimensions: a size every vLLM attention kernel takes."""
    from mtsql.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", hidden_size=128, num_heads=2, seed=0)
