from __future__ import annotations

import json
import sqlite3
import sys
import types
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import datasets
import pytest
import typer
from typer.testing import CliRunner

from mtsql.cli.data import register

runner = CliRunner()


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _main() -> None:
        """Test entry point."""

    return app


APP = make_app()


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(APP, ["data", *map(str, args)], env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """Two SParC interactions: one on an existing database, one on a database that is missing."""
    records = [
        {
            "database_id": "shop",
            "interaction": [
                {"utterance": "All items?", "query": "SELECT * FROM item"},
                {"utterance": "Their names?", "query": "SELECT name FROM nothing"},
            ],
        },
        {"database_id": "gone", "interaction": [{"utterance": "Anything?", "query": "SELECT 1"}]},
    ]
    (tmp_path / "sparc").mkdir()
    (tmp_path / "sparc" / "dev.json").write_text(json.dumps(records), encoding="utf-8")
    tables = [{"db_id": db_id} for db_id in ("shop", "gone")]
    (tmp_path / "sparc" / "tables.json").write_text(json.dumps(tables), encoding="utf-8")
    path = tmp_path / "database" / "shop" / "shop.sqlite"
    path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO item VALUES (1, 'pen')")
        conn.commit()
    return tmp_path


@dataclass
class Result:
    ok: bool
    error: str | None
    rows: tuple = ((1,),)


@pytest.fixture
def fake_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins for the parser, hardness rules and executor (tested for real in test_real_data_cli below)."""

    class Schema:
        from_sqlite = from_tables_json = classmethod(lambda cls, _: cls())

    def run_gold_once(path: Path, sql: str, *, timeout: float) -> Result:
        return Result(False, "no such table: nothing") if "nothing" in sql else Result(True, None)

    for name, attrs in {
        "mtsql.sql.parse": {"Schema": Schema, "parse_sql": lambda sql, schema: {"sql": sql}},
        "mtsql.sql.hardness": {"hardness": lambda sql: "medium"},
        "mtsql.sql.preprocess": {"run_gold_once": run_gold_once},
    }.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)


def test_stats_prints_tables_and_writes_json(tiny_data: Path, fake_sql: None, tmp_path: Path) -> None:
    out = tmp_path / "stats" / "sparc.json"
    code, output = invoke("stats", "--dataset", "sparc", "--data-dir", tiny_data, "--json", out)
    assert code == 0, output
    for text in ("turns by hardness", "turns by turn depth", "database file missing", "fail to execute"):
        assert text in output
    assert "no such table: nothing" in output and "gone" in output
    stats = json.loads(out.read_text(encoding="utf-8"))
    assert (stats["dialogues"], stats["turns"], stats["usable_turns"]) == (2, 3, 1)
    assert stats["by_hardness"]["medium"] == 3
    assert stats["by_depth"] == {"turn 1": 2, "turn 2": 1, "turn 3": 0, "turn 4": 0, "turn > 4": 0}
    assert stats["missing_databases"] == {"gone": 1}
    assert stats["exec_failures"][0]["dialogue_id"] == "sparc/dev/0000"


def test_stats_without_gold_check(tiny_data: Path, fake_sql: None, tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    code, output = invoke("stats", "-d", "sparc", "--data-dir", tiny_data, "--no-check-gold", "--json", out)
    assert code == 0, output
    assert "gold not executed" in output
    assert json.loads(out.read_text(encoding="utf-8"))["exec_failures"] == []


def test_missing_split_is_a_clean_error(tiny_data: Path) -> None:
    code, output = invoke("stats", "-d", "sparc", "--split", "train", "--data-dir", tiny_data)
    assert code == 2
    assert "error: SParC train.json not found in" in output and "not distributed here" in output
    assert "Traceback" not in output


def test_export_jsonl_turns(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "turns.jsonl"
    code, output = invoke("export", "-d", "sparc", "--data-dir", tiny_data, "--format", "jsonl", "--out", out)
    assert code == 0, output
    assert "wrote 3 rows" in output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["sparc/dev/0000/0", "sparc/dev/0000/1", "sparc/dev/0001/0"]
    assert rows[1]["previous_queries"] == ["SELECT * FROM item"]


def test_export_with_hardness(tiny_data: Path, fake_sql: None, tmp_path: Path) -> None:
    out = tmp_path / "turns.parquet"
    code, output = invoke("export", "-d", "sparc", "--data-dir", tiny_data, "-f", "parquet", "-o", out, "--hardness")
    assert code == 0, output
    loaded = datasets.load_dataset("parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "c"))
    assert loaded["hardness"] == ["medium"] * 3


def test_schema_command(tiny_data: Path) -> None:
    code, output = invoke("schema", "shop", "--db-dir", tiny_data / "database", "--examples", "2")
    assert code == 0, output
    assert (
        "CREATE TABLE item (\n  id INTEGER,  -- e.g. 1\n  name TEXT,  -- e.g. 'pen'\n  PRIMARY KEY (id)\n);" in output
    )
    code, output = invoke("schema", tiny_data / "nope.sqlite")
    assert code == 2 and "nope.sqlite not found" in output


def test_real_export_parquet_dialogues(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cosql.parquet"
    code, output = invoke(
        "export", "-d", "cosql", "--data-dir", data_dir, "-f", "parquet", "-o", out, "--unit", "dialogue"
    )
    assert code == 0, output
    loaded = datasets.load_dataset("parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "c"))
    assert len(loaded) == 293 and sum(len(turns) for turns in loaded["turns"]) == 1007


def test_real_stats_sparc_dev(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("mtsql.sql.parse", reason="the SQL parser is not there yet")
    pytest.importorskip("mtsql.sql.hardness", reason="the hardness rules are not there yet")
    out = tmp_path / "sparc.json"
    code, output = invoke("stats", "-d", "sparc", "--data-dir", data_dir, "--json", out)
    assert code == 0, output
    stats = json.loads(out.read_text(encoding="utf-8"))
    assert (stats["dialogues"], stats["turns"]) == (422, 1203)
    assert sum(stats["by_hardness"].values()) == sum(stats["by_depth"].values()) == 1203
    assert stats["by_hardness"]["unparsed"] == 0
    assert stats["missing_databases"] == {"wta_1": 59}
    assert [(p["db_id"], p["dialogue_id"], p["turn_index"]) for p in stats["exec_failures"]] == [
        ("battle_death", "sparc/dev/0161", 1)
    ]


def test_the_data_folder_comes_from_mtsql_data_dir_as_in_every_command(tiny_data: Path) -> None:
    env = {"COLUMNS": "200", "MTSQL_DATA_DIR": str(tiny_data)}
    result = runner.invoke(APP, ["data", "stats", "-d", "sparc", "--no-check-gold"], env=env)
    assert result.exit_code == 0, result.output
    assert "turns by hardness" in result.output
