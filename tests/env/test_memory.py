from __future__ import annotations

from pathlib import Path

import pytest

from mtsql.env import DialogueMemory, describe_sql, render_components, result_preview, result_text
from mtsql.sql.executor import ExecResult


def db_path(db_dir: Path) -> str:
    return str(db_dir / "concert" / "concert.sqlite")


# --- clause rendering -------------------------------------------------------------------------------------


def test_render_components_of_an_official_structure() -> None:
    # SELECT T1.name, count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id
    # WHERE T2.year BETWEEN 2014 AND 2015 AND T1.country != "France" GROUP BY T1.name HAVING count(*) > 1
    # ORDER BY count(*) DESC LIMIT 1
    sql = {
        "select": (False, [(0, (0, (0, "__singer.name__", False), None)), (3, (0, (0, "__all__", False), None))]),
        "from": {
            "table_units": [("table_unit", "__singer__"), ("table_unit", "__concert__")],
            "conds": [
                (False, 2, (0, (0, "__singer.singer_id__", False), None), (0, "__concert.singer_id__", False), None)
            ],
        },
        "where": [
            (False, 1, (0, (0, "__concert.year__", False), None), 2014.0, 2015.0),
            "and",
            (False, 7, (0, (0, "__singer.country__", False), None), '"France"', None),
        ],
        "groupBy": [(0, "__singer.name__", False)],
        "having": [(False, 3, (0, (3, "__all__", False), None), 1.0, None)],
        "orderBy": ("desc", [(0, (3, "__all__", False), None)]),
        "limit": 1,
        "intersect": None,
        "union": None,
        "except": None,
    }  # fmt: skip
    assert render_components(sql) == (
        "tables: singer, concert | joins: singer.singer_id = concert.singer_id | select: singer.name, count(*) | "
        'where: concert.year between 2014 and 2015 and singer.country != "France" | group by: singer.name | '
        "having: count(*) > 1 | order by: count(*) desc | limit: 1"
    )
    assert render_components(sql, limit="3").endswith("| limit: 3")


def test_render_components_nested_queries_and_lists() -> None:
    inner = {
        "select": [False, [[4, [0, [0, "__singer.age__", False], None]]]],
        "from": {"table_units": [["table_unit", "__singer__"]], "conds": []},
        "where": [], "groupBy": [], "having": [], "orderBy": [], "limit": None,
        "intersect": None, "union": None, "except": None,
    }  # fmt: skip
    outer = {
        "select": [True, [[0, [2, [0, "__singer.age__", False], [0, "__singer.singer_id__", True]]]]],
        "from": {"table_units": [["sql", inner]], "conds": []},
        "where": [[True, 8, [0, [0, "__singer.age__", False], None], inner, None], "or",
                  [False, 9, [0, [0, "__singer.name__", False], None], '"%a%"', None]],
        "groupBy": [], "having": [], "orderBy": [], "limit": None,
        "intersect": None, "union": None, "except": inner,
    }  # fmt: skip
    sub = "(tables: singer | select: sum(singer.age))"
    assert render_components(outer) == (
        f"tables: {sub} | select: distinct singer.age + distinct singer.singer_id | "
        f'where: singer.age not in {sub} or singer.name like "%a%" | except: {{{sub[1:-1]}}}'
    )


def test_describe_sql_with_the_spider_parser(db_dir: Path) -> None:
    path = db_path(db_dir)
    assert describe_sql(path, 'SELECT name FROM singer WHERE country  =  "France"') == (
        'tables: singer | select: singer.name | where: singer.country = "France"'
    )
    # the official parser reads every LIMIT as 1; the text's top-level limit is shown instead
    described = describe_sql(path, "SELECT name FROM singer WHERE age > (SELECT min(age) FROM singer LIMIT 1) LIMIT 3")
    assert described.endswith("| limit: 3")
    assert "limit: 1" in described  # the nested one, as parsed
    assert describe_sql(path, "SELECT name FROM singer ORDER BY age DESC limit 2").endswith(
        "order by: singer.age desc | limit: 2"
    )


@pytest.mark.parametrize(
    "sql", ["SELECT nme FROM singer", "SELECT name FROM singer LEFT JOIN concert", "DROP TABLE singer", "", "'"]
)
def test_unparsable_sql_is_described_not_raised(db_dir: Path, sql: str) -> None:
    assert describe_sql(db_path(db_dir), sql).startswith("(not parsable: ")


def test_describe_sql_on_a_missing_database(tmp_path: Path) -> None:
    assert describe_sql(str(tmp_path / "absent.sqlite"), "SELECT 1").startswith("(not parsable: ")


# --- result text ------------------------------------------------------------------------------------------


def test_result_text_and_preview() -> None:
    rows = [(i, f"name {i}") for i in range(100)]
    many = ExecResult(ok=True, columns=["id", "name"], rows=rows, truncated=True)
    text = result_text(many, 200)
    assert text.startswith("100+ rows (columns: id, name): [(0, 'name 0'), (1, 'name 1')")
    assert text.endswith("...") and len(text.split("): ", 1)[1]) == 203
    assert result_preview(many, 50) == "[(0, 'name 0'), (1, 'name 1'), (2, 'name 2'), (3, "[:50] + "..."
    one = ExecResult(ok=True, columns=["n"], rows=[(2,)])
    assert result_text(one, 200) == "1 row (columns: n): [(2,)]"
    assert result_preview(one, 50) == "[(2,)]"
    empty = ExecResult(ok=True, columns=["name"], rows=[])
    assert result_text(empty, 200) == "0 rows (columns: name)"
    assert result_preview(empty, 50) == "no rows"
    error = ExecResult(ok=False, error="no such column: nme", error_kind="sql")
    assert result_text(error, 200) == "error: no such column: nme"
    assert result_preview(error, 10) == "error: no ..."


# --- the memory -------------------------------------------------------------------------------------------


def test_memory_is_lazy_and_keeps_order() -> None:
    described: list[str] = []
    executed: list[str] = []

    def describe(sql: str) -> str:
        described.append(sql)
        return f"parsed {sql}"

    def run(sql: str) -> ExecResult:
        executed.append(sql)
        return ExecResult(ok=True, columns=["x"], rows=[(len(sql),)])

    memory = DialogueMemory("predicted", describe=describe, run=run, preview_chars=50)
    memory.add("first?", "SELECT 1", ExecResult(ok=True, columns=["1"], rows=[(1,)]))
    memory.add("second?", "SELECT 22")
    memory.add("third?", "")
    assert len(memory) == 3 and described == [] and executed == []
    entries = memory.entries()
    assert [(e.index, e.question, e.sql, e.parsed, e.preview) for e in entries] == [
        (0, "first?", "SELECT 1", "parsed SELECT 1", "[(1,)]"),
        (1, "second?", "SELECT 22", "parsed SELECT 22", "[(9,)]"),
        (2, "third?", "(no SQL)", "(no SQL)", "(no SQL)"),
    ]
    assert executed == ["SELECT 22"]  # only the turn without a result is executed, once
    memory.entries()
    assert described == ["SELECT 1", "SELECT 22"] and executed == ["SELECT 22"]


def test_memory_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="predicted, oracle"):
        DialogueMemory("gold", describe=str, run=lambda sql: ExecResult(ok=True))  # type: ignore[arg-type]
