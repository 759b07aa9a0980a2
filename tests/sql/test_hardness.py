"""Hardness must be the official ``eval_hardness`` level, quirks included (checked against the official code)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mtsql.sql.hardness import count_component1, count_component2, count_others, hardness
from mtsql.sql.parse import Schema, parse_sql

SCHEMA = Schema(
    {
        "singer": ["singer_id", "name", "country", "age", "is_male"],
        "concert": ["concert_id", "concert_name", "stadium_id", "year"],
        "singer_in_concert": ["concert_id", "singer_id"],
        "stadium": ["stadium_id", "name", "capacity"],
    }
)

LEVELS = [
    ("SELECT name FROM singer", "easy"),
    ("SELECT count(*) FROM singer WHERE age > 20", "easy"),
    ("SELECT name FROM singer ORDER BY age", "easy"),
    # two select columns: one "other" component
    ("SELECT name , age FROM singer", "medium"),
    ("SELECT name FROM singer WHERE age > 20 ORDER BY age", "medium"),
    ("SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id", "easy"),
    ("SELECT name FROM singer WHERE name LIKE '%a%'", "medium"),
    ("SELECT name FROM singer WHERE age > 20 OR country = 'x'", "medium"),
    ("SELECT country , count(*) FROM singer GROUP BY country HAVING count(*) > 2", "medium"),
    ("SELECT name FROM singer WHERE age > 20 ORDER BY age DESC LIMIT 1", "hard"),
    ("SELECT name FROM singer INTERSECT SELECT name FROM stadium", "hard"),
    ("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)", "hard"),
    ("SELECT name , max(age) , min(age) FROM singer WHERE age > 1 AND age < 9 GROUP BY name , country", "hard"),
    ("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer) ORDER BY age", "extra"),
    ("SELECT name FROM singer EXCEPT SELECT name FROM singer WHERE age > 20", "hard"),
    (
        "SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id "
        "JOIN concert AS T3 ON T2.concert_id = T3.concert_id WHERE T3.year = 2014 ORDER BY T1.age LIMIT 1",
        "extra",
    ),
]


@pytest.mark.parametrize(("sql", "level"), LEVELS)
def test_official_levels(sql: str, level: str) -> None:
    """Hand-built queries of each level get the official level."""
    assert hardness(parse_sql(sql, SCHEMA)) == level


def test_not_conditions_count_as_aggregations() -> None:
    """Official quirk: in WHERE the NOT flag is read as an aggregation, so two NOTs make "others" count."""
    plain = parse_sql("SELECT name FROM singer WHERE age IN (1) AND name IN (1)", SCHEMA)
    negated = parse_sql("SELECT name FROM singer WHERE age NOT LIKE 'a' AND name NOT LIKE 'b'", SCHEMA)
    assert count_others(plain) == 1  # more than one WHERE condition
    assert count_others(negated) == 2  # ... and two "aggregations"


def test_having_connectors_count_as_aggregations() -> None:
    """Official quirk: every AND/OR of HAVING counts as an aggregation (a string is never the id 0)."""
    one = parse_sql("SELECT count(*) FROM singer GROUP BY country HAVING age > 1", SCHEMA)
    two = parse_sql("SELECT count(*) FROM singer GROUP BY country HAVING age > 1 AND age < 5", SCHEMA)
    assert (count_others(one), hardness(one)) == (0, "easy")
    assert (count_others(two), hardness(two)) == (1, "medium")


def test_component_counts() -> None:
    """component1 counts clauses, extra tables, ORs and LIKEs; component2 counts nested queries."""
    sql = parse_sql(
        "SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id "
        "WHERE T1.name LIKE 'a' OR T1.age > (SELECT avg(age) FROM singer) GROUP BY T1.name ORDER BY T1.age LIMIT 1 "
        "UNION SELECT name FROM stadium",
        SCHEMA,
    )
    # where, group, order, limit, one extra table, one OR, one LIKE
    assert count_component1(sql) == 7
    # the WHERE subquery and the UNION part
    assert count_component2(sql) == 2
    assert hardness(sql) == "extra"


# Official hardness of every gold with a database (test-suite-sql-eval, computed on the same files).
OFFICIAL_DEV_LEVELS = {
    "sparc": {"easy": 463, "medium": 416, "hard": 132, "extra": 133},
    "cosql": {"easy": 385, "medium": 299, "hard": 158, "extra": 106},
    "spider": {"easy": 234, "medium": 410, "hard": 160, "extra": 168},
}


@pytest.mark.parametrize("dataset", ["sparc", "cosql", "spider"])
def test_dev_level_counts(data_dir: Path, dataset: str) -> None:
    """The level counts of a whole dev set equal the official ones."""
    if dataset == "spider":
        queries = [(e["db_id"], e["query"]) for e in json.loads((data_dir / "spider" / "dev.json").read_text())]
    else:
        queries = [
            (i["database_id"], t["query"])
            for i in json.loads((data_dir / dataset / "dev.json").read_text())
            for t in i["interaction"]
        ]
    counts: Counter[str] = Counter()
    for db_id, sql in queries:
        path = data_dir / "database" / db_id / f"{db_id}.sqlite"
        if path.is_file():
            counts[hardness(parse_sql(sql, Schema.from_sqlite(path)))] += 1
    assert counts == OFFICIAL_DEV_LEVELS[dataset]
