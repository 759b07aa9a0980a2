"""``mtsql view``: episode records shown step by step, filtered, with or without the databases."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtsql.cli.main import app
from mtsql.data import Dialogue

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def records(
    checkpoint: Path, example: Any, dialogues: list[Dialogue], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Gold trajectories of the first three dialogues, and of the first answered with the second's SQL (scored)."""
    from mtsql.backends import TokenizerOnly
    from mtsql.rewards import RewardConfig
    from mtsql.rollout import RolloutConfig, RolloutEngine
    from mtsql.train.gold import gold_records

    first, second = dialogues[0], dialogues[1]
    wrong = dataclasses.replace(
        first, id="wrong", turns=(dataclasses.replace(first.turns[0], query=second.turns[0].query),)
    )
    engine = RolloutEngine(TokenizerOnly(str(checkpoint)), example.db_dir, RolloutConfig(), rewards=RewardConfig())
    rows = list(gold_records(engine, [*dialogues[:3], wrong]))
    for row in rows:  # marked missed (EX and EM 0), as a rollout answering the first question so would be
        if row.dialogue_id == "wrong":
            question = row.rewards["questions"][0]
            question.update(exec=0.0, exact=0.0, total=question["total"] - 2)
    path = tmp_path_factory.mktemp("view") / "records.jsonl"
    lines = [json.dumps(row.to_dict()) for row in rows] + [json.dumps({"id": "not an episode"})]
    path.write_text("\n".join(lines) + "\n" + lines[0][:50], encoding="utf-8")  # and a last line cut by a crash
    return path


def view(*args: str) -> Any:
    return CliRunner().invoke(app, ["view", *map(str, args)], terminal_width=200)


def test_every_episode_step_by_step(records: Path, dialogues: list[Dialogue]) -> None:
    result = view(records)
    assert result.exit_code == 0, result.output
    out = result.output
    for dialogue in dialogues[:3]:
        for turn in dialogue.turns:
            assert turn.utterance in out
    assert "exec_sql: SELECT name FROM artist WHERE country = 'Ireland'" in out
    assert "exec_verify: pass" in out and "memory_verify: pass" in out and "memory_retrieve: checking" in out
    assert "final SQL (answered)" in out and "gold SQL:" in out and "exec 1 exact 1" in out
    assert "rows (columns: name)" in out  # without databases: the record's summary of each result
    assert "4 of 4 episodes shown; 1 records without an episode's fields skipped" in out


def test_filters_and_result_tables(records: Path, dialogues: list[Dialogue]) -> None:
    wrong = view(records, "--wrong", "--example", "festival")
    assert wrong.exit_code == 0, wrong.output
    assert "wrong#0" in wrong.output and dialogues[1].turns[0].utterance not in wrong.output
    assert "exec 0 exact 0" in wrong.output and "1 of 4 episodes shown" in wrong.output
    assert "Main Stage" in wrong.output  # a result table from the example's database
    one = view(records, "--episode", f"{dialogues[2].id}#0", "--limit", "1")
    assert one.exit_code == 0 and dialogues[2].turns[0].utterance in one.output
    assert dialogues[0].turns[0].utterance not in one.output


def test_bad_input(records: Path, tmp_path: Path) -> None:
    assert view(records, "--episode", "nope").exit_code == 1
    missing = view(tmp_path / "none.jsonl")
    assert missing.exit_code == 2 and "no file" in missing.output
    both = view(records, "--example", "festival", "--db-dir", tmp_path)
    assert both.exit_code == 2 and "not both" in both.output
    unknown = view(records, "--example", "nowhere")
    assert unknown.exit_code == 2 and "unknown example" in unknown.output
    elsewhere = view(records, "--db-dir", tmp_path, "--limit", "1")
    assert elsewhere.exit_code == 0 and "no database festival" in elsewhere.output


def test_a_bad_line_or_mixed_runs_stop_the_reader_naming_the_line(records: Path, tmp_path: Path) -> None:
    """A cut line in the middle no longer hides the episodes after it; invalid UTF-8 is no traceback; records of
    two runs in one file are refused (as mtsql rollout keeps them apart)."""
    lines = records.read_text(encoding="utf-8").splitlines(keepends=True)
    middle = tmp_path / "middle.jsonl"
    middle.write_text(lines[0] + lines[1][:80] + "\n" + lines[2], encoding="utf-8")
    result = view(middle)
    assert result.exit_code == 2 and "line 2: not a JSON record" in result.output
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(lines[0].encode() + b"\xff\xfe{}\n" + lines[2].encode())
    result = view(binary)
    assert result.exit_code == 2 and "line 2: not UTF-8" in result.output and "Traceback" not in result.output
    mixed = tmp_path / "mixed.jsonl"
    other = json.loads(lines[1])
    other["history_mode"] = "oracle"
    mixed.write_text(lines[0] + json.dumps(other) + "\n", encoding="utf-8")
    result = view(mixed)
    assert result.exit_code == 2 and "mixes runs: line 2 has history_mode='oracle'" in result.output
