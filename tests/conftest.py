"""Shared fixtures. Benchmark data comes from ``MTSQL_DATA_DIR`` (default ``../shared/data`` beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def benchmark_data_dir() -> Path:
    return Path(os.environ.get("MTSQL_DATA_DIR", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real SParC/CoSQL/Spider data; tests that need it skip with the reason when it is absent."""
    path = benchmark_data_dir()
    if not (path / "sparc" / "dev.json").is_file() or not (path / "database").is_dir():
        pytest.skip(
            f"benchmark data not found at {path} (set MTSQL_DATA_DIR to the folder with sparc/, cosql/, database/)"
        )
    return path
