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


def test_a_seeded_sample_keeps_the_dataset_order(data_dir: Path) -> None:
    every = load_source(dataset="sparc", split="dev", data_dir=data_dir).dialogues
    sample = load_source(dataset="sparc", split="dev", data_dir=data_dir, sample=24, seed=0).dialogues
    again = load_source(dataset="sparc", split="dev", data_dir=data_dir, sample=24, seed=0).dialogues
    other = load_source(dataset="sparc", split="dev", data_dir=data_dir, sample=24, seed=1).dialogues
    assert [d.id for d in sample] == [d.id for d in again] != [d.id for d in other]
    positions = [d.position for d in sample]
    assert len(sample) == 24 and positions == sorted(positions) and {d.id for d in sample} <= {d.id for d in every}
    assert len({d.db_id for d in sample}) > 10  # spread over the databases, unlike the first 24 dialogues
    assert len(load_source(example="festival", sample=1000).dialogues) == 36  # at most every dialogue
    with pytest.raises(ValueError, match="a limit or a sample"):
        load_source(example="festival", limit=3, sample=3)
    with pytest.raises(ValueError, match="at least 1"):
        load_source(example="festival", sample=0)


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
