"""Typed dialogues: the one shape every dataset is loaded into.

SParC interactions, CoSQL dialogues and single Spider questions all become a :class:`Dialogue` of
:class:`Turn` objects, so the environment, the agent and the evaluator handle a single structure. Spider
questions are one-turn dialogues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DatasetName(StrEnum):
    """The benchmarks mtsql reads (members are their strings: ``DatasetName.SPARC == "sparc"``)."""

    SPARC = "sparc"
    COSQL = "cosql"
    SPIDER = "spider"


DATASETS: tuple[str, ...] = tuple(name.value for name in DatasetName)


@dataclass(frozen=True, slots=True)
class Turn:
    """One question of a dialogue with its gold SQL.

    ``sql`` is the parsed query stored in the dataset file (the official nested structure), kept for callers
    that want it without re-parsing; it is left out of hashing because dictionaries are unhashable.
    """

    index: int
    utterance: str
    query: str
    sql: dict[str, Any] | None = field(default=None, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class Dialogue:
    """A dialogue (a SParC interaction, a CoSQL dialogue, or a Spider question) over one database.

    ``position`` is the record's index in its source file (counting records that were skipped as broken), so
    it stays stable across loads; ``id`` is ``dataset/split/position`` with the position zero-padded.
    SParC and CoSQL also state the goal of the whole dialogue as ``final_utterance``/``final_query``.
    """

    id: str
    dataset: DatasetName
    split: str
    position: int
    db_id: str
    turns: tuple[Turn, ...]
    final_utterance: str | None = None
    final_query: str | None = None

    def __len__(self) -> int:
        return len(self.turns)

    def history(self, index: int) -> tuple[Turn, ...]:
        """The turns before turn ``index``: what a model may see when it answers that turn."""
        return self.turns[:index]


def dialogue_id(dataset: DatasetName, split: str, position: int) -> str:
    """The stable id of the record at ``position`` of a dataset file, e.g. ``sparc/dev/0007``."""
    return f"{dataset}/{split}/{position:04d}"
