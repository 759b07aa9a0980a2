"""The session-format driver and its aggregation, on the bundled example and on hand-made broken inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mtsql.data.loaders import GoldQuery, read_gold_file, read_prediction_file
from mtsql.eval.evaluator import EvalOptions, evaluate_turns
from mtsql.eval.summary import summarize, turn_bucket
from mtsql.examples import Example, load_example


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    return load_example("festival", root=tmp_path_factory.mktemp("examples"))


def _options(example: Example, **kw) -> EvalOptions:
    return EvalOptions(db_dir=example.db_dir, tables=example.tables, workers=1, **kw)


def _gold(sql: str) -> GoldQuery:
    return GoldQuery(sql, "festival")


def test_gold_against_itself_is_perfect(example: Example) -> None:
    gold = read_gold_file(example.gold)
    results = evaluate_turns(gold, [[g.query for g in s] for s in gold], _options(example))
    summary = summarize(results, "all")
    assert summary.levels["all"]["exec"] == 1.0 and summary.levels["all"]["exact"] == 1.0
    assert summary.levels["joint_all"]["count"] == len(gold)
    assert summary.levels["joint_all"]["exec"] == 1.0


def test_parallel_workers_give_the_same_verdicts(example: Example) -> None:
    gold = read_gold_file(example.gold) * 4  # enough turns for the process pool
    preds = read_prediction_file(example.predictions) * 4
    one = evaluate_turns(gold, preds, _options(example))
    two = evaluate_turns(gold, preds, EvalOptions(db_dir=example.db_dir, tables=example.tables, workers=2))
    assert [[r.to_json() for r in s] for s in one] == [[r.to_json() for r in s] for s in two]


def test_known_mistakes_of_the_example_predictions(example: Example) -> None:
    results = evaluate_turns(read_gold_file(example.gold), read_prediction_file(example.predictions), _options(example))
    by_turn = {(r.session, r.turn): r for s in results for r in s}
    # Dropping the earlier turn's constraint: wrong on both.
    assert (by_turn[0, 1].exact, by_turn[0, 1].exec) == (0, 0)
    # Missing DISTINCT: the official evaluator ignores DISTINCT for both verdicts.
    assert (by_turn[7, 0].exact, by_turn[7, 0].exec) == (1, 1)
    # Same rows from a different query: execution match only.
    assert (by_turn[10, 2].exact, by_turn[10, 2].exec) == (0, 1)
    # Reversed sort order: ORDER BY in the gold makes row order matter.
    assert (by_turn[3, 1].exact, by_turn[3, 1].exec) == (0, 0)


def test_missing_database_is_skipped_and_reported(example: Example) -> None:
    gold = [[GoldQuery("SELECT 1", "no_such_db")], [_gold("SELECT name FROM stage")]]
    results = evaluate_turns(gold, [["SELECT 1"], ["SELECT name FROM stage"]], _options(example))
    assert results[0][0].skipped and "database missing" in results[0][0].error
    summary = summarize(results, "all")
    assert summary.levels["all"]["count"] == 1
    assert summary.levels["joint_all"]["count"] == 1  # the unjudgeable session does not enter joint_all
    assert len(summary.skipped) == 1


def test_gold_that_does_not_parse_is_skipped(example: Example) -> None:
    gold = [[_gold("SELECT nonexistent_column FROM stage"), _gold("SELECT name FROM stage")]]
    results = evaluate_turns(gold, [["SELECT name FROM stage", "SELECT name FROM stage"]], _options(example))
    assert results[0][0].skipped and "gold query does not parse" in results[0][0].error
    assert results[0][1].exact == 1
    summary = summarize(results, "all")
    assert summary.levels["joint_all"]["exact"] == 0  # a session with an unjudgeable turn is not all right


def test_gold_that_fails_to_execute_counts_as_mismatch(example: Example, tmp_path: Path) -> None:
    db_dir = tmp_path / "database"
    shutil.copytree(example.db_dir, db_dir)
    # A second database file in the folder without the 'covered' column: the gold fails there.
    import sqlite3

    with sqlite3.connect(db_dir / "festival" / "variant.sqlite") as conn:
        conn.execute("CREATE TABLE stage (stage_id INTEGER, name TEXT, capacity INTEGER)")
    conn.close()
    gold = [[_gold("SELECT name FROM stage WHERE covered = 1")]]
    options = EvalOptions(db_dir=db_dir, tables=example.tables, workers=1)
    results = evaluate_turns(gold, [["SELECT name FROM stage WHERE covered = 1"]], options)
    r = results[0][0]
    assert (r.exec, r.exec_status) == (0, "gold_error") and "gold query fails" in r.error
    summary = summarize(results, "all")
    assert len(summary.gold_errors) == 1


def test_unparsable_prediction_is_an_empty_query(example: Example) -> None:
    results = evaluate_turns([[_gold("SELECT name FROM stage")]], [["SELECT name FROM"]], _options(example))
    r = results[0][0]
    assert r.pred_parsed is False and r.exact == 0 and r.exec == 0 and "does not parse" in r.error


def test_value_placeholder_is_plugged_as_official(example: Example) -> None:
    gold = [[_gold("SELECT name FROM stage WHERE capacity > 1")]]
    results = evaluate_turns(gold, [["SELECT name FROM stage WHERE capacity > value "]], _options(example))
    assert results[0][0].pred == "SELECT name FROM stage WHERE capacity > 1 "
    assert results[0][0].exec == 1


def test_missing_predictions_official_vs_strict(example: Example) -> None:
    gold = [[_gold("SELECT name FROM stage"), _gold("SELECT count(*) FROM stage")]]
    preds = [["SELECT name FROM stage"]]
    official = evaluate_turns(gold, preds, _options(example))
    assert len(official[0]) == 1  # zip(): the unpredicted turn is silently dropped, as officially
    summary = summarize(official, "all", gold_turns_per_session=[2])
    assert summary.unpredicted_turns == 1 and summary.levels["joint_all"]["exec"] == 1.0
    strict = evaluate_turns(gold, preds, _options(example, strict=True))
    assert [r.exec for r in strict[0]] == [1, 0]


def test_session_count_mismatch_is_a_clear_error(example: Example) -> None:
    with pytest.raises(ValueError, match="2 sessions but the gold file has 1"):
        evaluate_turns([[_gold("SELECT 1")]], [["SELECT 1"], ["SELECT 1"]], _options(example))


def test_exact_match_needs_tables(example: Example) -> None:
    with pytest.raises(ValueError, match=r"tables\.json"):
        evaluate_turns([[_gold("SELECT 1")]], [["SELECT 1"]], EvalOptions(db_dir=example.db_dir, tables=None))


def test_exec_only_has_no_exact_scores(example: Example) -> None:
    results = evaluate_turns(
        [[_gold("SELECT name FROM stage")]], [["SELECT name FROM stage"]], _options(example, etype="exec")
    )
    summary = summarize(results, "exec")
    assert results[0][0].exact is None and "exact" not in summary.levels["all"]
    assert json.loads(json.dumps(summary.to_json()))["question_match"] == {"exec": 1.0, "exact": None}


def test_official_partial_arithmetic_for_joint_all(example: Example) -> None:
    gold = read_gold_file(example.gold)
    summary = summarize(evaluate_turns(gold, read_prediction_file(example.predictions), _options(example)), "all")
    # The official script never accumulates partial scores for joint_all: accuracy and recall 0, so F1 1.
    joint = summary.levels["joint_all"]["partial"]["select"]
    assert (joint["acc"], joint["rec"], joint["f1"]) == (0, 0, 1)


@pytest.mark.parametrize(("turn", "bucket"), [(0, "turn 1"), (3, "turn 4"), (4, "turn > 4"), (9, "turn > 4")])
def test_turn_buckets(turn: int, bucket: str) -> None:
    assert turn_bucket(turn) == bucket


def test_pair_that_crashes_the_official_scores_as_mismatch(example: Example) -> None:
    """Two different FROM subqueries make the official sort crash; here the turn is a reported mismatch."""
    gold = [[_gold("SELECT count(*) FROM (SELECT name FROM stage)")]]
    pred = [["SELECT count(*) FROM (SELECT name FROM stage) (SELECT name FROM artist)"]]
    r = evaluate_turns(gold, pred, _options(example))[0][0]
    assert r.exact == 0 and "two different subqueries" in r.error and r.partial is not None


def test_a_prediction_that_fails_to_execute_says_why(example: Example) -> None:
    gold = [[_gold("SELECT count(*) FROM stage")]]
    results = evaluate_turns(gold, [["SELECT count(*) FROM stage GROUP BY count(*)"]], _options(example))
    turn = results[0][0]
    assert turn.pred_parsed and turn.exec_status == "pred_error"
    assert "prediction fails on the database: aggregate functions are not allowed" in turn.error


def test_predictions_beyond_their_gold_session_are_counted_and_refused_when_strict(example: Example) -> None:
    from mtsql.eval.evaluator import extra_predictions

    gold = [[_gold("SELECT name FROM stage")]]
    preds = [["SELECT name FROM stage", "SELECT 1", "SELECT 2"]]
    assert extra_predictions(gold, preds) == 2
    results = evaluate_turns(gold, preds, _options(example))
    assert len(results[0]) == 1
    summary = summarize(results, "all", extra_predictions=2)
    assert summary.to_json()["extra_predictions"] == 2
    with pytest.raises(ValueError, match="2 prediction"):
        evaluate_turns(gold, preds, _options(example, strict=True))
