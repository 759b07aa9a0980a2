"""Rewards of finished episodes: per question and per episode, every component separately and the total.

A :class:`RewardScorer` reads the environment's :class:`~mtsql.env.EpisodeRecord` (each turn's tool calls with
their SQL, execution summary and verdict, its final SQL and gold) and caches what repeats across the many
sampled trajectories of one question: execution-match verdicts and parses per ``(database, SQL, gold)``, gold
emptiness per ``(database, gold)`` (the gold results themselves are cached by the execution match).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtsql.data.loaders import sql_line
from mtsql.data.schema import resolve_database_path
from mtsql.env.environment import EpisodeRecord, TurnRecord
from mtsql.env.tools import EXEC_SQL, MEMORY_RETRIEVE
from mtsql.eval.exact_match import clause_f1, load_foreign_key_maps, normalize_for_match
from mtsql.eval.turn import TurnScore, prepare_prediction, score_turn
from mtsql.rewards.config import COMPONENTS, RewardConfig
from mtsql.rewards.outcome import sqlite_foreign_key_map
from mtsql.rewards.process import coherence_credit, exec_outcome, exec_verify_credit, is_coherent, mean
from mtsql.sql.parse import Schema, SQLParseError, empty_sql, parse_sql
from mtsql.sql.preprocess import run_gold_once


@dataclass(frozen=True, slots=True)
class QuestionReward:
    """One question's reward: each of :data:`~mtsql.rewards.config.COMPONENTS`, the weighted ``total``, the
    numbers of calls judged, and the official verdicts of the final SQL (``outcome``)."""

    turn: int
    exec: float
    exact: float
    exec_verify: float
    coherence: float
    clause_f1: float
    format: float
    total: float
    exec_calls: int
    memory_checks: int
    gold_empty: bool
    outcome: TurnScore = field(repr=False)

    def components(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in COMPONENTS}

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-ready record for logs: components, total, counts and the outcome's status."""
        return {
            "turn": self.turn,
            **self.components(),
            "total": self.total,
            "exec_calls": self.exec_calls,
            "memory_checks": self.memory_checks,
            "gold_empty": self.gold_empty,
            "exec_status": self.outcome.exec_status,
            "hardness": self.outcome.hardness,
            "skipped": self.outcome.skipped,
        }


@dataclass(frozen=True, slots=True)
class EpisodeReward:
    """An episode's questions and their aggregate: every component and the total are means over the questions
    (a whole-dialogue episode weighs each question equally; a one-question episode is that question)."""

    dialogue_id: str
    db_id: str
    history_mode: str
    questions: tuple[QuestionReward, ...]

    @property
    def total(self) -> float:
        return mean(question.total for question in self.questions)

    def components(self) -> dict[str, float]:
        return {name: mean(getattr(question, name) for question in self.questions) for name in COMPONENTS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "dialogue_id": self.dialogue_id,
            "db_id": self.db_id,
            "history_mode": self.history_mode,
            **self.components(),
            "total": self.total,
            "questions": [question.to_dict() for question in self.questions],
        }


