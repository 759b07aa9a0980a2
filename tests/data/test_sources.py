"""Dialogue sources: a bundled example or a benchmark split, with their databases and tables.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtsql.data import DatasetNotFoundError, load_source


def test_the_bundled_example() -> None:
    source = load_source(example="festival", limit=3)
    assert len(source.dialogues) == 3
    assert (source.db_dir / "festival" / "festival.sqlite").is_file() and source.tables is not None


def test_a_benchmark_split(data_dir: Path) -> None:
    source = load_source(dataset="sparc", split="dev", data_dir=data_dir)
    assert len(source.dialogues) == 422 and source.db_dir == data_dir / "database"
    assert source.tables == data_dir / "sparc" / "tables.json"


def test_bad_requests(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        load_source(dataset="sparc", example="festival")
    with pytest.raises(ValueError, match="exactly one"):
        load_source()
    with pytest.raises(ValueError, match="unknown dataset"):
        load_source(dataset="atis", data_dir=tmp_path)
    with pytest.raises(ValueError, match="data folder"):
        load_source(dataset="sparc")
    with pytest.raises(DatasetNotFoundError):
        load_source(dataset="sparc", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown example"):
        load_source(example="nope")
