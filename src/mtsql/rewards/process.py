"""The dense process reward's per-call credits: pure functions of a call's facts and the model's verdict.

They hold the definitions (documented in ``docs/rewards.md``); :mod:`mtsql.rewards.scorer` gathers the facts
(execution summaries from the episode record, execution match and clause F1 against the gold) and averages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from mtsql.rewards.config import RewardConfig


class ExecOutcome(StrEnum):
    """What an execution returned, as the exec-verify credit sees it."""

    ERROR = "error"
    EMPTY = "empty"
    ROWS = "rows"


PASS = "pass"
NO_PASS = "no_pass"


def exec_outcome(summary: Mapping[str, Any]) -> ExecOutcome:
    """What an ``exec_sql`` call returned, from the environment's execution summary (``ok``, ``n_rows``)."""
    if not summary["ok"]:
        return "error"
    return "rows" if summary["n_rows"] > 0 else "empty"


def exec_verify_credit(outcome: ExecOutcome, verdict: str | None, *, gold_empty: bool, config: RewardConfig) -> float:
    """Credit for the ``<exec_verify>`` verdict on one execution.

    An error must be judged ``no_pass`` and rows ``pass`` (1 or 0). No rows are suspicious: ``no_pass`` earns
    ``config.empty_no_pass_credit`` and ``pass`` nothing, unless ``config.empty_gold_aware`` and the gold
    query returns no rows either, when ``pass`` is right (1) and ``no_pass`` wrong. A missing verdict earns 0.
    """
    if verdict is None:
        return 0.0
    if outcome == "error":
        return float(verdict == NO_PASS)
    if outcome == "rows" or (gold_empty and config.empty_gold_aware):
        return float(verdict == PASS)
    return config.empty_no_pass_credit if verdict == NO_PASS else 0.0


def is_coherent(exec_match: int | None, clause_f1: float, config: RewardConfig) -> bool:
    """Whether a SQL under a memory check counts as coherent with the dialogue: close enough to the gold.

    Close enough is an execution match (when ``config.coherence_exec_match``) or a clause F1 of at least
    ``config.coherence_f1_threshold`` (1.0 by default: the same Spider clauses as the gold, values aside).
    """
    return bool(config.coherence_exec_match and exec_match) or clause_f1 >= config.coherence_f1_threshold


def coherence_credit(coherent: bool, verdict: str | None) -> float:
    """Credit for the ``<memory_verify>`` verdict: 1 when it says ``pass`` iff the SQL is coherent, else 0."""
    if verdict is None:
        return 0.0
    return float((verdict == PASS) == coherent)


def mean(values: Iterable[float]) -> float:
    """The mean, 0.0 for no values: a component without any call to judge earns nothing."""
    items = list(values)
    return sum(items) / len(items) if items else 0.0
