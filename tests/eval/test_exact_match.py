"""Exact set match and partial scores must be the official ``Evaluator`` verdicts (checked against it)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mtsql.eval.exact_match import (
    PARTIAL_TYPES,
    UncomparableTablesError,
    build_foreign_key_map,
    build_foreign_key_maps,
    clause_f1,
    exact_match,
    exact_match_with_partials,
    normalize_for_match,
    partial_scores,
    valid_column_ids,
)
from mtsql.sql.parse import Schema, SQLParseError, empty_sql, parse_sql

ENTRY: dict[str, Any] = {
    "db_id": "concerts",
    "table_names_original": ["Singer", "Concert", "Singer_in_Concert", "Stadium"],
    "column_names_original": [
        [-1, "*"],
        *([0, c] for c in ("Singer_ID", "Name", "Country", "Age", "Is_Male")),
        *([1, c] for c in ("Concert_ID", "Concert_Name", "Stadium_ID", "Year")),
        *([2, c] for c in ("Concert_ID", "Singer_ID")),
        *([3, c] for c in ("Stadium_ID", "Name", "Capacity")),
    ],
    "foreign_keys": [[10, 6], [11, 1], [8, 12]],
}
SCHEMA = Schema.from_tables_json(ENTRY)
KMAP = build_foreign_key_map(ENTRY)
JOIN = "FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id"


def normalized(sql: str) -> dict[str, Any]:
    """What the official driver compares: the parsed query (or the empty query) after normalisation."""
    try:
        parsed = parse_sql(sql, SCHEMA)
    except SQLParseError:
        parsed = empty_sql()
    return normalize_for_match(parsed, SCHEMA, KMAP)


def test_foreign_key_map() -> None:
    """Each foreign-key group maps to its smallest column id."""
    assert KMAP == {
        "__concert.concert_id__": "__concert.concert_id__",
        "__singer_in_concert.concert_id__": "__concert.concert_id__",
        "__singer.singer_id__": "__singer.singer_id__",
        "__singer_in_concert.singer_id__": "__singer.singer_id__",
        "__concert.stadium_id__": "__concert.stadium_id__",
        "__stadium.stadium_id__": "__concert.stadium_id__",
    }
    assert build_foreign_key_maps([ENTRY]) == {"concerts": KMAP}


def test_foreign_key_groups_are_never_merged() -> None:
    """Official quirk: a pair joins the first group holding either column; a later group can override."""
    entry = {
        "table_names_original": ["A", "B"],
        "column_names_original": [[-1, "*"], [0, "x"], [0, "y"], [1, "x"], [1, "y"]],
        "foreign_keys": [[1, 2], [3, 4], [2, 3]],
    }
    assert build_foreign_key_map(entry) == {
        "__a.x__": "__a.x__",
        "__a.y__": "__a.x__",
        "__b.x__": "__b.x__",
        "__b.y__": "__b.x__",
    }


def test_valid_column_ids_are_the_from_tables_columns() -> None:
    """The columns kmap may rewrite: those of the tables named in FROM."""
    parsed = parse_sql(f"SELECT T1.name {JOIN}", SCHEMA)
    assert valid_column_ids(parsed["from"]["table_units"], SCHEMA) == {
        f"__singer.{c}__" for c in ("singer_id", "name", "country", "age", "is_male")
    } | {"__singer_in_concert.concert_id__", "__singer_in_concert.singer_id__"}


def test_normalisation_drops_values_and_distinct_and_maps_keys() -> None:
    """Values become None (the right side of a join too), DISTINCT None, FK columns their representative."""
    query = normalized(f"SELECT DISTINCT T2.singer_id {JOIN} WHERE T1.age > 20")
    singer_id = (0, "__singer.singer_id__", None)
    assert query["select"] == (None, [(0, (0, singer_id, None))])
    assert query["from"]["conds"] == [(False, 2, (0, singer_id, None), None, None)]
    assert query["where"] == [(False, 3, (0, (0, "__singer.age__", None), None), None, None)]


def test_normalisation_does_not_touch_its_input() -> None:
    """The official rebuilds in place; ours returns a new structure."""
    parsed = parse_sql("SELECT DISTINCT name FROM singer WHERE age IN (SELECT age FROM singer WHERE age > 1)", SCHEMA)
    before = copy.deepcopy(parsed)
    normalize_for_match(parsed, SCHEMA, KMAP)
    assert parsed == before


EXACT_CASES = [
    # what the official ignores
    ("SELECT name FROM singer WHERE age > 30", "SELECT name FROM singer WHERE age > 20", 1),
    ("SELECT DISTINCT name FROM singer", "SELECT name FROM singer", 1),
    ("SELECT count(DISTINCT name) FROM singer", "SELECT count(name) FROM singer", 1),
    (f"SELECT T2.singer_id {JOIN}", f"SELECT T1.singer_id {JOIN}", 1),  # foreign-key columns
    (
        "SELECT name FROM singer WHERE age > 1 AND country = 'x'",
        "SELECT name FROM singer WHERE country = 'y' AND age > 2",
        1,
    ),
    (
        "SELECT A.name FROM singer AS A JOIN singer_in_concert AS B ON A.singer_id = B.singer_id",
        f"SELECT T1.name {JOIN}",
        1,
    ),
    ("SELECT age , name FROM singer", "SELECT name , age FROM singer", 1),
    (
        "SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.concert_id",
        f"SELECT T1.name {JOIN}",
        1,
    ),
    ("SELECT name FROM singer ORDER BY age LIMIT 5", "SELECT name FROM singer ORDER BY age LIMIT 1", 1),
    (f"SELECT T1.name {JOIN} GROUP BY T2.singer_id", f"SELECT T1.name {JOIN} GROUP BY T1.singer_id", 1),
    (
        "SELECT count(*) FROM singer GROUP BY country HAVING count(*) > 1",
        "SELECT count(*) FROM singer GROUP BY country HAVING count(*) > 5",
        1,
    ),
    # values inside a WHERE subquery are dropped too
    (
        "SELECT name FROM singer WHERE age IN (SELECT age FROM singer WHERE age > 5)",
        "SELECT name FROM singer WHERE age IN (SELECT age FROM singer WHERE age > 9)",
        1,
    ),
    # what it does not ignore
    ("SELECT singer_id FROM singer_in_concert", "SELECT singer_id FROM singer", 0),  # FROM tables differ
    ("SELECT T1.name FROM singer AS T1 JOIN concert AS T2", "SELECT name FROM singer", 0),
    ("SELECT name FROM singer ORDER BY age", "SELECT name FROM singer ORDER BY age LIMIT 1", 0),
    ("SELECT name FROM singer ORDER BY age DESC", "SELECT name FROM singer ORDER BY age ASC", 0),
    ("SELECT country FROM singer", "SELECT name FROM singer", 0),
    ("SELECT max(age) FROM singer", "SELECT min(age) FROM singer", 0),
    ("SELECT name FROM singer WHERE age > 1 OR age < 5", "SELECT name FROM singer WHERE age > 1 AND age < 5", 0),
    ("SELECT name FROM singer WHERE age < 1", "SELECT name FROM singer WHERE age > 1", 0),
    ("SELECT name FROM singer WHERE name NOT LIKE 'a'", "SELECT name FROM singer WHERE name LIKE 'a'", 0),
    (
        "SELECT name FROM singer UNION SELECT name FROM stadium",
        "SELECT name FROM singer INTERSECT SELECT name FROM stadium",
        0,
    ),
    ("SELECT name FROM", "SELECT name FROM singer", 0),  # unparsable: the empty query
    # quirks: a WHERE subquery keeps DISTINCT, a FROM subquery keeps its values
    (
        "SELECT name FROM singer WHERE age IN (SELECT DISTINCT age FROM singer)",
        "SELECT name FROM singer WHERE age IN (SELECT age FROM singer)",
        0,
    ),
    ("SELECT * FROM (SELECT * FROM singer WHERE age > 5)", "SELECT * FROM (SELECT * FROM singer WHERE age > 9)", 0),
]


@pytest.mark.parametrize(("pred", "gold", "expected"), EXACT_CASES)
def test_exact_match(pred: str, gold: str, expected: int) -> None:
    """The official verdict on pairs chosen for each thing it ignores or does not ignore."""
    assert exact_match(normalized(pred), normalized(gold)) == expected


def _failing(pred: str, gold: str) -> dict[str, tuple[int, int, int]]:
    """``component -> (f1, label_total, pred_total)`` for the components that do not score 1."""
    scores = partial_scores(normalized(pred), normalized(gold))
    assert list(scores) == list(PARTIAL_TYPES)
    return {name: (s["f1"], s["label_total"], s["pred_total"]) for name, s in scores.items() if s["f1"] != 1}


def test_partial_select_and_order() -> None:
    """select compares (aggregate, val_unit) items, select(no AGG) the val_units; order needs LIMIT both or neither."""
    assert _failing("SELECT max(age) FROM singer", "SELECT min(age) FROM singer") == {"select": (0, 1, 1)}
    assert _failing("SELECT country FROM singer", "SELECT name FROM singer") == {
        "select": (0, 1, 1),
        "select(no AGG)": (0, 1, 1),
    }
    assert _failing("SELECT name FROM singer ORDER BY age", "SELECT name FROM singer ORDER BY age LIMIT 1") == {
        "order": (0, 1, 1),
        "keywords": (0, 3, 2),
    }


def test_partial_where_and_keywords() -> None:
    """where compares condition units, where(no OP) their val_units; NOT and LIKE are keywords."""
    assert _failing("SELECT name FROM singer WHERE age < 1", "SELECT name FROM singer WHERE age > 1") == {
        "where": (0, 1, 1)
    }
    assert _failing(
        "SELECT name FROM singer WHERE name NOT LIKE 'a'", "SELECT name FROM singer WHERE name LIKE 'a'"
    ) == {
        "where": (0, 1, 1),
        "keywords": (0, 2, 3),
    }


def test_partial_group_compares_column_names_only() -> None:
    """group(no Having) drops the table part of GROUP BY columns; group (with HAVING) does not."""
    pred = "SELECT T1.name FROM singer AS T1 JOIN stadium AS T2 GROUP BY T2.name"
    gold = "SELECT T1.name FROM singer AS T1 JOIN stadium AS T2 GROUP BY T1.name"
    assert _failing(pred, gold) == {"group": (0, 1, 1)}
    having = "SELECT count(*) FROM singer GROUP BY country HAVING count(*) {} 1"
    assert _failing(having.format("<"), having.format(">")) == {"group": (0, 1, 1)}


def test_partial_and_or_totals_are_swapped() -> None:
    """Official quirk: when the connector sets differ, and/or reports the prediction's count as label_total."""
    pred = "SELECT name FROM singer WHERE age > 1 AND age < 2 OR age = 3"
    assert _failing(pred, "SELECT name FROM singer WHERE age > 1") == {
        "where": (0, 1, 3),
        "where(no OP)": (0, 1, 3),
        "and/or": (0, 2, 0),
        "keywords": (0, 1, 2),
    }


