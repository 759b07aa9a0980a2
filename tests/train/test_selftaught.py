"""Stage 1's self-taught loop: selection rules, the pool, the per-round numbers, resume, and a whole run.

Correct trajectories come from teacher forcing (the gold protocol through the rollout engine), each message
opened with a chosen thought so that trajectories differ in text and length; a wrong one answers another query.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mtsql.data import Dialogue
from mtsql.env.environment import GoldPolicy
from mtsql.rollout.trajectory import Trajectory

pytest.importorskip("torch")
pytest.importorskip("trl")

from rich.console import Console

from mtsql.backends import TokenizerOnly
from mtsql.env.templates import builtin_template_text
from mtsql.rewards import RewardConfig
from mtsql.rollout import RolloutConfig, RolloutEngine, read_episodes, read_records
from mtsql.train.data import sft_example
from mtsql.train.selftaught import (
    SelfTaught,
    SelfTaughtConfig,
    SelfTaughtError,
    cluster,
    remaining,
    rounds_table,
    run_self_taught,
    select_trajectories,
)

WRONG_SQL = "SELECT name FROM artist"
TOPICS = {
    "weather": [
        "Tomorrow brings heavy rain, dark clouds and a cold wind from the north.",
        "The forecast warns of storms, thunder and lightning over the coast tonight.",
    ],
    "football": [
        "The striker scored two goals and the team won the championship final.",
        "Fans filled the stadium to watch the goalkeeper save a penalty kick.",
    ],
    "cooking": [
        "Boil the pasta, then simmer a tomato sauce with garlic, basil and olive oil.",
        "Knead the dough, let it rise, and bake the bread in a hot oven until golden.",
    ],
}


@pytest.fixture(scope="module")
def engine(checkpoint: Path, example: Any) -> RolloutEngine:
    return RolloutEngine(
        TokenizerOnly(str(checkpoint)), example.db_dir, RolloutConfig(), tables=example.tables, rewards=RewardConfig()
    )


class Thinking:
    """The gold protocol with every message opened by ``thought``; the questions in ``wrong`` are answered with
    :data:`WRONG_SQL` instead of their gold."""

    def __init__(self, dialogue: Dialogue, thought: str, wrong: Sequence[int] = ()) -> None:
        turns = tuple(dataclasses.replace(t, query=WRONG_SQL) if t.index in wrong else t for t in dialogue.turns)
        self.gold = GoldPolicy(dataclasses.replace(dialogue, turns=turns))
        self.thought = thought

    def __call__(self, observation: Any, info: dict[str, Any]) -> str:
        return f"<think>\n{self.thought}\n</think>\n\n" + self.gold(observation, info)


def play(engine: RolloutEngine, dialogue: Dialogue, sample: int, thought: str, wrong: Sequence[int] = ()) -> dict:
    episode = engine.start(dialogue, sample)
    asyncio.run(episode.play(policy=Thinking(dialogue, thought, wrong)))
    return episode.record()


def config(tmp_path: Path, **changes: Any) -> SelfTaughtConfig:
    return SelfTaughtConfig(model="unused", output_dir=str(tmp_path / "run"), example="festival", **changes)


def model_tokens(record: Trajectory, question: int) -> int:
    return sum(s.end - s.start for s in record.segments if s.kind == "model" and s.turn == question)


def test_easy_and_all_solved_questions_keep_the_two_shortest_distinct(
    engine: RolloutEngine, dialogues: list[Dialogue], tmp_path: Path
) -> None:
    """Every sample solves every question: all are 'all solved', so each keeps its two shortest trajectories;
    sample 4 repeats sample 1's text and is not kept a second time."""
    dialogue = dialogues[0]
    repeats = [3, 1, 4, 2, 1]
    records = [play(engine, dialogue, s, "check the artists. " * n) for s, n in enumerate(repeats)]
    selection = select_trajectories(records[::-1], config(tmp_path))
    assert selection.solved == [(dialogue.id, q) for q in range(3)]
    assert [(row["question"], row["sample"]) for row in selection.rows] == [(q, s) for q in range(3) for s in (1, 3)]
    for row in selection.rows:
        record = records[row["sample"]]
        assert row["rule"] == "shortest" and row["all_solved"]
        assert row["episode"] == record.id and row["dialogue_id"] == dialogue.id
        assert row["difficulty"] == ("easy" if row["question"] == 0 else "medium")
        assert row["length"] == model_tokens(record, row["question"]) == sum(row["assistant_masks"])
        expected = sft_example(record, turns=[row["question"]])
        assert (row["input_ids"], row["assistant_masks"]) == (expected["input_ids"], expected["assistant_masks"])
    assert len({row["length"] for row in selection.rows if row["question"] == 1}) == 2
    one = select_trajectories(records, config(tmp_path, keep_easy=1))
    assert [(row["question"], row["sample"]) for row in one.rows] == [(0, 1), (1, 1), (2, 1)]


