"""The official Spider hardness levels (``Evaluator.eval_hardness`` of test-suite-sql-eval).

Hardness is computed on the gold query as parsed, before the exact-match normalisation. Three counts decide
it; their official quirks are kept because they change levels:

- ``count_others`` counts "aggregations" with a test meant for column units, so in WHERE it counts the
  conditions carrying NOT (their first field is the NOT flag), and in HAVING it counts the NOT conditions
  *and every AND/OR connector* (a string's first character is never the "no aggregate" id 0);
- ``count_component1`` counts the OR connectors and LIKE conditions of FROM, WHERE and HAVING, one per
  extra table of FROM, and WHERE, GROUP BY, ORDER BY and LIMIT, but never HAVING itself;
- ``count_component2`` counts the subqueries used as condition values (FROM/WHERE/HAVING) and the
  INTERSECT/UNION/EXCEPT parts.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from mtsql.sql.grammar import WHERE_OPS

__all__ = [
    "HARDNESS_LEVELS",
    "Hardness",
    "count_component1",
    "count_component2",
    "count_others",
    "hardness",
    "nested_queries",
]


class Hardness(StrEnum):
    """The official levels, easiest first (members are their strings: ``Hardness.EASY == "easy"``)."""

    EASY = "easy"
    MEDIUM = "medium"
    HARD = "hard"
    EXTRA = "extra"


#: The levels as plain strings, easiest first: the one list every report, config check and curriculum uses.
HARDNESS_LEVELS: tuple[str, ...] = tuple(level.value for level in Hardness)
_LIKE = WHERE_OPS.index("like")


def _conditions(sql: dict[str, Any]) -> list[Any]:
    return sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]


def _connectors(sql: dict[str, Any]) -> list[Any]:
    return sql["from"]["conds"][1::2] + sql["where"][1::2] + sql["having"][1::2]


def _count_aggregated(units: list[Any]) -> int:
    """Units whose first field differs from 0 (the official ``has_agg`` applied to any sequence)."""
    return sum(1 for unit in units if unit[0] != 0)


def nested_queries(sql: dict[str, Any]) -> list[dict[str, Any]]:
    """Subqueries used as condition values, then the INTERSECT, EXCEPT and UNION parts (official order)."""
    nested = []
    for cond_unit in _conditions(sql):
        if type(cond_unit[3]) is dict:
            nested.append(cond_unit[3])
        if type(cond_unit[4]) is dict:
            nested.append(cond_unit[4])
    nested.extend(sql[op] for op in ("intersect", "except", "union") if sql[op] is not None)
    return nested


def count_component1(sql: dict[str, Any]) -> int:
    """WHERE, GROUP BY, ORDER BY, LIMIT, extra FROM tables, OR connectors and LIKE conditions."""
    count = sum(1 for clause in ("where", "groupBy", "orderBy") if len(sql[clause]) > 0)
    count += sql["limit"] is not None
    if len(sql["from"]["table_units"]) > 0:
        count += len(sql["from"]["table_units"]) - 1
    count += sum(1 for connector in _connectors(sql) if connector == "or")
    count += sum(1 for cond_unit in _conditions(sql) if cond_unit[1] == _LIKE)
    return count


def count_component2(sql: dict[str, Any]) -> int:
    """Nested queries: condition subqueries plus INTERSECT/UNION/EXCEPT."""
    return len(nested_queries(sql))


def count_others(sql: dict[str, Any]) -> int:
    """More than one aggregation (official counting), select column, WHERE condition or GROUP BY column."""
    aggregations = _count_aggregated(sql["select"][1])
    aggregations += _count_aggregated(sql["where"][::2])
    aggregations += _count_aggregated(sql["groupBy"])
    if len(sql["orderBy"]) > 0:
        val_units = sql["orderBy"][1]
        aggregations += _count_aggregated(
            [unit[1] for unit in val_units if unit[1]] + [unit[2] for unit in val_units if unit[2]]
        )
    aggregations += _count_aggregated(sql["having"])
    count = int(aggregations > 1)
    count += len(sql["select"][1]) > 1
    count += len(sql["where"]) > 1
    count += len(sql["groupBy"]) > 1
    return count


def hardness(sql: dict[str, Any]) -> Hardness:
    """The official level of a parsed (not normalised) query: easy, medium, hard or extra."""
    component1 = count_component1(sql)
    component2 = count_component2(sql)
    others = count_others(sql)
    if component1 <= 1 and others == 0 and component2 == 0:
        return Hardness.EASY
    if (others <= 2 and component1 <= 1 and component2 == 0) or (component1 <= 2 and others < 2 and component2 == 0):
        return Hardness.MEDIUM
    if (
        (others > 2 and component1 <= 2 and component2 == 0)
        or (2 < component1 <= 3 and others <= 2 and component2 == 0)
        or (component1 <= 1 and others == 0 and component2 <= 1)
    ):
        return Hardness.HARD
    return Hardness.EXTRA