def test_partial_iuen() -> None:
    """IUEN counts INTERSECT/UNION/EXCEPT parts and matches them exactly, recursively."""
    pred = "SELECT name FROM singer UNION SELECT name FROM stadium"
    gold = "SELECT name FROM singer INTERSECT SELECT name FROM stadium"
    assert _failing(pred, gold) == {"IUEN": (0, 1, 1), "keywords": (0, 1, 1)}
    assert _failing(gold, gold.replace("stadium", "singer")) == {"IUEN": (0, 1, 1)}


def test_empty_prediction_partials() -> None:
    """An unparsable prediction scores 0 on every component the gold has."""
    assert _failing("SELECT name FROM", "SELECT name FROM singer") == {"select": (0, 1, 0), "select(no AGG)": (0, 1, 0)}


def test_partial_score_shape() -> None:
    """Each component has the official keys, with the all-or-nothing acc = rec = f1."""
    exact, scores = exact_match_with_partials(
        normalized("SELECT name FROM singer"), normalized("SELECT name FROM singer")
    )
    assert exact == 1
    assert scores["select"] == {"acc": 1, "rec": 1, "f1": 1, "label_total": 1, "pred_total": 1}
    assert scores["where"] == {"acc": 1, "rec": 1, "f1": 1, "label_total": 0, "pred_total": 0}


