"""The training prompts: one dataset row per episode, keyed so the rollout function can find its dialogue.

GRPOTrainer hands ``rollout_func`` the ``prompt`` column only, so a row's prompt is the episode's key:
``<dialogue id>`` for a whole-dialogue episode, ``<dialogue id>@<question index>`` for a question episode. The
other columns (``dialogue_id``, ``question``, ``db_id``, ``hardness``, ``depth``) drive the curriculum and reach
the reward functions. ``hardness`` is the official Spider level of the question's gold SQL (of a dialogue: its
hardest question); ``depth`` is the question's 1-based position (of a dialogue: its number of questions).

A question whose gold SQL does not parse or fails to execute cannot be rewarded fairly and is left out (a
dialogue with any such question too), as are dialogues whose database is missing; :class:`RowStats` counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from mtsql.data.dialogue import Dialogue
from mtsql.data.stats import analyze_turns
from mtsql.sql.hardness import HARDNESS_LEVELS
from mtsql.train.rl.config import EpisodeKind

_SEPARATOR = "@"


def episode_key(dialogue_id: str, question: int | None) -> str:
    """The prompt of an episode's row: the dialogue's id, and the question's index for a question episode."""
    return dialogue_id if question is None else f"{dialogue_id}{_SEPARATOR}{question}"


def parse_key(key: str) -> tuple[str, int | None]:
    """``(dialogue id, question index or None)`` of an :func:`episode_key`."""
    dialogue_id, separator, question = key.rpartition(_SEPARATOR)
    return (dialogue_id, int(question)) if separator and question.isdigit() else (key, None)


@dataclass(slots=True)
class RowStats:
    """Episodes kept, and questions left out: database missing, gold unusable, hardness filtered out, gold
    returning no rows (with ``drop_empty_gold``)."""

    rows: int = 0
    missing_database: int = 0
    unusable_gold: int = 0
    filtered: int = 0
    empty_gold: int = 0


def episode_rows(
    dialogues: Sequence[Dialogue],
    db_dir: str | Path,
    *,
    episode: EpisodeKind,
    hardness: Sequence[str],
    drop_empty_gold: bool = False,
) -> tuple[list[dict[str, Any]], RowStats]:
    """The dataset rows of ``dialogues`` for ``episode`` episodes, keeping the levels in ``hardness``; with
    ``drop_empty_gold``, no question (no dialogue, for dialogue episodes) whose gold returns no rows, where any
    empty result is paid as an execution match."""
    facts = {(f.dialogue_id, f.turn_index): f for f in analyze_turns(dialogues, db_dir=db_dir, tables={})}
    stats = RowStats()
    rows: list[dict[str, Any]] = []
    for dialogue in dialogues:
        turns = [facts[dialogue.id, turn.index] for turn in dialogue.turns]
        if turns and turns[0].database_missing:
            stats.missing_database += len(turns)
            continue
        base = {"dialogue_id": dialogue.id, "db_id": dialogue.db_id}
        if episode == "dialogue":
            if not all(fact.usable for fact in turns):
                stats.unusable_gold += len(turns)
                continue
            if drop_empty_gold and any(fact.empty_gold for fact in turns):
                stats.empty_gold += len(turns)
                continue
            level = max((cast(str, f.hardness) for f in turns), key=HARDNESS_LEVELS.index)
            if level not in hardness:
                stats.filtered += len(turns)
                continue
            rows.append({"prompt": episode_key(dialogue.id, None), **base, "hardness": level, "depth": len(turns)})
            continue
        for fact in turns:
            if not fact.usable:
                stats.unusable_gold += 1
            elif fact.hardness not in hardness:
                stats.filtered += 1
            elif drop_empty_gold and fact.empty_gold:
                stats.empty_gold += 1
            else:
                key = episode_key(dialogue.id, fact.turn_index)
                question = {"question": fact.turn_index, "hardness": fact.hardness, "depth": fact.turn_index + 1}
                rows.append({"prompt": key, **base, **question})
    stats.rows = len(rows)
    return rows, stats
