"""Rollout records as official predictions: matched to gold sessions by database and queries, gaps counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mtsql.cli.main import app
from mtsql.data import EMPTY_PREDICTION, GoldQuery
from mtsql.rollout import RunSettings, Trajectory, TrajectoryStats
from mtsql.rollout.export import predictions_from_episodes


def record(db: str, gold: list[str], final: list[str], sample: int = 0, mode: str = "predicted") -> Trajectory:
    """A trajectory holding only what the export reads (its token fields empty)."""
    settings = RunSettings("m", "b", mode, 4, "mtsql-v1", {}, True)
    return Trajectory(
        id=f"{db}#{sample}", dialogue_id=db, sample=sample, dataset="sparc", split="dev", db_id=db,
        n_turns=len(gold), settings=settings, finish="done", retokenized=False, prompt_messages=[], tools=[],
        prompt_ids=[], completion_ids=[], completion_mask=[], logprobs=[], segments=[], text="", steps=[], turns=[],
        final_sql=final, gold_sql=gold, malformed=0, stats=TrajectoryStats(0, 0, 0, 0.0),
    )  # fmt: skip


def session(db: str, *queries: str) -> list[GoldQuery]:
    return [GoldQuery(query, db) for query in queries]


def test_gold_order_not_file_order_and_samples() -> None:
    gold = [session("b", "SELECT 2"), session("a", "SELECT 1", "SELECT  1 + 1")]
    records = [
        record("a", ["SELECT 1", "SELECT 1 + 1"], ["SELECT x", "SELECT y\nFROM t"]),
        record("a", ["SELECT 1", "SELECT 1 + 1"], ["SELECT other", "SELECT other"], sample=1),
        record("b", ["SELECT 2"], ["SELECT z"]),
    ]
    found = predictions_from_episodes(records, gold)
    assert found.sessions == [["SELECT z"], ["SELECT x", "SELECT y FROM t"]]
    assert (found.missing_sessions, found.unreached_turns, found.history_modes) == (0, 0, ("predicted",))
    assert predictions_from_episodes(records, gold, sample=1).sessions[1] == ["SELECT other", "SELECT other"]


def test_missing_episodes_and_unreached_turns_become_empty_predictions() -> None:
    gold = [session("a", "SELECT 1", "SELECT 2", "SELECT 3"), session("c", "SELECT 9")]
    found = predictions_from_episodes([record("a", ["SELECT 1", "SELECT 2", "SELECT 3"], ["SELECT 1"])], gold)
    assert found.sessions == [["SELECT 1", EMPTY_PREDICTION, EMPTY_PREDICTION], [EMPTY_PREDICTION]]
    assert (found.missing_sessions, found.unreached_turns) == (1, 2)


def test_evaluate_scores_trajectories(tmp_path: Path, monkeypatch: Any) -> None:
    from mtsql.data import read_dataset_file
    from mtsql.examples import load_example

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    example = load_example("festival")
    dialogues = read_dataset_file(example.dialogues, "sparc", "example").dialogues
    records = [record(d.db_id, [t.query for t in d.turns], [t.query for t in d.turns]) for d in dialogues[1:]]
    records[0].final_sql[0] = "SELECT name FROM stage WHERE 0"  # one wrong answer
    path = tmp_path / "rollouts.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    per_turn = tmp_path / "turns.jsonl"
    result = CliRunner().invoke(
        app, ["evaluate", "--example", "festival", "--trajectories", str(path), "--per-turn", str(per_turn)]
    )
    assert result.exit_code == 0, result.output
    assert "1 gold session(s) have no episode" in result.output
    turns = [json.loads(line) for line in per_turn.read_text().splitlines()]
    first = len(dialogues[0].turns)
    assert [t["exec"] for t in turns[:first]] == [0] * first  # no episode: empty predictions
    assert turns[first]["exec"] == 0 and all(t["exec"] == 1 for t in turns[first + 1 :])
    both = CliRunner().invoke(app, ["evaluate", "--example", "festival", "--trajectories", str(path), "--pred", "x"])
    assert both.exit_code == 2 and "not both" in both.output