class RewardScorer:
    """Scores episode records of the databases under ``db_dir`` (``<db_id>/<db_id>.sqlite``).

    ``kmaps`` maps ``db_id`` to its foreign-key map, as :func:`load_foreign_key_maps` reads them from
    ``tables.json``; with them the outcome is exactly ``mtsql evaluate --table tables.json``'s verdict. Without
    them each database's map is built from its SQLite file (:func:`~mtsql.rewards.outcome.sqlite_foreign_key_map`).
    ``cache_size`` bounds each cache (entries, least recently used dropped first).
    """

    def __init__(
        self,
        db_dir: str | os.PathLike[str],
        config: RewardConfig | None = None,
        *,
        kmaps: Mapping[str, Mapping[str, str]] | None = None,
        cache_size: int = 16384,
    ) -> None:
        self.db_dir = Path(db_dir)
        self.config = config or RewardConfig()
        self._kmaps = kmaps
        cache = functools.lru_cache(maxsize=cache_size)
        self._outcome = cache(self._compute_outcome)
        self._normalized = cache(self._compute_normalized)
        self._gold_empty = cache(self._compute_gold_empty)
        self._kmap = functools.lru_cache(maxsize=None)(self._compute_kmap)

    # --- episodes -------------------------------------------------------------------------------------------

    def episode(self, record: EpisodeRecord, turns: Sequence[int] | None = None) -> EpisodeReward:
        """The reward of ``record``: its questions (all, or the turn indices ``turns``) and their means."""
        selected = record.turns if turns is None else [record.turns[index] for index in turns]
        questions = tuple(self.question(turn, record.db_id) for turn in selected)
        return EpisodeReward(record.dialogue_id, record.db_id, record.history_mode, questions)

    def question(self, turn: TurnRecord, db_id: str) -> QuestionReward:
        """The reward of one finished question of the database ``db_id`` (definitions in ``docs/rewards.md``)."""
        config = self.config
        gold = sql_line(turn.gold_sql)
        outcome = self.outcome(turn.final_sql, gold, db_id)
        exec_calls = [call for call in turn.calls if call.name == EXEC_SQL and call.exec is not None]
        checks = [call for call in turn.calls if call.name == MEMORY_RETRIEVE]
        gold_empty = self.gold_is_empty(gold, db_id)
        verify = []
        for call in exec_calls:
            result = exec_outcome(call.exec)  # type: ignore[arg-type]  # filtered above
            aware = result == "empty" and config.empty_gold_aware and gold_empty
            verify.append(exec_verify_credit(result, call.verdict, gold_empty=aware, config=config))
        scale = config.empty_gold_weight if gold_empty else 1.0
        components = {
            "exec": scale * float(outcome.exec or 0),
            "exact": scale * float(outcome.exact or 0),
            "exec_verify": mean(verify),
            "coherence": mean(coherence_credit(self.coherent(call.sql, gold, db_id), call.verdict) for call in checks),
            "clause_f1": mean(self.clause_f1(call.sql or "", gold, db_id) for call in exec_calls),
            "format": float(turn.answered and turn.malformed == 0 and turn.stray_verdicts == 0),
        }
        return QuestionReward(
            turn=turn.index,
            **components,
            total=config.total(components),
            exec_calls=len(exec_calls),
            memory_checks=len(checks),
            gold_empty=gold_empty,
            outcome=outcome,
        )

    # --- per-SQL facts (cached) -------------------------------------------------------------------------------

    def outcome(self, pred: str, gold: str, db_id: str) -> TurnScore:
        """The official verdicts of ``pred`` against ``gold``, both as one line of a prediction/gold file."""
        return self._outcome(db_id, sql_line(pred), sql_line(gold))

    def clause_f1(self, pred: str, gold: str, db_id: str) -> float:
        """The clause-level F1 of ``pred`` against ``gold`` (0.0 when the gold does not parse)."""
        gold_norm = self._normalized(db_id, sql_line(gold))
        if gold_norm is None:
            return 0.0
        pred_norm = self._normalized(db_id, prepare_prediction(sql_line(pred)))
        return clause_f1(pred_norm if pred_norm is not None else self._empty(db_id), gold_norm)

    def coherent(self, sql: str | None, gold: str, db_id: str) -> bool:
        """Whether a SQL under a memory check is close enough to the gold (nothing to check is not coherent)."""
        if not sql:
            return False
        config = self.config
        f1 = self.clause_f1(sql, gold, db_id)
        # execute only when the F1 alone does not decide
        needs_exec = config.coherence_exec_match and f1 < config.coherence_f1_threshold
        return is_coherent(self.outcome(sql, gold, db_id).exec if needs_exec else None, f1, config)

    def gold_is_empty(self, gold: str, db_id: str) -> bool:
        """Whether the gold query runs and returns no rows on the database's main file."""
        return self._gold_empty(db_id, sql_line(gold))

    # --- cache fillers ---------------------------------------------------------------------------------------

    def _db_file(self, db_id: str) -> Path:
        return resolve_database_path(self.db_dir, db_id)

    def _compute_kmap(self, db_id: str) -> Mapping[str, str]:
        if self._kmaps is not None:
            return self._kmaps.get(db_id, {})
        db_file = self._db_file(db_id)
        return sqlite_foreign_key_map(db_file) if db_file.is_file() else {}

    def _compute_outcome(self, db_id: str, pred: str, gold: str) -> TurnScore:
        config = self.config
        options = {
            "keep_distinct": config.keep_distinct,
            "strict": config.strict,
            "timeout": config.timeout,
            "isolate": config.isolate,
        }
        score = score_turn(pred, gold, self._db_file(db_id), self._kmap(db_id), **options)
        return dataclasses.replace(score, partial=None)  # not needed here, and the bulk of a cache entry

    def _compute_normalized(self, db_id: str, sql: str) -> dict[str, Any] | None:
        """The normalised parse of ``sql``, or None when it does not parse (or the database is missing)."""
        db_file = self._db_file(db_id)
        if not db_file.is_file():
            return None
        schema = Schema.from_sqlite(db_file)
        try:
            parsed = parse_sql(sql, schema)
        except SQLParseError:
            return None
        return normalize_for_match(parsed, schema, self._kmap(db_id))

    def _empty(self, db_id: str) -> dict[str, Any]:
        """The official stand-in for a prediction that does not parse, normalised."""
        return normalize_for_match(empty_sql(), Schema.from_sqlite(self._db_file(db_id)), self._kmap(db_id))

    def _compute_gold_empty(self, db_id: str, gold: str) -> bool:
        if not self._db_file(db_id).is_file():
            return False
        result = run_gold_once(self._db_file(db_id), gold, timeout=self.config.timeout, isolate=self.config.isolate)
        return result.ok and not result.rows


@functools.lru_cache(maxsize=8)
def _shared_scorer(db_dir: str, config: RewardConfig, tables: str | None) -> RewardScorer:
    return RewardScorer(db_dir, config, kmaps=load_foreign_key_maps(tables) if tables else None)


def reward_episode(
    record: EpisodeRecord,
    db_dir: str | os.PathLike[str],
    *,
    config: RewardConfig | None = None,
    tables: str | os.PathLike[str] | None = None,
) -> EpisodeReward:
    """The reward of a finished episode, with a scorer (and its caches) shared by calls with the same settings.

    ``tables`` is the ``tables.json`` whose foreign keys the exact set match uses (as ``mtsql evaluate``).
    """
    scorer = _shared_scorer(os.fspath(db_dir), config or RewardConfig(), os.fspath(tables) if tables else None)
    return scorer.episode(record)
