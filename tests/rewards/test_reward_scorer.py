"""Rewards of scripted episodes on a small database: every component, the totals and the aggregation."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted import (
    ALL,
    BROKEN,
    EMPTY,
    FRANCE,
    MEMORY_NO_PASS,
    MEMORY_PASS,
    NO_PASS,
    OLD,
    PASS,
    SPAIN,
    answer,
    check,
    play,
    run,
)

from mtsql.rewards import COMPONENTS, RewardConfig, RewardScorer, reward_episode


@pytest.fixture(scope="module")
def scorer(db_dir: Path) -> RewardScorer:
    return RewardScorer(db_dir)


def test_right_verdicts_on_error_empty_and_rows(db_dir: Path, scorer: RewardScorer) -> None:
    record = play(db_dir, [ALL], [run(BROKEN), run(EMPTY, NO_PASS), run(ALL, NO_PASS), answer(ALL, PASS)])
    question = scorer.episode(record).questions[0]
    assert question.exec_calls == 3 and question.memory_checks == 0
    assert question.exec_verify == pytest.approx((1.0 + 0.2 + 1.0) / 3)
    assert (question.exec, question.exact, question.format) == (1.0, 1.0, 1.0)
    assert question.coherence == 0.0  # no memory check


def test_wrong_and_missing_verdicts(db_dir: Path, scorer: RewardScorer) -> None:
    wrong = play(db_dir, [ALL], [run(BROKEN), run(EMPTY, PASS), run(ALL, PASS), answer(ALL, NO_PASS)])
    assert scorer.episode(wrong).questions[0].exec_verify == 0.0
    missing = play(db_dir, [ALL], [run(BROKEN), run(ALL), answer(ALL)])
    assert scorer.episode(missing).questions[0].exec_verify == 0.0


def test_empty_gold_makes_pass_right(db_dir: Path) -> None:
    record = play(db_dir, [SPAIN], [run(SPAIN), answer(SPAIN, PASS)])
    assert RewardScorer(db_dir).question(record.turns[0], "concert").exec_verify == 1.0
    original = RewardScorer(db_dir, RewardConfig(empty_gold_aware=False))
    assert original.question(record.turns[0], "concert").exec_verify == 0.0
    record = play(db_dir, [SPAIN], [run(SPAIN), answer(SPAIN, NO_PASS)])
    assert original.question(record.turns[0], "concert").exec_verify == 0.2


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_empty_gold_questions_are_marked_and_their_outcome_weighted(db_dir: Path, weight: float) -> None:
    """An empty answer execution-matches an empty gold (official EX); ``empty_gold_weight`` scales what it pays."""
    record = play(db_dir, [SPAIN, ALL], [run(SPAIN), answer(SPAIN, PASS)], [run(ALL), answer(ALL, PASS)])
    empty, rows = RewardScorer(db_dir, RewardConfig(empty_gold_weight=weight)).episode(record).questions
    assert (empty.gold_empty, rows.gold_empty) == (True, False)
    assert (empty.exec, empty.exact) == (weight, weight) and (rows.exec, rows.exact) == (1.0, 1.0)
    assert empty.to_dict()["gold_empty"] is True


@pytest.mark.parametrize(
    ("sql", "verdict", "credit"),
    [
        (FRANCE, MEMORY_PASS, 1.0),  # the gold itself
        (FRANCE, MEMORY_NO_PASS, 0.0),
        ("SELECT name FROM singer WHERE country = 'Netherlands'", MEMORY_PASS, 1.0),  # same clauses, other value
        (OLD, MEMORY_PASS, 0.0),  # another condition
        (OLD, MEMORY_NO_PASS, 1.0),
        ("SELECT DISTINCT name FROM singer WHERE country = 'France'", MEMORY_PASS, 1.0),
    ],
)
def test_coherence_follows_closeness_to_gold(
    db_dir: Path, scorer: RewardScorer, sql: str, verdict: str, credit: float
) -> None:
    record = play(db_dir, [ALL, FRANCE], [answer(ALL)], [run(sql), check(PASS), answer(sql, verdict)])
    question = scorer.episode(record).questions[1]
    assert question.memory_checks == 1 and question.coherence == credit


def test_coherence_threshold_and_no_check_before_execution(db_dir: Path) -> None:
    near = "SELECT name, age FROM singer WHERE country = 'France'"  # one extra column: F1 between 0.5 and 1
    record = play(db_dir, [ALL, FRANCE], [answer(ALL)], [run(near), check(PASS), answer(near, MEMORY_PASS)])
    assert 0.5 < RewardScorer(db_dir).clause_f1(near, FRANCE, "concert") < 1.0
    assert RewardScorer(db_dir).episode(record).questions[1].coherence == 0.0
    lenient = RewardScorer(db_dir, RewardConfig(coherence_f1_threshold=0.5))
    assert lenient.episode(record).questions[1].coherence == 1.0
    # a check before any execution is refused by the environment: no check, no credit for its verdict
    record = play(db_dir, [ALL, FRANCE], [answer(ALL)], [check(), answer(FRANCE, MEMORY_NO_PASS)])
    question = RewardScorer(db_dir).episode(record).questions[1]
    assert (question.memory_checks, question.coherence, question.clause_f1, question.format) == (0, 0.0, 0.0, 0.0)


def test_clause_f1_is_the_mean_over_proposed_sql(db_dir: Path, scorer: RewardScorer) -> None:
    record = play(
        db_dir,
        [ALL, FRANCE],
        [answer(ALL)],
        [run(BROKEN), run(OLD, NO_PASS), run(FRANCE, NO_PASS), answer(FRANCE, PASS)],
    )
    question = scorer.episode(record).questions[1]
    f1 = [scorer.clause_f1(sql, FRANCE, "concert") for sql in (BROKEN, OLD, FRANCE)]
    assert f1[0] == 0.0 and 0.0 < f1[1] < 1.0 and f1[2] == 1.0
    assert question.clause_f1 == pytest.approx(sum(f1) / 3)
    # an answer never executed is judged by the outcome only
    direct = scorer.episode(record).questions[0]
    assert (direct.exec, direct.exact, direct.clause_f1, direct.exec_verify, direct.exec_calls) == (1, 1, 0, 0, 0)


def test_totals_weights_and_aggregation(db_dir: Path) -> None:
    record = play(
        db_dir,
        [ALL, FRANCE],
        [run(ALL), answer(ALL, PASS)],
        [run(OLD), check(PASS), answer(OLD, MEMORY_PASS)],
        history_mode="oracle",
    )
    config = RewardConfig(exec_verify_weight=1.0, coherence_weight=2.0, clause_f1_weight=0.5, format_weight=-1.0)
    episode = RewardScorer(db_dir, config).episode(record)
    first, second = episode.questions
    assert first.components() == {
        "exec": 1.0, "exact": 1.0, "exec_verify": 1.0, "coherence": 0.0, "clause_f1": 1.0, "format": 1.0
    }  # fmt: skip
    assert first.total == pytest.approx(1 + 1 + 1 + 0.5 - 1)
    assert (second.exec, second.exact, second.coherence) == (0.0, 0.0, 0.0)
    assert second.total == pytest.approx(sum(config.weight(name) * getattr(second, name) for name in COMPONENTS))
    assert episode.total == pytest.approx((first.total + second.total) / 2)
    assert episode.components()["clause_f1"] == pytest.approx((1.0 + second.clause_f1) / 2)
    assert episode.history_mode == "oracle"
    logged = episode.to_dict()
    assert logged["total"] == episode.total and len(logged["questions"]) == 2
    assert logged["questions"][0]["exec_status"] == "match" and logged["questions"][0]["hardness"] == "easy"
    assert RewardScorer(db_dir, config).episode(record, turns=[1]).total == second.total


def test_truncated_and_malformed_questions(db_dir: Path, scorer: RewardScorer) -> None:
    record = play(db_dir, [ALL], [run(BROKEN), run(OLD, NO_PASS), run(EMPTY, PASS), run(ALL, NO_PASS)])
    question = scorer.episode(record).questions[0]
    assert record.turns[0].truncated and record.turns[0].final_sql == ALL  # the last executed SQL
    assert (question.exec, question.format) == (1.0, 0.0)
    # each verdict judges the call before it: error/no_pass, rows/pass, empty/no_pass, then none for the last
    assert question.exec_verify == pytest.approx((1.0 + 1.0 + 0.2 + 0.0) / 4)
    record = play(db_dir, [ALL], ["<tool_call>{bad json</tool_call>", answer(ALL)])
    assert scorer.episode(record).questions[0].format == 0.0


def test_skipped_turns_and_cache(db_dir: Path) -> None:
    scorer = RewardScorer(db_dir)
    record = play(db_dir, [ALL], [run(ALL), answer(ALL, PASS)])
    record.turns[0].gold_sql = "SELECT FROM WHERE"  # a gold the parser rejects
    question = scorer.episode(record).questions[0]
    assert question.outcome.skipped and (question.exec, question.exact, question.clause_f1) == (0.0, 0.0, 0.0)
    scorer.episode(record)
    assert scorer._outcome.cache_info().hits >= 1


def test_reward_episode_shares_a_scorer(db_dir: Path, scorer: RewardScorer) -> None:
    record = play(
        db_dir, [ALL, FRANCE], [run(ALL), answer(ALL, PASS)], [run(FRANCE), check(PASS), answer(FRANCE, MEMORY_PASS)]
    )
    assert reward_episode(record, db_dir) == scorer.episode(record)
    assert reward_episode(record, db_dir).total == pytest.approx(3.1 - 0.05)  # turn 1 has no memory to check
