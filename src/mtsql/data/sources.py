"""Where a run's dialogues come from: a benchmark split under a data folder, or a bundled example.

Every command and trainer that runs the agent over dialogues needs the same three things (the dialogues, the
folder of their databases, the ``tables.json`` whose foreign keys the exact match uses), so they are found in
one place.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from mtsql.data.dialogue import DATASETS, Dialogue
from mtsql.data.loaders import DatasetNotFoundError, load_dialogues, read_dataset_file
from mtsql.data.schema import find_database_dir, find_tables_json
from mtsql.errors import ConfigError


@dataclass(frozen=True, slots=True)
class DialogueSource:
    """Dialogues with their database folder and ``tables.json`` (``None`` when the data has none: the rewards
    then read the foreign keys from the SQLite files)."""

    dialogues: list[Dialogue]
    db_dir: Path
    tables: Path | None


def load_source(
    *,
    dataset: str | None = None,
    split: str = "dev",
    data_dir: str | os.PathLike[str] | None = None,
    example: str | None = None,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> DialogueSource:
    """The first ``limit`` dialogues of ``dataset``'s ``split`` under ``data_dir``, or of the bundled ``example``;
    or, with ``sample``, that many dialogues drawn at random with ``seed`` (in the dataset's order). A sample
    spreads over the databases, where the first dialogues of a split often share one (SParC dev's first 12 are
    all ``flight_2``).

    Raises ``ValueError`` for a bad combination or name and :class:`DatasetNotFoundError` when files are missing.
    """
    if (dataset is None) == (example is None):
        raise ConfigError("give exactly one of a dataset and an example")
    if example is not None:
        from mtsql.examples import load_example  # the examples build their databases with the data layer

        bundled = load_example(example)
        dialogues = list(read_dataset_file(bundled.dialogues, "sparc", "example").dialogues)
        return DialogueSource(_subset(dialogues, limit, sample, seed), bundled.db_dir, bundled.tables)
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    if data_dir is None:
        raise ConfigError("a data folder is required with a dataset")
    dialogues = load_dialogues(dataset, split, data_dir)  # type: ignore[arg-type]
    db_dir = find_database_dir(dataset, data_dir)  # type: ignore[arg-type]
    try:
        tables: Path | None = find_tables_json(dataset, data_dir)  # type: ignore[arg-type]
    except DatasetNotFoundError:
        tables = None
    return DialogueSource(_subset(dialogues, limit, sample, seed), db_dir, tables)


def _subset(dialogues: list[Dialogue], limit: int | None, sample: int | None, seed: int) -> list[Dialogue]:
    if sample is None:
        return dialogues[:limit]
    if limit is not None:
        raise ConfigError("give a limit or a sample, not both")
    if sample < 1:
        raise ConfigError(f"sample must be at least 1, not {sample}")
    chosen = sorted(random.Random(seed).sample(range(len(dialogues)), min(sample, len(dialogues))))
    return [dialogues[i] for i in chosen]
