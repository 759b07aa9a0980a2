"""Rewards of gold and perturbed trajectories over real SParC dev dialogues (skipped without the data)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mtsql.data import Dialogue, gold_sessions, load_dialogues, resolve_database_path
from mtsql.env import DialogueEnv, EpisodeRecord, GoldPolicy, run_episode
from mtsql.eval.evaluator import EvalOptions, evaluate_turns
from mtsql.eval.perturb import perturb_sessions
from mtsql.rewards import RewardScorer, load_foreign_key_maps


@pytest.fixture(scope="module")
def dialogues(data_dir: Path) -> list[Dialogue]:
    db_dir = data_dir / "database"
    return [d for d in load_dialogues("sparc", "dev", data_dir) if resolve_database_path(db_dir, d.db_id).is_file()]


@pytest.fixture(scope="module")
def scorer(data_dir: Path) -> RewardScorer:
    return RewardScorer(data_dir / "database", kmaps=load_foreign_key_maps(data_dir / "sparc" / "tables.json"))


def replay(data_dir: Path, dialogues: list[Dialogue], answers: list[list[str]] | None = None) -> list[EpisodeRecord]:
    """Episodes of the gold policy, answering ``answers`` (the gold by default) with truthful verdicts."""
    env = DialogueEnv(data_dir / "database")
    records = []
    for index, dialogue in enumerate(dialogues):
        script = dialogue
        if answers is not None:
            turns = tuple(
                dataclasses.replace(t, query=sql) for t, sql in zip(dialogue.turns, answers[index], strict=True)
            )
            script = dataclasses.replace(dialogue, turns=turns)
        records.append(run_episode(env, dialogue, GoldPolicy(script)))
    return records


def test_gold_trajectories_get_full_credit(data_dir: Path, dialogues: list[Dialogue], scorer: RewardScorer) -> None:
    records = replay(data_dir, dialogues)
    turns = [(t, q) for r in records for t, q in zip(r.turns, scorer.episode(r).questions, strict=True)]
    assert len(turns) > 1000
    questions = [q for _, q in turns]
    runs = [q for q in questions if q.outcome.exec_status != "gold_error"]
    assert len(questions) - len(runs) < 5  # a few gold queries of the release fail on their database
    assert all(q.exact == 1.0 and q.clause_f1 == 1.0 and q.exec_verify == 1.0 and q.format == 1.0 for q in questions)
    assert all(q.exec == 1.0 for q in runs)
    # every later question whose gold executes in the environment checks the memory and is right to pass it
    checked = [q for t, q in turns if t.index > 0 and t.calls[0].exec["ok"]]  # type: ignore[index]
    assert len(checked) > 600 and all(q.memory_checks == 1 and q.coherence == 1.0 for q in checked)


def test_perturbed_trajectories_get_less_and_the_evaluators_verdicts(
    data_dir: Path, dialogues: list[Dialogue], scorer: RewardScorer
) -> None:
    gold = gold_sessions(dialogues)
    predictions, _ = perturb_sessions([[(g.query, g.db_id) for g in session] for session in gold], seed=7)
    perturbed = [scorer.episode(record) for record in replay(data_dir, dialogues, predictions)]
    ideal = [scorer.episode(record) for record in replay(data_dir, dialogues)]
    assert sum(e.total for e in perturbed) < sum(e.total for e in ideal) - 0.1 * len(ideal)
    assert sum(e.components()["clause_f1"] for e in perturbed) < sum(e.components()["clause_f1"] for e in ideal)
    # the outcome of every question is what `mtsql evaluate --table tables.json` reports for the same predictions
    options = EvalOptions(db_dir=data_dir / "database", tables=data_dir / "sparc" / "tables.json", workers=1)
    official = evaluate_turns(gold, predictions, options)
    for episode, results in zip(perturbed, official, strict=True):
        for question, result in zip(episode.questions, results, strict=True):
            assert (question.exec, question.exact) == (result.exec or 0, result.exact or 0), (
                episode.dialogue_id,
                result,
            )
            assert question.outcome.exec_status == result.exec_status
