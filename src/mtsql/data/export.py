"""Export dialogues to Hugging Face ``datasets`` and to JSON lines or Parquet files.

One row per turn (with the earlier turns of its dialogue, which is what a model sees when it answers) or one
row per dialogue (turns nested). ``datasets`` is imported inside the functions that need it, so
``import mtsql.data`` stays light.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtsql.data.dialogue import Dialogue
from mtsql.errors import ConfigError

if TYPE_CHECKING:
    import datasets


class Unit(StrEnum):
    """One exported row per question or per dialogue."""

    TURN = "turn"
    DIALOGUE = "dialogue"


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    PARQUET = "parquet"


UNITS: tuple[str, ...] = tuple(unit.value for unit in Unit)
FORMATS: tuple[str, ...] = tuple(fmt.value for fmt in ExportFormat)

#: Hardness by ``(dialogue id, turn index)``, as :func:`mtsql.data.stats.gold_hardness` returns it.
HardnessMap = Mapping[tuple[str, int], str | None]


def turn_rows(dialogues: Iterable[Dialogue], hardness: HardnessMap | None = None) -> list[dict[str, Any]]:
    """One row per turn; ``hardness`` adds a ``hardness`` column."""
    rows = []
    for dialogue in dialogues:
        for turn in dialogue.turns:
            row: dict[str, Any] = {
                "id": f"{dialogue.id}/{turn.index}",
                "dialogue_id": dialogue.id,
                "dataset": dialogue.dataset,
                "split": dialogue.split,
                "position": dialogue.position,
                "db_id": dialogue.db_id,
                "turn_index": turn.index,
                "utterance": turn.utterance,
                "query": turn.query,
                "previous_utterances": [t.utterance for t in dialogue.history(turn.index)],
                "previous_queries": [t.query for t in dialogue.history(turn.index)],
            }
            if hardness is not None:
                row["hardness"] = hardness.get((dialogue.id, turn.index))
            rows.append(row)
    return rows


def dialogue_rows(dialogues: Iterable[Dialogue], hardness: HardnessMap | None = None) -> list[dict[str, Any]]:
    """One row per dialogue with its turns nested; ``hardness`` adds a ``hardness`` field to every turn."""
    rows = []
    for dialogue in dialogues:
        turns = []
        for turn in dialogue.turns:
            nested: dict[str, Any] = {"index": turn.index, "utterance": turn.utterance, "query": turn.query}
            if hardness is not None:
                nested["hardness"] = hardness.get((dialogue.id, turn.index))
            turns.append(nested)
        rows.append(
            {
                "dialogue_id": dialogue.id,
                "dataset": dialogue.dataset,
                "split": dialogue.split,
                "position": dialogue.position,
                "db_id": dialogue.db_id,
                "turns": turns,
                "final_utterance": dialogue.final_utterance,
                "final_query": dialogue.final_query,
            }
        )
    return rows


def features(unit: Unit, with_hardness: bool = False) -> datasets.Features:
    """The column types of an export, fixed so that empty lists and all-null columns keep their types."""
    from datasets import Features, Value

    text, number = Value("string"), Value("int64")
    common = {"dataset": text, "split": text, "position": number, "db_id": text}
    hardness = {"hardness": text} if with_hardness else {}
    if unit == "turn":
        return Features(
            {
                "id": text,
                "dialogue_id": text,
                **common,
                "turn_index": number,
                "utterance": text,
                "query": text,
                "previous_utterances": [text],
                "previous_queries": [text],
                **hardness,
            }
        )
    turn = {"index": number, "utterance": text, "query": text, **hardness}
    return Features({"dialogue_id": text, **common, "turns": [turn], "final_utterance": text, "final_query": text})


def to_hf_dataset(
    dialogues: Iterable[Dialogue], *, unit: Unit = "turn", hardness: HardnessMap | None = None
) -> datasets.Dataset:
    """The dialogues as a ``datasets.Dataset``, one row per turn or per dialogue."""
    from datasets import Dataset

    rows = _rows(dialogues, unit, hardness)
    return Dataset.from_list(rows, features=features(unit, hardness is not None))


def export_dialogues(
    dialogues: Iterable[Dialogue],
    out: Path | str,
    *,
    fmt: ExportFormat,
    unit: Unit = "turn",
    hardness: HardnessMap | None = None,
) -> int:
    """Write the dialogues to ``out`` as JSON lines or Parquet; returns the number of rows written."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        # The Arrow table carries the ``datasets`` features in its metadata, so ``load_dataset("parquet")``
        # reads the same types back; writing it directly skips ``Dataset.to_parquet``'s progress bar.
        dataset = to_hf_dataset(dialogues, unit=unit, hardness=hardness)
        pq.write_table(dataset.data.table, out)
        return len(dataset)
    rows = _rows(dialogues, unit, hardness)
    with out.open("w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


def _rows(dialogues: Iterable[Dialogue], unit: Unit, hardness: HardnessMap | None) -> list[dict[str, Any]]:
    if unit == "turn":
        return turn_rows(dialogues, hardness)
    if unit == "dialogue":
        return dialogue_rows(dialogues, hardness)
    raise ConfigError(f"unknown export unit {unit!r}: expected one of {', '.join(UNITS)}")