def test_two_from_subqueries_crash_like_the_official() -> None:
    """Sorting two different FROM subqueries raises in the official (its run aborts): a dedicated error here."""
    sql = "SELECT * FROM (SELECT * FROM singer WHERE age = 1) (SELECT * FROM singer)"
    with pytest.raises(UncomparableTablesError):
        exact_match(normalized(sql), normalized(sql))
    assert issubclass(UncomparableTablesError, TypeError)


def test_same_object_on_both_sides() -> None:
    """Comparing an object with itself behaves as two separate parses (the official would mutate it)."""
    query = normalized("SELECT name , age , name FROM singer")
    before = copy.deepcopy(query)
    assert exact_match(query, query) == 1
    assert query == before


def test_clause_f1() -> None:
    """A graded similarity: 1 for equal queries, 0 against the empty query, in between otherwise."""
    gold = normalized("SELECT name , age FROM singer WHERE age > 1 ORDER BY age")
    assert clause_f1(gold, gold) == 1.0
    assert clause_f1(normalized("SELECT name FROM"), gold) == 0.0
    partly = clause_f1(normalized("SELECT name , country FROM singer WHERE age > 1"), gold)
    assert 0.0 < partly < 1.0
    assert clause_f1(normalized("SELECT name , country FROM singer WHERE age > 1 ORDER BY age"), gold) > partly


def test_every_dev_gold_matches_itself(data_dir: Path) -> None:
    """Gold against gold (parsed twice, as the official driver does) is an exact match for every gold."""
    kmaps = build_foreign_key_maps(json.loads((data_dir / "spider" / "tables.json").read_text()))
    pairs = [(e["db_id"], e["query"]) for e in json.loads((data_dir / "spider" / "dev.json").read_text())]
    for dataset in ("sparc", "cosql"):
        for interaction in json.loads((data_dir / dataset / "dev.json").read_text()):
            pairs += [(interaction["database_id"], turn["query"]) for turn in interaction["interaction"]]
    checked = 0
    for db_id, sql in pairs:
        path = data_dir / "database" / db_id / f"{db_id}.sqlite"
        if not path.is_file():
            continue
        schema = Schema.from_sqlite(path)
        gold = normalize_for_match(parse_sql(sql, schema), schema, kmaps[db_id])
        pred = normalize_for_match(parse_sql(sql, schema), schema, kmaps[db_id])
        assert exact_match(pred, gold) == 1, sql
        checked += 1
    assert checked == 3064
