"""Gold trajectories of real SParC / CoSQL dev dialogues through the environment (skipped without the data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtsql.data import Dialogue, load_dialogues, resolve_database_path
from mtsql.env import DialogueEnv, GoldPolicy
from mtsql.sql.preprocess import postprocess


def runnable(data_dir: Path, dataset: str) -> list[Dialogue]:
    db_dir = data_dir / "database"
    return [d for d in load_dialogues(dataset, "dev", data_dir) if resolve_database_path(db_dir, d.db_id).is_file()]


def replay(env: DialogueEnv, dialogue: Dialogue) -> list[str]:
    """Run the gold policy and check every step; returns the text of every memory reply."""
    policy = GoldPolicy(dialogue)
    observation, info = env.reset(dialogue)
    assert observation[1]["content"].startswith(f"Database: {dialogue.db_id}\n\nCREATE TABLE ")
    memory_replies = []
    while True:
        observation, _, terminated, truncated, info = env.step(policy(observation, info))
        assert info["error_kind"] is None
        if info["action"] == "memory_retrieve":
            memory_replies.append(observation[0]["content"])
        if terminated or truncated:
            break
    record = info["episode"]
    # answers are stripped of surrounding whitespace (some CoSQL gold queries end with a space)
    assert [t.final_sql for t in record.turns] == [t.query.strip() for t in dialogue.turns]
    for turn in record.turns:
        assert turn.answered and not turn.truncated and turn.malformed == 0 and turn.stray_verdicts == 0
        assert turn.memory_retrieved == turn.memory_expected == (turn.index > 0 and turn.calls[0].exec["ok"])
    return memory_replies


@pytest.mark.parametrize("mode", ["predicted", "oracle"])
@pytest.mark.parametrize("dataset", ["sparc", "cosql"])
def test_whole_dev_sets(data_dir: Path, dataset: str, mode: str) -> None:
    dialogues = runnable(data_dir, dataset)
    env = DialogueEnv(data_dir / "database", history_mode=mode)  # type: ignore[arg-type]
    for dialogue in dialogues:
        for reply in replay(env, dialogue):
            # the gold SQL of every earlier turn parses with the Spider parser
            assert "(not parsable" not in reply, reply
    # one execution per question, as the memory reuses executed results; in oracle mode the memory may also run
    # (when it is read) the gold queries whose split operators ("> =") were fixed for it
    fixed = sum(postprocess(t.query) != t.query for d in dialogues for t in d.turns[:-1]) if mode == "oracle" else 0
    questions = sum(len(d.turns) for d in dialogues)
    assert questions <= env.stats.sqlite_calls <= questions + fixed
