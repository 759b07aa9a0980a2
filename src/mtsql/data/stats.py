"""Dataset statistics: turns by official hardness and by turn depth, and the gold queries that cannot be used.

Hardness is the official evaluator's: the gold query parsed against the database's schema (read from the
SQLite file, as the official script does, or from ``tables.json`` when the file is missing) and classified by
:func:`mtsql.sql.hardness.hardness`. A turn cannot be evaluated when its database is missing, or its gold
query does not parse or fails to execute; such turns are listed, never fatal. The parser, the hardness rules
and the executor are imported where they are used, so ``import mtsql.data`` stays light.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mtsql.data.dialogue import Dialogue
from mtsql.data.schema import resolve_database_path
from mtsql.sql.hardness import HARDNESS_LEVELS

#: The official evaluator's turn-depth buckets.
DEPTHS = ("turn 1", "turn 2", "turn 3", "turn 4", "turn > 4")
#: The bucket of turns whose gold query has no hardness because it does not parse.
UNPARSED = "unparsed"


def turn_depth(index: int) -> str:
    """The official depth bucket of a 0-based turn index."""
    return DEPTHS[index] if index < 4 else DEPTHS[4]


@dataclass(frozen=True, slots=True)
class TurnFacts:
    """What the statistics know about one gold turn; errors are ``None`` when there are none."""

    dialogue_id: str
    db_id: str
    turn_index: int
    query: str
    hardness: str | None
    database_missing: bool
    parse_error: str | None = None
    exec_error: str | None = None
    #: The gold query runs and returns no rows: any empty prediction execution-matches it (official EX).
    empty_gold: bool = False

    @property
    def usable(self) -> bool:
        """Whether the official evaluator can score this turn."""
        return not (self.database_missing or self.parse_error or self.exec_error)


@dataclass(frozen=True, slots=True)
class TurnProblem:
    """A gold turn that cannot be evaluated, and why."""

    dialogue_id: str
    db_id: str
    turn_index: int
    query: str
    error: str


@dataclass(frozen=True, slots=True)
class DatasetStats:
    dataset: str
    split: str
    dialogues: int
    turns: int
    skipped_records: int
    by_hardness: dict[str, int]
    by_depth: dict[str, int]
    usable_turns: int
    #: Turns whose gold returns no rows (0 when the gold was not executed): EX pays any empty result there.
    empty_gold_turns: int
    #: db_id -> number of turns on it, for databases whose SQLite file is missing.
    missing_databases: dict[str, int]
    parse_failures: tuple[TurnProblem, ...]
    exec_failures: tuple[TurnProblem, ...]
    checked_execution: bool
    seconds: float = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SchemaCache:
    """The evaluator's parse schema of each database, built once.

    From the SQLite file when it exists (as the official evaluator does), else from the ``tables.json`` entry.
    :meth:`get` returns ``(schema, None)`` or ``(None, why there is none)``.
    """

    def __init__(self, db_dir: Path | str, tables: Mapping[str, Mapping[str, Any]]) -> None:
        self._db_dir = Path(db_dir)
        self._tables = tables
        self._schemas: dict[str, tuple[Any, str | None]] = {}

    def get(self, db_id: str) -> tuple[Any, str | None]:
        if db_id not in self._schemas:
            self._schemas[db_id] = self._build(db_id)
        return self._schemas[db_id]

    def _build(self, db_id: str) -> tuple[Any, str | None]:
        from mtsql.sql.parse import Schema

        path = resolve_database_path(self._db_dir, db_id)
        try:
            if path.is_file():
                return Schema.from_sqlite(path), None
            if db_id in self._tables:
                return Schema.from_tables_json(self._tables[db_id]), None
        except Exception as err:  # a corrupt database or entry costs its turns, not the run
            return None, f"no schema for {db_id}: {type(err).__name__}: {err}"
        return None, f"no schema for {db_id}: neither {path} nor a tables.json entry exists"


def gold_hardness(dialogues: Iterable[Dialogue], schemas: SchemaCache) -> dict[tuple[str, int], str | None]:
    """Official hardness of each gold turn by ``(dialogue id, turn index)``, ``None`` if it does not parse."""
    return {
        (dialogue.id, turn.index): _parse(turn.query, *schemas.get(dialogue.db_id))[0]
        for dialogue in dialogues
        for turn in dialogue.turns
    }


def analyze_turns(
    dialogues: Sequence[Dialogue],
    *,
    db_dir: Path | str,
    tables: Mapping[str, Mapping[str, Any]],
    check_gold: bool = True,
    timeout: float = 10.0,
) -> list[TurnFacts]:
    """Hardness and problems of every gold turn, in dialogue order.

    ``check_gold`` executes every gold query whose database exists (``timeout`` seconds each); one thread is
    enough, the dev sets' gold queries all run in well under a second.
    """
    schemas = SchemaCache(db_dir, tables)
    facts = []
    for dialogue in dialogues:
        path = resolve_database_path(db_dir, dialogue.db_id)
        missing = not path.is_file()
        schema, why = schemas.get(dialogue.db_id)
        for turn in dialogue.turns:
            level, error = _parse(turn.query, schema, why)
            facts.append(TurnFacts(dialogue.id, dialogue.db_id, turn.index, turn.query, level, missing, error))
    if check_gold:
        run = _executor(db_dir, timeout)
        for i, fact in enumerate(facts):
            if not fact.database_missing:
                error, empty = run(fact.db_id, fact.query)
                facts[i] = replace(fact, exec_error=error, empty_gold=empty)
    return facts


def summarize(
    facts: Sequence[TurnFacts],
    *,
    dataset: str,
    split: str,
    dialogues: int,
    skipped_records: int = 0,
    checked_execution: bool = True,
    seconds: float = 0.0,
) -> DatasetStats:
    """Count per-turn facts into the statistics tables."""
    hardness = Counter(fact.hardness or UNPARSED for fact in facts)
    depth = Counter(turn_depth(fact.turn_index) for fact in facts)
    missing = Counter(fact.db_id for fact in facts if fact.database_missing)

    def problems(error_of: Callable[[TurnFacts], str | None]) -> tuple[TurnProblem, ...]:
        return tuple(
            TurnProblem(f.dialogue_id, f.db_id, f.turn_index, f.query, error)
            for f in facts
            if (error := error_of(f)) is not None
        )

    return DatasetStats(
        dataset=dataset,
        split=split,
        dialogues=dialogues,
        turns=len(facts),
        skipped_records=skipped_records,
        by_hardness={level: hardness.get(level, 0) for level in (*HARDNESS_LEVELS, UNPARSED)},
        by_depth={level: depth.get(level, 0) for level in DEPTHS},
        usable_turns=sum(fact.usable for fact in facts),
        empty_gold_turns=sum(fact.empty_gold for fact in facts),
        missing_databases=dict(sorted(missing.items())),
        parse_failures=problems(lambda f: f.parse_error),
        exec_failures=problems(lambda f: f.exec_error),
        checked_execution=checked_execution,
        seconds=seconds,
    )


def compute_stats(
    dialogues: Sequence[Dialogue],
    *,
    dataset: str,
    split: str,
    db_dir: Path | str,
    tables: Mapping[str, Mapping[str, Any]],
    skipped_records: int = 0,
    check_gold: bool = True,
    timeout: float = 10.0,
) -> DatasetStats:
    """Statistics of loaded dialogues (``tables`` are the raw ``tables.json`` entries by ``db_id``)."""
    start = time.perf_counter()
    facts = analyze_turns(dialogues, db_dir=db_dir, tables=tables, check_gold=check_gold, timeout=timeout)
    return summarize(
        facts,
        dataset=dataset,
        split=split,
        dialogues=len(dialogues),
        skipped_records=skipped_records,
        checked_execution=check_gold,
        seconds=time.perf_counter() - start,
    )


def _parse(query: str, schema: Any, no_schema: str | None) -> tuple[str | None, str | None]:
    """``(hardness, None)`` or ``(None, error)`` for one gold query."""
    if schema is None:
        return None, no_schema
    from mtsql.sql.hardness import hardness
    from mtsql.sql.parse import parse_sql

    try:
        return hardness(parse_sql(query, schema)), None
    except Exception as err:  # the query is untrusted input: any parser failure is reported, never fatal
        return None, f"{type(err).__name__}: {err}"


def _executor(db_dir: Path | str, timeout: float) -> Callable[[str, str], tuple[str | None, bool]]:
    """A function running a gold query on its database: ``(error, False)``, or ``(None, whether it returned no
    rows)`` when it runs.

    The query is run as the execution match runs it (:func:`mtsql.sql.preprocess.run_gold_once`): the
    datasets' tokenized gold queries split ``!=``, ``>=`` and ``<=`` (``! =``), which SQLite rejects as they are.
    """
    from mtsql.sql.preprocess import run_gold_once

    def run(db_id: str, query: str) -> tuple[str | None, bool]:
        result = run_gold_once(resolve_database_path(db_dir, db_id), query, timeout=timeout)
        return (None, not result.rows) if result.ok else (str(result.error), False)

    return run
