"""The session-format evaluator: official verdicts turn by turn, computed in parallel.

It follows the official SParC/CoSQL/Spider driver (test-suite-sql-eval ``evaluation.py``) step for step so every
turn gets the same hardness, exact-set-match and execution verdicts, and then aggregates them into the official
tables. What the official script does by crashing (a missing database, a gold query that does not parse or does
not execute) is reported per turn and counted instead. ``strict=True`` fixes the official quirks listed in
``docs/evaluation.md``; the default reproduces them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mtsql.data.loaders import GoldQuery
from mtsql.data.schema import resolve_database_path
from mtsql.errors import ConfigError, InputError
from mtsql.eval.exact_match import load_foreign_key_maps
from mtsql.eval.turn import EvalType, TurnScore, prepare_prediction, score_turn


@dataclass(frozen=True, slots=True)
class EvalOptions:
    db_dir: Path
    tables: Path | None
    etype: EvalType = "all"
    keep_distinct: bool = False
    timeout: float = 60.0
    strict: bool = False
    plug_value: bool = False
    """The official ``--plug_value``: a prediction also matches if it does with the gold's values plugged in."""
    workers: int = 0
    """Worker processes; 0 uses every core."""
    isolate: bool = True
    """Each query in a worker process killed when it overruns ``timeout`` (a hard limit, see ``execute_isolated``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnResult(TurnScore):
    """One turn's verdicts (:class:`~mtsql.eval.turn.TurnScore`) and where the turn stands in the files."""

    session: int
    turn: int
    db_id: str
    gold: str
    pred: str

    def to_json(self) -> dict:
        """The per-turn JSONL record: position first, then the verdicts (partial scores left out)."""
        out = {name: getattr(self, name) for name in ("session", "turn", "db_id", "gold", "pred")}
        out.update((name, getattr(self, name)) for name in TurnScore.__slots__ if name != "partial")
        return out


# Worker state, set by _init_worker: in the parent before forking (children inherit it), or in each worker
# where processes are spawned.
_OPTIONS: EvalOptions | None = None
_KMAPS: dict[str, dict[str, str]] = {}
_DB_FILES: dict[str, str | None] = {}


def _init_worker(options: EvalOptions, kmaps: dict[str, dict[str, str]]) -> None:
    global _OPTIONS, _KMAPS
    _OPTIONS, _KMAPS = options, kmaps
    _DB_FILES.clear()


def _db_file(db_id: str) -> str | None:
    """``db_dir/db_id/db_id.sqlite`` if it is a file, looked up once per database."""
    if db_id not in _DB_FILES:
        assert _OPTIONS is not None
        path = resolve_database_path(_OPTIONS.db_dir, db_id)
        _DB_FILES[db_id] = os.fspath(path) if path.is_file() else None
    return _DB_FILES[db_id]


def _evaluate_turn(session: int, turn: int, gold: GoldQuery, pred: str) -> TurnResult:
    options = _OPTIONS
    assert options is not None, "worker not initialised"
    place = {
        "session": session,
        "turn": turn,
        "db_id": gold.db_id,
        "gold": gold.query,
        "pred": prepare_prediction(pred),
    }
    db_file = _db_file(gold.db_id)
    if db_file is None:
        missing = resolve_database_path(options.db_dir, gold.db_id)
        return TurnResult(**place, skipped=True, error=f"database missing: {missing}")
    score = score_turn(
        pred,
        gold.query,
        db_file,
        _KMAPS.get(gold.db_id, {}),
        etype=options.etype,
        keep_distinct=options.keep_distinct,
        strict=options.strict,
        timeout=options.timeout,
        isolate=options.isolate,
        plug_value=options.plug_value,
    )
    return TurnResult(**place, **{name: getattr(score, name) for name in TurnScore.__slots__})


def _evaluate_sessions(batch: list[tuple[int, list[GoldQuery], list[str]]]) -> list[list[TurnResult]]:
    out = []
    for index, gold, preds in batch:
        # zip() as the official script does: gold turns without a prediction are not evaluated (strict: wrong).
        turns = list(zip(gold, preds, strict=False))
        if _OPTIONS is not None and _OPTIONS.strict:
            turns += [(g, "") for g in gold[len(preds) :]]
        out.append([_evaluate_turn(index, t, g, p) for t, (g, p) in enumerate(turns)])
    return out


