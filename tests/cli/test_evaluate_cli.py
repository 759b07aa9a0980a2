"""``mtsql evaluate`` as a user runs it: files in, tables, per-turn JSONL and JSON summary out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtsql.cli.main import app
from mtsql.examples import Example, load_example

runner = CliRunner()


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    return load_example("festival", root=tmp_path_factory.mktemp("examples"))


def _args(example: Example) -> list[str]:
    return ["evaluate", "--gold", str(example.gold), "--pred", str(example.predictions), "--db", str(example.db_dir),
            "--table", str(example.tables), "--workers", "1"]  # fmt: skip


def test_outputs(example: Example, tmp_path: Path) -> None:
    per_turn, summary = tmp_path / "turns.jsonl", tmp_path / "summary.json"
    result = runner.invoke(app, [*_args(example), "--per-turn", str(per_turn), "--json", str(summary)])
    assert result.exit_code == 0, result.output
    assert "EX question match 0.701" in result.output
    turns = [json.loads(line) for line in per_turn.read_text().splitlines()]
    assert len(turns) == 107
    assert {"session", "turn", "hardness", "exact", "exec", "exec_status", "pred", "gold"} <= turns[0].keys()
    assert (turns[0]["session"], turns[0]["turn"], turns[3]["session"], turns[3]["turn"]) == (0, 0, 1, 0)
    data = json.loads(summary.read_text())
    assert data["mode"] == "official"
    assert data["levels"]["all"]["count"] == 107
    assert data["question_match"]["exec"] == pytest.approx(75 / 107)
    assert data["interaction_match"]["exact"] == pytest.approx(5 / 36)


def test_plain_output_has_the_official_layout(example: Example) -> None:
    result = runner.invoke(app, [*_args(example), "--format", "plain"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["easy", "medium", "hard", "extra", "all", "joint_all"]
    assert "=====================   EXECUTION ACCURACY     =====================" in lines
    assert any(line.startswith("exact match          0.741") for line in lines)


def test_example_shortcut(example: Example) -> None:
    result = runner.invoke(app, ["evaluate", "--example", "festival", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "EM question match 0.654" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [("SELECT 1\n", "expected 'SQL<TAB>db_id'"), ("SELECT 1\tfestival\n\nSELECT 2\tfestival\n", "sessions")],
)
def test_bad_gold_file_is_a_clear_error(example: Example, tmp_path: Path, content: str, message: str) -> None:
    gold = tmp_path / "gold.txt"
    gold.write_text(content)
    args = _args(example)
    args[args.index("--gold") + 1] = str(gold)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


def test_missing_file_is_a_clear_error(example: Example, tmp_path: Path) -> None:
    args = _args(example)
    args[args.index("--pred") + 1] = str(tmp_path / "nope.txt")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "not found" in result.output


def test_missing_tables_json_is_a_clear_error(example: Example, tmp_path: Path) -> None:
    args = _args(example)
    args[args.index("--table") + 1] = str(tmp_path / "tables.json")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "not found" in result.output


def test_accuracy_plots(example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from mtsql.eval.plots import accuracy_groups

    summary = tmp_path / "summary.json"
    result = runner.invoke(app, [*_args(example), "--plot", str(tmp_path / "plots"), "--json", str(summary)])
    assert result.exit_code == 0, result.output
    for stem in ("accuracy_by_hardness", "accuracy_by_turn"):
        assert (tmp_path / "plots" / f"{stem}.png").stat().st_size > 5000
    groups = accuracy_groups(json.loads(summary.read_text()))
    _, labels, values = groups["accuracy_by_hardness"]
    assert labels == ["easy\n(27)", "medium\n(41)", "hard\n(22)", "extra\n(17)", "all\n(107)"]
    assert values["execution match (EX)"][-1] == pytest.approx(100 * 75 / 107)
    _, labels, values = groups["accuracy_by_turn"]
    assert labels == ["turn 1\n(36)", "turn 2\n(36)", "turn 3\n(31)", "turn 4\n(4)"]  # no empty "turn > 4"
    assert values["exact set match (EM)"][0] == pytest.approx(100 * 33 / 36)
    exec_only = tmp_path / "exec.json"
    result = runner.invoke(app, [*_args(example), "--etype", "exec", "--json", str(exec_only)])
    assert list(accuracy_groups(json.loads(exec_only.read_text()))["accuracy_by_turn"][2]) == ["execution match (EX)"]
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if matplotlib were not installed
    result = runner.invoke(app, [*_args(example), "--plot", str(tmp_path / "none")])
    assert result.exit_code == 2 and "needs matplotlib" in result.output and not (tmp_path / "none").exists()


def test_a_database_absent_from_tables_json_is_reported_and_strict_refuses_it(data_dir: Path, tmp_path: Path) -> None:
    """An identical copy of flight_2 under a db_id tables.json lacks: its turns are judged without foreign keys,
    which the official script does silently; here they are counted in the notes and --json, and --strict stops."""
    import shutil

    db = tmp_path / "database"
    for db_id in ("flight_2", "flight_copy"):
        (db / db_id).mkdir(parents=True)
        shutil.copy(data_dir / "database" / "flight_2" / "flight_2.sqlite", db / db_id / f"{db_id}.sqlite")
    query = "SELECT count(*) FROM flights AS T1 JOIN airports AS T2 ON T1.DestAirport = T2.AirportCode"
    gold = tmp_path / "gold.txt"
    gold.write_text(f"{query}\tflight_2\n\n{query}\tflight_copy\n", encoding="utf-8")
    pred = tmp_path / "pred.txt"
    pred.write_text(f"{query}\n\n{query}\n", encoding="utf-8")
    args = ["evaluate", "--gold", str(gold), "--pred", str(pred), "--db", str(db)]
    args += ["--table", str(data_dir / "sparc" / "tables.json"), "--format", "plain"]
    out = tmp_path / "summary.json"
    result = runner.invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 turn(s) on database(s) absent from tables.json: flight_copy (1)" in result.output
    assert json.loads(out.read_text(encoding="utf-8"))["databases_without_tables"] == {"flight_copy": 1}
    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 2 and "flight_copy not in" in strict.output
    exec_only = runner.invoke(app, [*args, "--etype", "exec", "--json", str(out)])
    assert exec_only.exit_code == 0 and json.loads(out.read_text(encoding="utf-8"))["databases_without_tables"] == {}


def test_user_errors_are_one_line_and_exit_2_before_the_work(example: Example, tmp_path: Path) -> None:
    """A malformed tables.json (a foreign key out of range, a missing key) and an output path that is a
    directory: one clear line, exit code 2, no traceback; a missing output folder is made."""
    entries = json.loads(Path(example.tables).read_text(encoding="utf-8"))
    out_of_range = [{**entries[0], "foreign_keys": [*entries[0]["foreign_keys"], [999, 0]]}]
    missing_key = [{k: v for k, v in entries[0].items() if k != "column_names_original"}]
    for name, content, reason in (
        ("range.json", out_of_range, "IndexError"),
        ("key.json", missing_key, "missing key 'column_names_original'"),
    ):
        table = tmp_path / name
        table.write_text(json.dumps(content), encoding="utf-8")
        args = [*_args(example)]
        args[args.index("--table") + 1] = str(table)
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and reason in result.output and "Traceback" not in result.output
    folder = runner.invoke(app, [*_args(example), "--json", str(tmp_path)])
    assert folder.exit_code == 2 and "is a directory" in " ".join(folder.output.replace("│", " ").split())
    deep = tmp_path / "new" / "folder" / "turns.jsonl"
    assert runner.invoke(app, [*_args(example), "--per-turn", str(deep)]).exit_code == 0 and deep.is_file()