def test_empty_gold_questions_can_be_left_out(engine: RolloutEngine, dialogues: list[Dialogue], tmp_path: Path) -> None:
    """``empty_gold: drop`` leaves out the questions the records mark ``gold_empty`` (none of them is solved)."""
    dialogue = dialogues[0]
    records = [play(engine, dialogue, s, "check. " * (s + 1)) for s in range(2)]
    for record in records:
        record.rewards["questions"][1]["gold_empty"] = True  # as if question 2's gold returned no rows
    kept = select_trajectories(records, config(tmp_path))
    dropped = select_trajectories(records, config(tmp_path, empty_gold="drop"))
    assert [q for _, q in kept.solved] == [0, 1, 2] and [q for _, q in dropped.solved] == [0, 2]
    assert {row["question"] for row in dropped.rows} == {0, 2}
    with pytest.raises(ValueError, match="empty_gold must be keep or drop"):
        config(tmp_path, empty_gold="down")


@pytest.mark.slow
def test_hard_questions_keep_the_longest_of_each_diverse_group(
    engine: RolloutEngine, dialogues: list[Dialogue], tmp_path: Path
) -> None:
    """Six correct trajectories on three topics (a short and a long one each) and a wrong one: the medium
    question, not solved every time, keeps the long one of each topic, found by real MiniLM embeddings."""
    dialogue = dialogues[0]
    thoughts = [
        TOPICS["weather"][0],
        " ".join(TOPICS["football"]),
        TOPICS["cooking"][0],
        " ".join(TOPICS["weather"]),
        TOPICS["football"][0],
        " ".join(TOPICS["cooking"]),
    ]
    records = [play(engine, dialogue, s, thought) for s, thought in enumerate(thoughts)]
    records.append(play(engine, dialogue, 6, "I am not sure.", wrong=[1]))
    selection = select_trajectories(records, config(tmp_path))
    kept = {q: [(row["sample"], row["rule"]) for row in selection.rows if row["question"] == q] for q in range(3)}
    for question in (0, 2):  # solved in every sample: the two shortest, whatever their topic
        shortest = sorted(range(7), key=lambda s: (model_tokens(records[s], question), s))[:2]
        assert kept[question] == [(s, "shortest") for s in shortest]
    assert sorted(kept[1]) == [(1, "diverse"), (3, "diverse"), (5, "diverse")]
    lengths = [row["length"] for row in selection.rows if row["question"] == 1]
    assert lengths == sorted(lengths, reverse=True)
    assert all(row["all_solved"] == (row["question"] != 1) for row in selection.rows)
    two = select_trajectories(records, config(tmp_path, keep_hard=2))
    assert len([row for row in two.rows if row["question"] == 1]) == 2


