"""Rollout records as the official evaluator's predictions, so rollouts are scored exactly as submissions.

The official evaluator pairs predictions with gold sessions by position, and a gold file need not follow the
dataset's order (CoSQL's groups dialogues by database), so each gold session is matched to the episode of the
same database and gold queries. A dialogue without an episode, and the questions an episode never reached
(its context ran out), get the empty prediction, and are counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mtsql.data.loaders import EMPTY_PREDICTION, GoldQuery, sql_line
from mtsql.rollout.trajectory import Trajectory


@dataclass(frozen=True, slots=True)
class EpisodePredictions:
    """Prediction sessions aligned with the gold sessions, and what had to be filled in."""

    sessions: list[list[str]]
    missing_sessions: int
    unreached_turns: int
    history_modes: tuple[str, ...]


def predictions_from_episodes(
    records: Iterable[Trajectory], gold: Sequence[Sequence[GoldQuery]], *, sample: int = 0
) -> EpisodePredictions:
    """The final SQL of sample ``sample`` of each dialogue, in the order of the ``gold`` sessions."""
    pool: dict[tuple[str, tuple[str, ...]], list[Trajectory]] = defaultdict(list)
    modes = set()
    for record in records:
        if record.sample == sample:
            pool[(record.db_id, tuple(_squash(sql) for sql in record.gold_sql))].append(record)
            modes.add(record.settings.history_mode)
    sessions: list[list[str]] = []
    missing = unreached = 0
    for session in gold:
        key = (session[0].db_id if session else "", tuple(_squash(g.query) for g in session))
        matches = pool.get(key)
        if not matches:
            missing += 1
            sessions.append([EMPTY_PREDICTION] * len(session))
            continue
        finals = matches.pop(0).final_sql
        unreached += max(0, len(session) - len(finals))
        sessions.append(
            [sql_line(sql) for sql in finals[: len(session)]] + [EMPTY_PREDICTION] * (len(session) - len(finals))
        )
    return EpisodePredictions(sessions, missing, unreached, tuple(sorted(modes)))


def _squash(sql: str) -> str:
    return " ".join(sql.split())
