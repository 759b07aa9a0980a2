"""Statistics with stand-ins for the parser, hardness rules and executor, so the bookkeeping is tested alone
(the real modules are exercised on the real data in test_real_data.py)."""

from __future__ import annotations

import sqlite3
import sys
import types
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from mtsql.data import Dialogue, Turn
from mtsql.data.stats import DEPTHS, SchemaCache, analyze_turns, compute_stats, gold_hardness, turn_depth


@dataclass
class FakeResult:
    ok: bool
    error: str | None
    rows: tuple = ((1,),)


class FakeSchema:
    built: ClassVar[list[str]] = []

    def __init__(self, source: str) -> None:
        self.source = source

    @classmethod
    def from_sqlite(cls, path: Path) -> FakeSchema:
        cls.built.append(f"sqlite:{Path(path).stem}")
        return cls("sqlite")

    @classmethod
    def from_tables_json(cls, entry: dict[str, object]) -> FakeSchema:
        cls.built.append(f"tables:{entry['db_id']}")
        if entry.get("corrupt"):
            raise ValueError("corrupt entry")
        return cls("tables")


def fake_parse_sql(sql: str, schema: FakeSchema) -> dict[str, object]:
    if "BROKEN" in sql:
        raise ValueError(f"cannot parse {sql!r}")
    return {"sql": sql, "schema": schema.source}


def fake_hardness(sql_dict: dict[str, object]) -> str:
    return "extra" if "JOIN" in str(sql_dict["sql"]) else "easy"


def fake_execute(db_path: Path, sql: str, timeout: float, max_rows: int) -> FakeResult:
    assert Path(db_path).is_file() and timeout == 3.0 and max_rows == 1  # one row tells whether there are any
    if "! =" in sql:  # the gold queries' tokenized operators must be joined first, as officially
        return FakeResult(False, 'unrecognized token: "!"')
    if "WHERE 0" in sql:
        return FakeResult(True, None, ())
    return FakeResult(False, "no such table: nope") if "nope" in sql else FakeResult(True, None)


def fake_run_gold_once(db_file: Path, gold: str, *, timeout: float) -> FakeResult:
    """The real one post-processes as the official evaluator does (tested in tests/eval), then executes."""
    return fake_execute(db_file, gold.replace("! =", "!="), timeout, 1)


@pytest.fixture
def fake_sql(monkeypatch: pytest.MonkeyPatch) -> type[FakeSchema]:
    FakeSchema.built = []
    for name, attrs in {
        "mtsql.sql.parse": {"Schema": FakeSchema, "parse_sql": fake_parse_sql},
        "mtsql.sql.hardness": {"hardness": fake_hardness},
        "mtsql.sql.preprocess": {"run_gold_once": fake_run_gold_once},
    }.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    return FakeSchema


@pytest.fixture
def db_dir(tmp_path: Path) -> Path:
    for db_id in ("shop", "zoo"):
        path = tmp_path / db_id / f"{db_id}.sqlite"
        path.parent.mkdir()
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE t (a INT)")
    return tmp_path


def dialogue(position: int, db_id: str, *queries: str) -> Dialogue:
    turns = tuple(Turn(i, f"question {i}", q) for i, q in enumerate(queries))
    return Dialogue(f"sparc/dev/{position:04d}", "sparc", "dev", position, db_id, turns)


DIALOGUES = [
    dialogue(0, "shop", "SELECT a FROM t", "SELECT a FROM t JOIN u", "SELECT a FROM nope", "SELECT a WHERE a ! = 1"),
    dialogue(1, "gone", "SELECT 1", "SELECT a FROM t JOIN u"),  # no database file, tables.json fallback
    dialogue(2, "zoo", "SELECT BROKEN", "SELECT 2", "SELECT 3 WHERE 0", "SELECT 4", "SELECT 5", "SELECT 6 JOIN"),
    dialogue(3, "nowhere", "SELECT 1"),  # neither a database nor a tables.json entry
]
TABLES = {"gone": {"db_id": "gone"}, "shop": {"db_id": "shop"}}


def test_turn_depth_buckets() -> None:
    assert [turn_depth(i) for i in range(7)] == [*DEPTHS[:4], "turn > 4", "turn > 4", "turn > 4"]


def test_stats_count_hardness_depth_and_problems(fake_sql, db_dir: Path) -> None:
    stats = compute_stats(
        DIALOGUES, dataset="sparc", split="dev", db_dir=db_dir, tables=TABLES, skipped_records=2, timeout=3.0
    )
    assert (stats.dialogues, stats.turns, stats.skipped_records) == (4, 13, 2)
    assert stats.by_hardness == {"easy": 8, "medium": 0, "hard": 0, "extra": 3, "unparsed": 2}
    assert stats.by_depth == {"turn 1": 4, "turn 2": 3, "turn 3": 2, "turn 4": 2, "turn > 4": 2}
    assert stats.missing_databases == {"gone": 2, "nowhere": 1}
    assert [(p.dialogue_id, p.turn_index, p.error) for p in stats.exec_failures] == [
        ("sparc/dev/0000", 2, "no such table: nope")
    ]
    assert [(p.db_id, p.turn_index) for p in stats.parse_failures] == [("zoo", 0), ("nowhere", 0)]
    assert stats.parse_failures[0].error == "ValueError: cannot parse 'SELECT BROKEN'"
    assert stats.parse_failures[1].error.startswith("no schema for nowhere: neither ")
    assert stats.usable_turns == 13 - 3 - 1 - 1
    assert stats.empty_gold_turns == 1  # "SELECT 3 WHERE 0" runs and returns no rows
    assert stats.checked_execution
    assert stats.to_dict()["exec_failures"][0]["query"] == "SELECT a FROM nope"


def test_schema_comes_from_sqlite_else_tables_json_and_is_built_once(fake_sql, db_dir: Path) -> None:
    facts = analyze_turns(DIALOGUES + DIALOGUES[:2], db_dir=db_dir, tables=TABLES, check_gold=False)
    assert sorted(fake_sql.built) == ["sqlite:shop", "sqlite:zoo", "tables:gone"]
    assert all(f.exec_error is None for f in facts)
    assert [f.hardness for f in facts if f.db_id == "gone"][:2] == ["easy", "extra"]


def test_without_gold_check_nothing_executes(fake_sql, db_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules["mtsql.sql.preprocess"], "run_gold_once", None)
    stats = compute_stats(DIALOGUES, dataset="sparc", split="dev", db_dir=db_dir, tables=TABLES, check_gold=False)
    assert stats.exec_failures == () and not stats.checked_execution


def test_a_broken_schema_costs_only_its_turns(fake_sql, tmp_path: Path) -> None:
    schemas = SchemaCache(tmp_path, {"gone": {"db_id": "gone", "corrupt": True}})
    assert schemas.get("gone") == (None, "no schema for gone: ValueError: corrupt entry")
    levels = gold_hardness([DIALOGUES[1]], schemas)
    assert levels == {("sparc/dev/0001", 0): None, ("sparc/dev/0001", 1): None}
