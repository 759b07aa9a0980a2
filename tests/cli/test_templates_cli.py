"""``mtsql templates`` and the --templates option of the commands that run the environment."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mtsql.cli.main import app
from mtsql.env import DEFAULT_TEMPLATES, TEMPLATE_FIELDS, load_templates
from mtsql.env.templates import builtin_template_text


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_names_the_builtin_sets() -> None:
    code, out, _ = invoke("templates", "list")
    assert code == 0 and out.startswith(f"{DEFAULT_TEMPLATES}\tMTSQL-R1 reference protocol")


def test_show_prints_a_file_that_loads_as_the_builtin(tmp_path: Path) -> None:
    code, out, _ = invoke("templates", "show")
    assert code == 0 and out == builtin_template_text()
    path = tmp_path / "copy.toml"
    path.write_text(out, encoding="utf-8")
    assert load_templates(path).formats == load_templates(DEFAULT_TEMPLATES).formats
    code, _, err = invoke("templates", "show", "mtsql-v0")
    assert code == 2 and "no built-in template set 'mtsql-v0'" in err


def test_check_reports_the_fields_or_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(builtin_template_text().replace(f'"{DEFAULT_TEMPLATES}"', '"mine-v1"'), encoding="utf-8")
    code, out, _ = invoke("templates", "check", str(path))
    assert code == 0
    assert out.splitlines()[0] == f"{path}: version mine-v1, {len(TEMPLATE_FIELDS)} templates"
    assert "  exec_reply: " in out
    path.write_text(builtin_template_text().replace("$question", "$questoin", 1), encoding="utf-8")
    code, _, err = invoke("templates", "check", str(path))
    assert code == 1 and "uses unknown field(s) questoin" in err


def test_sft_build_data_records_the_templates_it_played(checkpoint: Path, tmp_path: Path) -> None:
    custom = tmp_path / "terse.toml"
    text = builtin_template_text().replace(f'"{DEFAULT_TEMPLATES}"', '"terse-v1"')
    custom.write_text(text.replace("Database: $db_id", "DB: $db_id"), encoding="utf-8")
    rows, records = tmp_path / "rows.jsonl", tmp_path / "records.jsonl"
    code, out, err = invoke(
        "sft", "build-data", "--model", str(checkpoint), "--example", "festival", "--limit", "2",
        "--templates", str(custom), "--out", str(rows), "--records", str(records),
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("2 gold trajectories written")
    gold = [json.loads(line) for line in records.read_text().splitlines()]
    assert {record["template_version"] for record in gold} == {"terse-v1"}
    assert all(record["prompt_messages"][1]["content"].startswith("DB: ") for record in gold)


def test_a_bad_templates_file_stops_the_commands_before_any_model(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "x"\n', encoding="utf-8")
    db = tmp_path / "empty.sqlite"
    db.write_bytes(b"")
    for args in (
        ("sft", "build-data", "--model", "none", "--example", "festival", "--out", str(tmp_path / "o.jsonl")),
        ("chat", "--model", "none", "--db", str(db)),
    ):
        code, _, err = invoke(*args, "--templates", str(bad))
        assert code == 2, args
        assert f"mtsql {args[0]}" in err and "--templates: " in err and "a [templates] table is required" in err
    assert not (tmp_path / "o.jsonl").exists()
