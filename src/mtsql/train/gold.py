"""Gold trajectories: each dialogue's gold SQL played through the protocol, recorded as rollouts are.

A model that cannot follow the tool protocol yet learns it first from these (stage 1's bootstrap): for every
question, execute the gold SQL, judge the result ``pass``, from the second question on check the memory and
judge it ``pass``, then answer the gold SQL (:class:`~mtsql.env.GoldPolicy`). The messages are teacher-forced
through :class:`~mtsql.rollout.engine.Episode`, so a gold record has exactly the layout, tokens and masks of a
sampled one, and the SFT code needs no second path. A dialogue with a gold query that fails to execute is
skipped and counted: its trajectory would teach answering after ``no_pass``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mtsql.data.dialogue import Dialogue
from mtsql.data.schema import resolve_database_path
from mtsql.env.environment import GoldPolicy
from mtsql.rollout.engine import RolloutEngine
from mtsql.rollout.trajectory import Trajectory


@dataclass(slots=True)
class GoldStats:
    """Dialogues turned into trajectories, and those skipped (database missing, a gold query failing)."""

    written: int = 0
    missing_database: int = 0
    failing_gold: int = 0
    failing: list[str] = field(default_factory=list)


def gold_records(
    engine: RolloutEngine, dialogues: Iterable[Dialogue], stats: GoldStats | None = None
) -> Iterator[Trajectory]:
    """The gold trajectory record of each dialogue (sample 0), skipping and counting in ``stats`` those that
    cannot be one."""
    stats = stats if stats is not None else GoldStats()
    with asyncio.Runner() as runner:
        for dialogue in dialogues:
            if not resolve_database_path(engine.db_dir, dialogue.db_id).is_file():
                stats.missing_database += 1
                continue
            episode = engine.start(dialogue)
            runner.run(episode.play(policy=GoldPolicy(dialogue)))
            record = episode.record()
            if any(step.exec is not None and not step.exec["ok"] for step in record.steps):
                stats.failing_gold += 1
                stats.failing.append(dialogue.id)
                continue
            stats.written += 1
            yield record


def gold_rows(
    engine: RolloutEngine, dialogues: Iterable[Dialogue], stats: GoldStats | None = None
) -> list[dict[str, Any]]:
    """The SFT rows (loss on every question) of the gold trajectories that fit the engine's token budget."""
    from mtsql.train.data import sft_example

    return [sft_example(record) for record in gold_records(engine, dialogues, stats) if record.finish == "done"]
