"""The official ``--plug_value``: value extraction, enumeration, execution match and the ``mtsql evaluate`` flag.

Expected extractions and enumerations are what the official ``parse.py`` (test-suite-sql-eval) returns for the
same queries; ``test_official_agreement.py`` checks whole dev sets against the official script.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtsql.cli.main import app
from mtsql.eval.exec_match import exec_match
from mtsql.eval.plug_value import _rank_tuples, plugged_predictions, value_template
from mtsql.eval.turn import score_turn
from mtsql.examples import load_example

V = "valuerare"


@pytest.mark.parametrize(
    ("query", "words", "values"),
    [
        (
            "SELECT name FROM singer WHERE age > 20 AND country = 'France' ORDER BY age DESC LIMIT 3",
            f"select name from singer where age > {V} and country = {V} order by age desc limit {V}",
            {"'France'", "20", "3"},
        ),
        (  # aliases split at their dots; double-quoted names are values; BETWEEN gives two slots
            'SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.id WHERE T2.city = "New York" '
            "AND T1.x BETWEEN 1.5 AND 10",
            f"select t1 . name from a as t1 join b as t2 on t1 . id = t2 . id where t2 . city = {V} "
            f"and t1 . x between {V} and {V}",
            {'"New York"', "1.5", "10"},
        ),
        (  # every occurrence of a string is a slot
            "select count(*) from t where a = 'x' or b = 'x'",
            f"select count ( * ) from t where a = {V} or b = {V}",
            {"'x'"},
        ),
        ("SELECT 1", f"select {V}", {"1"}),
        ("3", "3", set()),  # a number that starts the query is not a value
        (  # a word of one character (not t) and digits is an "integer" too, even a column
            "SELECT c1, col2, x FROM t WHERE y = -3 AND T2.a1 = 5",
            f"select {V} , col2 , x from t where y = {V} and t2 . {V} = {V}",
            {"c1", "-3", "a1", "5"},
        ),
        ("SELECT col2 FROM t1 WHERE c = 7", f"select col2 from t1 where c = {V}", {"7"}),
        (  # `;` deleted: the statements join into one
            "SELECT a FROM t WHERE b = 2; DROP TABLE x",
            f"select a from t where b = {V} drop table x",
            {"2"},
        ),
        ("SELECT a FROM t WHERE b = 'a;b\tc'", f"select a from t where b = {V}", {"'abc'"}),  # inside literals too
        ("SELECT a FROM t WHERE b > -1.5 AND c < .5", f"select a from t where b > {V} and c < {V}", {"-1.5", ".5"}),
        ("SELECT a FROM t WHERE b = valuerare", f"select a from t where b = {V}", set()),  # the marker itself
        (
            "SELECT a FROM t WHERE b LIKE '%x%' GROUP BY a HAVING count(*) > 2",
            f"select a from t where b like {V} group by a having count ( * ) > {V}",
            {"'%x%'", "2"},
        ),
    ],
)
def test_value_template_is_the_official_extraction(query: str, words: str, values: set[str]) -> None:
    template = value_template(query)
    assert " ".join(template.words) == words
    assert set(template.values) == values
    assert len(template.slot_texts) == template.words.count(V)


def test_slot_texts_are_the_replaced_values_in_order() -> None:
    query = "SELECT a FROM t WHERE b = 'x' AND c > 2.5 AND d = 'x' LIMIT 3"
    assert value_template(query).slot_texts == ("'x'", "2.5", "'x'", "3")
    assert value_template(query).values == ("'x'", "'x'", "2.5", "3")  # strings, floats, integers; repeated


@pytest.mark.parametrize("query", [";", " ; ", "\t;", ""])
def test_no_statement_raises_index_error_like_the_official_code(query: str) -> None:
    with pytest.raises(IndexError):
        value_template(query)


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        ("SELECT a FROM t", "SELECT a FROM t WHERE b = 1", []),  # slots without gold values: nothing
        ("SELECT a FROM t WHERE b = 1", "SELECT A FROM T", ["select a from t"]),  # no slot: the prediction
        ("SELECT a FROM t WHERE b = 'x' OR c = 'x'", "SELECT a FROM t WHERE b = 1 AND c = 2",
         ["select a from t where b = 'x' and c = 'x'"]),  # one distinct gold value
    ],
)  # fmt: skip
def test_plugged_predictions_edge_cases(gold: str, pred: str, expected: list[str]) -> None:
    count, candidates = plugged_predictions(gold, pred)
    assert (count, list(candidates)) == (len(expected), expected)


def test_plugged_predictions_are_the_official_product_most_plausible_first() -> None:
    gold = "SELECT a FROM t WHERE b = 'x' AND c > 5 LIMIT 3"
    count, candidates = plugged_predictions(gold, "SELECT a FROM t WHERE b = 'y' AND c > 1 LIMIT 3")
    out = list(candidates)
    values = ["'x'", "5", "3"]
    official = {
        f"select a from t where b = {b} and c > {c} limit {n}" for b, c, n in itertools.product(values, repeat=3)
    }
    assert count == 27 and len(out) == 27 and set(out) == official
    # the gold's value of the same slot (b, c), or the prediction's own value when the gold has it (LIMIT 3)
    assert out[0] == "select a from t where b = 'x' and c > 5 limit 3"


@pytest.mark.parametrize(("k", "n"), [(k, n) for k in range(5) for n in range(5)])
def test_rank_tuples_enumerate_the_product_once_by_increasing_sum(k: int, n: int) -> None:
    tuples = [tuple(ranks) for ranks in _rank_tuples(k, n)]
    assert sorted(tuples) == sorted(itertools.product(range(k), repeat=n))
    assert [sum(t) for t in tuples] == sorted(sum(t) for t in tuples)


def test_enumeration_is_lazy_for_huge_counts() -> None:
    gold = "SELECT a FROM t WHERE " + " AND ".join(f"col{i} = {i + 10}" for i in range(8))
    pred = "SELECT a FROM t WHERE " + " AND ".join(f"col{i} = 1" for i in range(12))
    count, candidates = plugged_predictions(gold, pred)
    assert count == 8**12
    assert next(candidates).startswith("select a from t where col0 = 10 and col1 = 11")


# ---------------------------------------------------------------------------------------------------------
# Execution match, score_turn and the CLI
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shop" / "shop.sqlite"
    path.parent.mkdir()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE items (id INTEGER, name TEXT, price REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(1, "pen", 1.5), (2, "ink", 3.0), (3, "pad", 2.0)])
        conn.commit()
    return path


def run(db: Path, pred: str, gold: str, **kw: object) -> object:
    return exec_match(db.parent, db, pred, gold, **kw)  # type: ignore[arg-type]


GOLD = "SELECT name FROM items WHERE price > 1.8 AND id < 3"


def test_wrong_values_match_only_with_plug_value(db: Path) -> None:
    pred = "SELECT name FROM items WHERE price > 0 AND id < 9"
    assert run(db, pred, GOLD).status == "mismatch"
    verdict = run(db, pred, GOLD, plug_value=True)
    assert (verdict.score, verdict.status) == (1, "match")
    assert verdict.message.endswith("select name from items where price > 1.8 and id < 3")


def test_the_prediction_itself_is_tried_first(db: Path) -> None:
    verdict = run(db, "SELECT name FROM items WHERE id = 2", GOLD, plug_value=True)
    assert (verdict.score, verdict.message) == (1, None)  # no plugging needed


def test_no_plugged_prediction_matches(db: Path) -> None:
    verdict = run(db, "SELECT id FROM items WHERE price > 0", GOLD, plug_value=True)
    assert verdict.status == "mismatch" and "none of the 2 predictions" in verdict.message


def test_limit_reached_without_a_match_is_reported(db: Path) -> None:
    pred = "SELECT id FROM items WHERE price > 0 AND id < 9 AND id > 0"
    verdict = run(db, pred, GOLD, plug_value=True, plug_value_limit=3)
    assert (verdict.score, verdict.status) == (0, "plug_value_limit")
    assert "first 3 of 8" in verdict.message
    # a match within the limit is still found: the most plausible candidates come first
    pred = "SELECT name FROM items WHERE price > 0 AND id < 9"
    assert run(db, pred, GOLD, plug_value=True, plug_value_limit=1).score == 1


def test_prediction_without_statement_keeps_its_own_verdict(db: Path) -> None:
    # the official run crashes here (IndexError); the unplugged verdict stands
    verdict = run(db, ";", "SELECT name FROM items WHERE id > 5", plug_value=True)
    assert verdict.score == 1  # an empty result against the gold's empty result, as without plug_value


def test_value_placeholders_through_score_turn(db: Path) -> None:
    pred = "SELECT name FROM items WHERE price > value AND value > id"  # ` value ` becomes ` 1 `, then a slot
    assert score_turn(pred, GOLD, db, {}, etype="exec").exec == 0
    assert score_turn(pred, GOLD, db, {}, etype="exec", plug_value=True).exec == 1


@pytest.mark.parametrize("flag", ["--plug_value", "--plug-value"])
def test_cli_flag_and_json_settings(tmp_path: Path, flag: str) -> None:
    example = load_example("festival", root=tmp_path / "examples")
    summary = tmp_path / "summary.json"
    args = ["evaluate", "--example", "festival", "--db", str(example.db_dir), "--workers", "1", "--etype", "exec"]
    result = CliRunner().invoke(app, [*args, flag, "--json", str(summary)])
    assert result.exit_code == 0, result.output
    data = json.loads(summary.read_text())
    assert data["settings"] == {"keep_distinct": False, "plug_value": True, "timeout": 60.0, "isolate": True}
    assert data["question_match"]["exec"] > 75 / 107  # the example's execution accuracy without plug_value