def test_clustering_is_average_linkage_over_cosine() -> None:
    rng = np.random.default_rng(0)
    directions = np.eye(4)[:3] * 10
    points = np.concatenate([directions[i] + rng.normal(scale=0.5, size=(3, 4)) for i in (0, 1, 2)])
    order = rng.permutation(len(points))
    groups = cluster(points[order], 3)
    assert sorted(sorted(int(order[i]) // 3 for i in group) for group in groups) == [[0] * 3, [1] * 3, [2] * 3]
    assert cluster(points[order], 3) == groups  # deterministic
    assert cluster(points[:2], 3) == [[0], [1]]
    assert cluster(points, 1) == [list(range(9))]


def test_solved_questions_leave_the_pool_and_yield_rows_once(
    engine: RolloutEngine, dialogues: list[Dialogue], tmp_path: Path
) -> None:
    first, other = dialogues[0], dialogues[3]  # hardness: easy, medium, medium / easy, medium, hard
    records = [
        play(engine, first, 0, "short"),
        play(engine, first, 1, "a longer thought about it"),
        play(engine, other, 0, "short", wrong=[1]),
        play(engine, other, 1, "a longer thought", wrong=[1, 2]),
    ]
    selection = select_trajectories(records, config(tmp_path))
    assert selection.solved == [(first.id, 0), (first.id, 1), (first.id, 2), (other.id, 0), (other.id, 2)]
    assert remaining([first, other], selection.solved) == [other]
    assert remaining([first, other], [*selection.solved, (other.id, 1)]) == []
    hard = [row for row in selection.rows if row["dialogue_id"] == other.id and row["question"] == 2]
    assert [(row["sample"], row["rule"], row["all_solved"]) for row in hard] == [(0, "diverse", False)]
    again = select_trajectories(records[2:], config(tmp_path), solved=selection.solved)
    assert (again.questions, again.solved, again.rows) == (1, [], [])
    fixed = [play(engine, other, 0, "short"), play(engine, other, 1, "long", wrong=[1])]
    later = select_trajectories(fixed, config(tmp_path), solved=selection.solved)
    assert later.solved == [(other.id, 1)] and {row["question"] for row in later.rows} == {1}
    assert later.stats()["dialogues_left"] == 0


def test_round_statistics_and_table(engine: RolloutEngine, dialogues: list[Dialogue], tmp_path: Path) -> None:
    first, other = dialogues[0], dialogues[3]
    records = [
        play(engine, first, 0, "short"),
        play(engine, first, 1, "a longer thought about it"),
        play(engine, other, 0, "short", wrong=[1]),
        play(engine, other, 1, "a longer thought", wrong=[1, 2]),
    ]
    selection = select_trajectories(records, config(tmp_path))
    stats = selection.stats()
    lengths = [row["length"] for row in selection.rows]
    assert stats == {
        "episodes": 4,
        "dialogues": 2,
        "questions": 6,
        "solved": 5,
        "solved_pct": 83.33,
        "kept": 9,
        "kept_by_difficulty": {"easy": 4, "medium": 4, "hard": 1, "extra": 0, "all_solved": 8},
        "mean_length": round(sum(lengths) / 9, 1),
        "questions_left": 1,
        "dialogues_left": 1,
    }
    console = Console(record=True, width=200)
    console.print(rounds_table([{"round": 0, **stats, "gold_rows": 3, "trained": True}]))
    (line,) = [line for line in console.export_text().splitlines() if line.strip().startswith("│")]
    cells = [cell.strip() for cell in line.strip("│ ").split("│")]
    mean = f"{stats['mean_length']:.1f}"
    assert cells == ["0", "2", "6", "5", "83.3", "4", "4", "1", "0", "8", "9", "3", mean, "1", "trained"]


def test_yaml_config(tmp_path: Path, checkpoint: Path) -> None:
    (tmp_path / "model").symlink_to(checkpoint)
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: model\noutput_dir: out\nexample: festival\nlimit: 2\nsamples: 4\ntemperature: 0.9\nrounds: 2\n"
        "keep_hard: 4\nbackend_options: {device: cpu}\nlora: true\ntraining:\n  max_steps: 3\n"
    )
    loaded = SelfTaughtConfig.from_yaml(path)
    assert loaded.model == str(tmp_path / "model") and loaded.output_dir == str(tmp_path / "out")
    assert (loaded.samples, loaded.temperature, loaded.rounds, loaded.keep_hard, loaded.keep_easy) == (4, 0.9, 2, 4, 2)
    assert loaded.lora is not None and loaded.training == {"max_steps": 3}
    assert loaded.backend_options == {"device": "cpu"}
    rollout = loaded.rollout_config()
    assert (rollout.samples, rollout.temperature, rollout.max_tokens) == (4, 0.9, 512)
    assert rollout.templates == loaded.templates == "mtsql-v1"
    (tmp_path / "mine.toml").write_text(builtin_template_text().replace('"mtsql-v1"', '"mine-v1"'), encoding="utf-8")
    path.write_text("model: model\noutput_dir: out\nexample: festival\ntemplates: mine.toml\n")
    assert SelfTaughtConfig.from_yaml(path).rollout_config().templates == str(tmp_path / "mine.toml")
    for text, message in [
        ("model: m\noutput_dir: o\nexample: festival\nepochs: 3\n", "unknown key"),
        ("model: m\nexample: festival\n", "'output_dir' is required"),
        ("model: m\noutput_dir: o\n", "exactly one of"),
        ("model: m\noutput_dir: o\ndataset: sparc\n", "'data_dir' is required"),
        ("model: m\noutput_dir: o\nexample: festival\nkeep_hard: 0\n", "keep_hard must be at least 1"),
        ("model: m\noutput_dir: o\nexample: festival\ntemplates: absent.toml\n", "cannot read template file"),
        ("model: m\noutput_dir: o\nexample: festival\ntemplates: mtsql-v0\n", "no built-in template set"),
    ]:
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            SelfTaughtConfig.from_yaml(path)


def test_a_folder_refuses_a_run_with_other_settings(tmp_path: Path) -> None:
    SelfTaught(config(tmp_path))
    SelfTaught(config(tmp_path, rounds=5, concurrency=2))  # more rounds: the same run, continued
    with pytest.raises(SelfTaughtError, match="temperature"):
        SelfTaught(config(tmp_path, temperature=1.0))
    with pytest.raises(SelfTaughtError, match="the rollouts stage has not finished"):
        SelfTaught(config(tmp_path)).select(0)


def tiny_run(checkpoint: Path, tmp_path: Path, **changes: Any) -> SelfTaughtConfig:
    """A run of the random tiny model: it samples, solves nothing, and every stage still runs."""
    settings: dict[str, Any] = {
        "limit": 2,
        "samples": 2,
        "max_tokens": 6,
        "max_steps": 1,
        "rounds": 1,
        "concurrency": 4,
        "backend_options": {"device": "cpu"},
        "training": {"max_steps": 1, "save_steps": 1, "logging_steps": 1},
        **changes,
    }
    return SelfTaughtConfig(str(checkpoint), str(tmp_path / "run"), example="festival", **settings)


@pytest.mark.slow
def test_an_interrupted_round_resumes_without_losing_or_repeating_work(checkpoint: Path, tmp_path: Path) -> None:
    run = tiny_run(checkpoint, tmp_path)
    out = Path(run.output_dir)
    SelfTaught(run).rollouts(0)
    rollouts = out / "round-0" / "rollouts.jsonl"
    lines = rollouts.read_text().splitlines(keepends=True)
    assert len(lines) == 4
    # Killed during the rollouts: one episode written, the next cut mid-line, the stage not marked finished.
    rollouts.write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    state = json.loads((out / "state.json").read_text())
    state["rounds"][0]["done"].remove("rollouts")
    (out / "state.json").write_text(json.dumps(state))
    console = Console(record=True, width=200)
    result = run_self_taught(run, console=console)
    episodes = read_episodes(rollouts)
    assert len(episodes) == 4 and len({e.id for e in episodes}) == 4
    assert rollouts.read_text().startswith(lines[0])
    state = json.loads((out / "state.json").read_text())
    assert state["rounds"][0]["done"] == ["rollouts", "selection", "sft"]
    assert result.final_model == str(checkpoint) and result.rounds[0]["trained"] is False
    files = {name: (out / name).read_bytes() for name in ("state.json", "rounds.jsonl", "round-0/rollouts.jsonl")}
    again = run_self_taught(run, console=console)  # finished: nothing reruns, nothing changes
    assert again.rounds == result.rounds
    assert files == {name: (out / name).read_bytes() for name in files}


@pytest.mark.slow
def test_two_rounds_of_the_tiny_model_write_every_file(checkpoint: Path, tmp_path: Path) -> None:
    """Round 0 solves nothing but trains on the gold rows; round 1 samples the new model, solves nothing
    again, and trains nothing: its model carries over, and the table says so."""
    run = tiny_run(checkpoint, tmp_path, limit=3, rounds=2, gold_round0=True)
    out = Path(run.output_dir)
    console = Console(record=True, width=200)
    result = run_self_taught(run, console=console)
    trained = out / "round-0" / "model"
    assert (trained / "model.safetensors").is_file() and (trained / "checkpoint-1").is_dir()
    assert not (out / "round-1" / "model").exists() and not (out / "round-1" / "gold.jsonl").exists()
    gold = [row for _, row in read_records(out / "round-0" / "gold.jsonl")]  # SFT rows, not episodes
    assert len(gold) == 3 and all(row["rule"] == "gold" and sum(row["assistant_masks"]) for row in gold)
    for index, model in enumerate([str(checkpoint), str(trained)]):
        episodes = read_episodes(out / f"round-{index}" / "rollouts.jsonl")
        assert len(episodes) == 6 and {e.settings.model for e in episodes} == {model}
        assert (out / f"round-{index}" / "selected.jsonl").read_text() == ""
    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [(r["round"], r["model"], r["next_model"], r["trained"]) for r in rounds] == [
        (0, str(checkpoint), str(trained), True),
        (1, str(trained), str(trained), False),
    ]
    assert [(r["questions"], r["solved"], r["kept"], r["gold_rows"], r["questions_left"]) for r in rounds] == [
        (9, 0, 0, 3, 9),
        (9, 0, 0, 0, 9),
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary == result.to_dict()
    assert (summary["final_model"], summary["questions"], summary["left"], summary["stopped"]) == (
        str(trained),
        9,
        9,
        "rounds",
    )
    text = console.export_text()
    assert "round 1: solved 0/9 questions" in text and "nothing trained, model carries over" in text
    assert "skipped (no rows)" in text
