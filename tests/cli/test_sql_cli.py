"""``mtsql sql``: one JSON object, exit code 1 on error, the database never changed."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mtsql.cli.sql import register

SRC = Path(__file__).resolve().parents[2] / "src"


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _main() -> None:  # keeps "sql" a sub-command
        """test app"""

    register(app)
    return app


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "db" / "shop.sqlite"
    path.parent.mkdir()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, name TEXT, data BLOB)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"n{i}", bytes([i])) for i in range(1, 21)])
        conn.commit()
    return path


def invoke(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(make_app(), ["sql", *args])
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object
    return result.exit_code, json.loads(lines[0])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_select_prints_one_json_object(db: Path) -> None:
    code, out = invoke("--db", str(db), "SELECT id, name, data FROM t WHERE id <= 2 ORDER BY id")
    assert code == 0
    assert set(out) == {"ok", "columns", "rows", "truncated", "error", "elapsed_s"}
    assert out["ok"] is True and out["error"] is None and out["truncated"] is False
    assert out["columns"] == ["id", "name", "data"]
    assert out["rows"] == [[1, "n1", "X'01'"], [2, "n2", "X'02'"]]
    assert out["elapsed_s"] >= 0


def test_max_rows_truncates(db: Path) -> None:
    code, out = invoke("--db", str(db), "--max-rows", "3", "SELECT id FROM t ORDER BY id")
    assert code == 0 and out["truncated"] is True and out["rows"] == [[1], [2], [3]]


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE t",
        "DELETE FROM t",
        "INSERT INTO t VALUES (99, 'x', NULL)",
        "UPDATE t SET name = 'x'",
        "CREATE TABLE z (a)",
        "PRAGMA journal_mode = WAL",
        "PRAGMA user_version = 3",
        "VACUUM",
        "VACUUM INTO 'copy.sqlite'",
        "ATTACH 'other.sqlite' AS o",
        "SELECT 1; DROP TABLE t",
        "BEGIN",
        "SELECT nme FROM t",
        "",
    ],
)
def test_hostile_or_broken_queries_fail_and_change_nothing(
    sql: str, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before, listing = digest(db), sorted(os.listdir(db.parent)) + sorted(os.listdir(tmp_path))
    code, out = invoke("--db", str(db), sql)
    assert code == 1 and out["ok"] is False and out["error"]
    assert out["rows"] == [] and out["columns"] == []
    assert digest(db) == before
    assert sorted(os.listdir(db.parent)) + sorted(os.listdir(tmp_path)) == listing


def test_query_may_start_with_a_comment_or_dash(db: Path, tmp_path: Path) -> None:
    """Model SQL often opens with "-- ...": it is the query, not an unknown option."""
    code, out = invoke("--db", str(db), "-- count them\nSELECT count(*) FROM t")
    assert code == 0 and out["rows"] == [[20]]
    before = digest(db)
    code, out = invoke("--db", str(db), "-- harmless?\nDELETE FROM t")
    assert code == 1 and out["error"] == "not allowed: write operations (DELETE) are forbidden"
    code, out = invoke("--db", str(db), "-x")
    assert code == 1 and "syntax error" in out["error"]
    assert digest(db) == before
    code, out = invoke("--db", str(db), "--", "-- after the separator\nSELECT 1")
    assert code == 0 and out["rows"] == [[1]]


def test_time_limit(db: Path) -> None:
    runaway = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"
    code, out = invoke("--db", str(db), "--timeout", "0.3", runaway)
    assert code == 1 and out["error"] == "query interrupted: time limit of 0.3 s exceeded"


def test_missing_database(tmp_path: Path) -> None:
    code, out = invoke("--db", str(tmp_path / "nope.sqlite"), "SELECT 1")
    assert code == 1 and "database not found" in out["error"]
    assert os.listdir(tmp_path) == []


def test_query_from_stdin(db: Path) -> None:
    result = CliRunner().invoke(make_app(), ["sql", "--db", str(db), "-"], input="SELECT count(*) FROM t")
    assert result.exit_code == 0 and json.loads(result.stdout)["rows"] == [[20]]


def test_bad_arguments_exit_2(db: Path) -> None:
    result = CliRunner().invoke(make_app(), ["sql", "--db", str(db), "--text-errors", "nope", "SELECT 1"])
    assert result.exit_code == 2
    result = CliRunner().invoke(make_app(), ["sql", "SELECT 1"])  # --db is required
    assert result.exit_code == 2


def _run_cli_process(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    script = (
        "import sys, typer\n"
        "from mtsql.cli.sql import register\n"
        "app = typer.Typer()\n"
        "@app.callback()\n"
        "def main():\n"
        "    pass\n"
        "register(app)\n"
        "app(sys.argv[1:])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", script, "sql", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_time_limit_is_hard_even_inside_one_slow_function_call(db: Path) -> None:
    # printf('%.*c', 2e9, ...) spins ~10 s inside SQLite where no interrupt is checked: the watchdog ends it
    start = time.monotonic()
    proc = _run_cli_process("--db", str(db), "--timeout", "0.5", "SELECT printf('%.*c', 2000000000, 'x')")
    assert time.monotonic() - start < 8
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["ok"] is False and out["error"] == "query interrupted: time limit of 0.5 s exceeded"


def test_as_a_process(db: Path) -> None:
    before = digest(db)
    proc = _run_cli_process("--db", str(db), "SELECT count(*) FROM t")
    assert proc.returncode == 0 and json.loads(proc.stdout)["rows"] == [[20]]
    proc = _run_cli_process("--db", str(db), "DROP TABLE t")
    assert proc.returncode == 1 and json.loads(proc.stdout)["error"].startswith("not allowed")
    assert digest(db) == before


def test_registered_in_the_main_app() -> None:
    main = pytest.importorskip("mtsql.cli.main")
    names = {c.name or c.callback.__name__ for c in main.app.registered_commands}
    assert "sql" in names


def test_empty_statements_after_the_query_are_fine_a_second_statement_is_not(db: Path) -> None:
    for query in ("SELECT count(*) FROM t;;", "SELECT count(*) FROM t; ; -- done", "SELECT count(*) FROM t; /* c */ ;"):
        code, out = invoke("--db", str(db), query)
        assert code == 0 and out["rows"] == [[20]], query
    code, out = invoke("--db", str(db), "SELECT count(*) FROM t;; SELECT 1")
    assert code == 1 and out["error"] == "only one statement is allowed"
    code, out = invoke("--db", str(db), "SELECT ';;' ;;")
    assert code == 0 and out["rows"] == [[";;"]]


@pytest.mark.parametrize("timeout", ["inf", "nan", "-5", "0"])
def test_a_timeout_must_be_a_finite_positive_number(db: Path, timeout: str) -> None:
    result = CliRunner().invoke(make_app(), ["sql", "--db", str(db), "--timeout", timeout, "SELECT 1"])
    assert result.exit_code == 2 and "finite number of seconds above 0" in result.output


def test_a_memory_cap_below_what_the_command_needs_is_refused(db: Path) -> None:
    result = CliRunner().invoke(make_app(), ["sql", "--db", str(db), "--max-memory-mb", "1", "SELECT 1"])
    assert result.exit_code == 2
    assert "below what the command itself needs" in " ".join(result.output.replace("│", " ").split())
