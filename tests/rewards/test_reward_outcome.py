"""The outcome is the evaluator's verdict: score_turn against the session driver on the bundled example."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mtsql.data.loaders import GoldQuery, read_gold_file, read_prediction_file
from mtsql.eval.evaluator import EvalOptions, evaluate_turns
from mtsql.eval.perturb import perturb_sessions
from mtsql.examples import Example, load_example
from mtsql.rewards import load_foreign_key_maps, score_turn, sqlite_foreign_key_map


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    return load_example("festival", root=tmp_path_factory.mktemp("examples"))


def test_score_turn_gives_the_evaluators_verdicts(example: Example) -> None:
    gold = read_gold_file(example.gold)
    shipped = read_prediction_file(example.predictions)
    perturbed, _ = perturb_sessions([[(g.query, g.db_id) for g in session] for session in gold], seed=3)
    # and a pair the official evaluator crashes on (two different FROM subqueries), scored as a mismatch
    crash = "SELECT * FROM (SELECT * FROM artist WHERE artist_id = 1) (SELECT * FROM artist)"
    gold = [*gold, [GoldQuery(crash, "festival")]]
    shipped, perturbed = [*shipped, [crash]], [*perturbed, [crash]]
    kmaps = load_foreign_key_maps(example.tables)
    options = EvalOptions(db_dir=example.db_dir, tables=example.tables, workers=1)
    compared = 0
    for predictions in (shipped, perturbed):
        results = evaluate_turns(gold, predictions, options)
        for session, preds, session_results in zip(gold, predictions, results, strict=True):
            for query, pred, result in zip(session, preds, session_results, strict=False):
                db_file = example.db_dir / query.db_id / f"{query.db_id}.sqlite"
                score = score_turn(pred, query.query, db_file, kmaps[query.db_id])
                expected = {f.name: getattr(result, f.name) for f in dataclasses.fields(score) if f.name != "partial"}
                assert dataclasses.asdict(score) | {"partial": None} == expected | {"partial": None}
                assert score.partial == result.partial
                compared += 1
    assert compared > 20


def test_skipped_and_partial_evaluations(example: Example, tmp_path: Path) -> None:
    db_file = example.db_dir / "festival" / "festival.sqlite"
    kmap = load_foreign_key_maps(example.tables)["festival"]
    assert score_turn("SELECT 1", "SELECT 1", tmp_path / "none" / "none.sqlite", {}).skipped
    broken = score_turn("SELECT 1", "SELECT FROM WHERE", db_file, kmap)
    assert broken.skipped and broken.error is not None and broken.error.startswith("gold query does not parse")
    gold = read_gold_file(example.gold)[0][0].query
    only_exec = score_turn(gold, gold, db_file, kmap, etype="exec")
    assert (only_exec.exec, only_exec.exact) == (1, None) and only_exec.hardness is not None
    only_match = score_turn(gold, gold, db_file, kmap, etype="match")
    assert (only_match.exec, only_match.exact, only_match.exec_status) == (None, 1, None)


def test_sqlite_foreign_keys_stand_in_for_tables_json(example: Example) -> None:
    db_file = example.db_dir / "festival" / "festival.sqlite"
    assert sqlite_foreign_key_map(db_file) == load_foreign_key_maps(example.tables)["festival"]