def _batches(
    gold: Sequence[list[GoldQuery]], preds: Sequence[list[str]], size: int
) -> list[list[tuple[int, list[GoldQuery], list[str]]]]:
    """Sessions in batches of about ``size`` turns, each batch on one database.

    A worker pays once per database for its schema, connection and SQLite's page cache, so keeping a database's
    sessions together (and the batches small enough to balance the load) saves most of that warm-up. Batches on
    the largest databases, where queries are slowest, go first so that no long batch is left for the end.
    """
    by_db: dict[str, list[tuple[int, list[GoldQuery], list[str]]]] = {}
    for index, (g, p) in enumerate(zip(gold, preds, strict=True)):
        by_db.setdefault(g[0].db_id if g else "", []).append((index, g, p))
    batches = []
    for items in by_db.values():
        batch: list[tuple[int, list[GoldQuery], list[str]]] = []
        turns = 0
        for item in items:
            batch.append(item)
            turns += len(item[1])
            if turns >= size:
                batches.append(batch)
                batch, turns = [], 0
        if batch:
            batches.append(batch)

    def weight(batch: list[tuple[int, list[GoldQuery], list[str]]]) -> int:
        path = _db_file(batch[0][1][0].db_id) if batch[0][1] else None
        return (os.path.getsize(path) if path else 0) * sum(len(g) for _, g, _ in batch)

    return sorted(batches, key=weight, reverse=True)


def extra_predictions(gold: Sequence[list[GoldQuery]], preds: Sequence[list[str]]) -> int:
    """Predictions beyond the end of their gold session: never judged (the official ``zip`` drops them)."""
    return sum(max(0, len(p) - len(g)) for g, p in zip(gold, preds, strict=False))


def databases_without_tables(gold: Sequence[list[GoldQuery]], kmaps: dict[str, dict[str, str]]) -> dict[str, int]:
    """The gold turns per database absent from tables.json: exact match judges them without the foreign-key map
    (a pair of columns linked by a foreign key then counts as different), as the official script does silently."""
    absent: dict[str, int] = {}
    for session in gold:
        for turn in session:
            if turn.db_id not in kmaps:
                absent[turn.db_id] = absent.get(turn.db_id, 0) + 1
    return dict(sorted(absent.items()))


def evaluate_turns(
    gold: Sequence[list[GoldQuery]],
    preds: Sequence[list[str]],
    options: EvalOptions,
    *,
    kmaps: dict[str, dict[str, str]] | None = None,
) -> list[list[TurnResult]]:
    """Verdicts for every session (outer list) and turn (inner list). ``kmaps``: the foreign-key maps of
    ``options.tables`` when the caller has them already (read from the file otherwise)."""
    if len(gold) != len(preds):
        raise InputError(
            f"the prediction file has {len(preds)} sessions but the gold file has {len(gold)}: "
            "sessions are separated by blank lines and must correspond one to one"
        )
    if kmaps is None:
        kmaps = load_foreign_key_maps(options.tables) if options.tables else {}
    if options.etype in ("all", "match") and options.tables is None:
        raise ConfigError("exact set match needs the tables.json file (--table)")
    extra = extra_predictions(gold, preds)
    if extra and options.strict:
        raise InputError(
            f"{extra} prediction(s) beyond the end of their gold session: the sessions are out of step (blank lines "
            "separate sessions in both files)"
        )
    absent = databases_without_tables(gold, kmaps) if options.etype in ("all", "match") else {}
    if absent and options.strict:
        raise InputError(
            f"{', '.join(absent)} not in {options.tables}: exact match would compare their turns without "
            "foreign keys (scores silently differ); add them to the file, or leave out --strict to have them counted"
        )
    workers = options.workers or os.cpu_count() or 1
    total_turns = sum(len(s) for s in gold)
    _init_worker(options, kmaps)
    if workers == 1 or total_turns < 64:
        return _evaluate_sessions([(i, g, p) for i, (g, p) in enumerate(zip(gold, preds, strict=True))])
    # Small batches keep both cores busy to the end: a few sessions hold most of the slow queries.
    size = max(8, total_turns // (workers * 8))
    fork = "fork" in multiprocessing.get_all_start_methods()
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork" if fork else None),
        initializer=None if fork else _init_worker,
        initargs=() if fork else (options, kmaps),
    )
    with pool:
        results: list[list[TurnResult]] = [[] for _ in gold]
        for part in pool.map(_evaluate_sessions, _batches(gold, preds, size)):
            for session in part:
                if session:
                    results[session[0].session] = session
    return results
