"""One turn's official verdicts: hardness, exact set match and execution match of a prediction against its gold.

This is the official evaluator's per-turn step as a plain function of ``(pred, gold, db_file, kmap)``, shared by
``mtsql evaluate`` (which adds the session bookkeeping) and the rewards (which score sampled trajectories), so a
reward's EX/EM for a turn are exactly the evaluation's verdicts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from mtsql.eval.exact_match import (
    PartialScore,
    UncomparableTablesError,
    exact_match_with_partials,
    normalize_for_match,
    partial_scores,
)
from mtsql.eval.exec_match import TIMEOUT, exec_match
from mtsql.sql.hardness import hardness as query_hardness
from mtsql.sql.parse import Schema, SQLParseError, empty_sql, parse_sql


class EvalType(StrEnum):
    """The official ``--etype``: both metrics, execution match only, or exact set match only."""

    ALL = "all"
    EXEC = "exec"
    MATCH = "match"


@dataclass(frozen=True, slots=True)
class TurnScore:
    """The official verdicts of one prediction (the fields of the evaluator's per-turn record).

    ``exec``/``exact`` are 1 or 0, or ``None`` when that evaluation was not run or the turn was ``skipped``
    (missing database, gold that does not parse: the official script crashes there). ``error`` says why a turn
    was skipped, or what went wrong with the prediction or the gold.
    """

    exec: int | None = None
    exact: int | None = None
    exec_status: str | None = None
    hardness: str | None = None
    pred_parsed: bool | None = None
    skipped: bool = False
    error: str | None = None
    partial: dict[str, PartialScore] | None = field(default=None, repr=False, compare=False)


def prepare_prediction(pred: str) -> str:
    """The official plug-in of ``1`` for ``value`` placeholders (only where ``value`` stands between spaces)."""
    return pred.replace(" value ", " 1 ")


def score_turn(
    pred: str,
    gold: str,
    db_file: str | os.PathLike[str],
    kmap: Mapping[str, str],
    *,
    etype: EvalType = "all",
    keep_distinct: bool = False,
    strict: bool = False,
    timeout: float = TIMEOUT,
    isolate: bool = True,
    plug_value: bool = False,
) -> TurnScore:
    """The official verdicts of ``pred`` against ``gold`` on ``db_file`` (``db_dir/db_id/db_id.sqlite``).

    ``kmap`` is the database's foreign-key map (:func:`mtsql.eval.exact_match.build_foreign_key_map` of its
    ``tables.json`` entry); the options are those of ``mtsql evaluate``. Never raises for a problem of the
    queries: where the official evaluator crashes (two different FROM subqueries to sort) the pair is a
    mismatch with an ``error``, as in ``mtsql evaluate``.
    """
    pred = prepare_prediction(pred)
    db_file = Path(db_file)
    if not db_file.is_file():
        return TurnScore(skipped=True, error=f"database missing: {db_file}")
    schema = Schema.from_sqlite(db_file)
    try:
        gold_sql = parse_sql(gold, schema)
    except SQLParseError as err:
        return TurnScore(skipped=True, error=f"gold query does not parse: {err}")
    error = None
    same = pred == gold  # the parse and the normalised query are then the gold's (neither is mutated)
    try:
        pred_sql, pred_parsed = (gold_sql if same else parse_sql(pred, schema)), True
    except SQLParseError as err:
        pred_sql, pred_parsed, error = empty_sql(), False, f"prediction does not parse: {err}"
    exec_score = exec_status = exact = partial = None
    if etype in ("all", "exec"):
        verdict = exec_match(
            db_file.parent,
            db_file,
            pred,
            gold,
            keep_distinct=keep_distinct,
            timeout=timeout,
            isolate=isolate,
            strict=strict,
            immutable=True,  # evaluation data does not change while it is scored; SQLite then skips its locking
            plug_value=plug_value,
        )
        exec_score, exec_status = verdict.score, verdict.status
        if verdict.status == "gold_error":
            error = f"gold query fails on the database: {verdict.message}"
        elif verdict.status == "plug_value_limit":
            error = "; ".join(filter(None, (error, f"plug_value: {verdict.message}")))
        elif verdict.status in ("pred_error", "pred_timeout") and verdict.message:
            # why the prediction failed to execute (a prediction that does not parse says so already)
            error = "; ".join(filter(None, (error, f"prediction fails on the database: {verdict.message}")))
    if etype in ("all", "match"):
        gold_norm = normalize_for_match(gold_sql, schema, kmap)
        pred_norm = gold_norm if same else normalize_for_match(pred_sql, schema, kmap)
        try:
            exact, partial = exact_match_with_partials(pred_norm, gold_norm)
        except UncomparableTablesError as err:
            # The official run aborts here; the pair cannot be equal, so it scores as a mismatch.
            exact, partial, error = 0, partial_scores(pred_norm, gold_norm), f"exact match: {err}"
    return TurnScore(
        exec=exec_score,
        exact=exact,
        exec_status=exec_status,
        hardness=query_hardness(gold_sql),
        pred_parsed=pred_parsed,
        error=error,
        partial=partial,
    )
