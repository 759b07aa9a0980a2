"""The official exact set match and partial (per-clause) scores (test-suite-sql-eval ``evaluation.py``).

Both queries are first normalised with :func:`normalize_for_match` (the official ``build_valid_col_units`` +
``rebuild_sql_val`` + ``rebuild_sql_col``), then compared with :func:`exact_match_with_partials` (the official
``Evaluator.eval_exact_match``). This module never mutates its inputs; the official mutates the gold's
SELECT list while matching, which never changes a verdict because its driver never compares an object
with itself (here, comparing a query with itself behaves as comparing two separately parsed copies).

Official behaviour reproduced on purpose (it changes verdicts):

- every literal value is dropped, so are column-valued values: the right side of ``T1.a = T2.b`` (in ON
  and WHERE) is ignored;
- DISTINCT is dropped, in SELECT and in column units, but only in the top query and its
  INTERSECT/UNION/EXCEPT parts;
- a foreign-key column is replaced by the smallest column id of its foreign-key group (``kmap``) only if it
  belongs to a table of the *top* query's FROM; the INTERSECT/UNION/EXCEPT parts use the top query's tables;
- subqueries used as condition values lose their values but keep DISTINCT and their own column ids, and
  they are compared whole, as part of their condition; subqueries in FROM are compared whole, values
  included;
- LIMIT values are ignored (any LIMIT parses to 1): ORDER BY matches only if both or neither have a LIMIT;
- ``group(no Having)`` compares GROUP BY columns by column name only (``__t1.id__`` matches ``__t2.id__``),
  while ``group`` compares the full ids, in order, and HAVING;
- the ``and/or`` component returns ``label_total``/``pred_total`` swapped when the connector sets differ;
- exact match also requires the sorted FROM table units to be equal, when the gold has any; sorting two
  different FROM subqueries raises in the official (a ``TypeError`` that aborts its whole run): here it
  raises :class:`UncomparableTablesError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from mtsql.errors import MtsqlError
from mtsql.sql.grammar import WHERE_OPS
from mtsql.sql.parse import Schema

__all__ = [
    "PARTIAL_TYPES",
    "PartialScore",
    "UncomparableTablesError",
    "build_foreign_key_map",
    "build_foreign_key_maps",
    "clause_f1",
    "exact_match",
    "exact_match_with_partials",
    "load_foreign_key_maps",
    "normalize_for_match",
    "partial_scores",
    "valid_column_ids",
]

PARTIAL_TYPES = (
    "select",
    "select(no AGG)",
    "where",
    "where(no OP)",
    "group(no Having)",
    "group",
    "order",
    "and/or",
    "IUEN",
    "keywords",
)
_IN = WHERE_OPS.index("in")
_LIKE = WHERE_OPS.index("like")

SQLDict = dict[str, Any]


class PartialScore(TypedDict):
    """One component's official score: all-or-nothing ``acc``/``rec``/``f1`` and the unit counts."""

    acc: int
    rec: int
    f1: int
    label_total: int
    pred_total: int


class UncomparableTablesError(MtsqlError, TypeError):
    """The official evaluator crashes on this pair: it sorts FROM units holding two different subqueries."""


# ------------------------------------------------------------------------------------------- foreign keys


def build_foreign_key_map(entry: Mapping[str, Any]) -> dict[str, str]:
    """``column id -> representative column id`` of one ``tables.json`` entry (official semantics).

    Foreign-key pairs are grouped as the official does: a pair joins the *first* group holding either of its
    columns (groups are never merged), and a column in several groups takes the last group's representative,
    the smallest column index of that group.
    """
    table_names = entry["table_names_original"]
    column_ids = [
        f"__{table_names[table].lower()}.{column.lower()}__" if table >= 0 else "__all__"
        for table, column in entry["column_names_original"]
    ]
    groups: list[set[int]] = []
    for first, second in entry["foreign_keys"]:
        group = next((group for group in groups if first in group or second in group), None)
        if group is None:
            group = set()
            groups.append(group)
        group.update((first, second))
    mapping: dict[str, str] = {}
    for group in groups:
        representative = column_ids[min(group)]
        for index in sorted(group):
            mapping[column_ids[index]] = representative
    return mapping


def build_foreign_key_maps(tables: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """``db_id -> foreign-key map`` of every ``tables.json`` entry (``build_foreign_key_map_from_json``)."""
    return {entry["db_id"]: build_foreign_key_map(entry) for entry in tables}


# ------------------------------------------------------------------------------------------ normalisation


def load_foreign_key_maps(tables: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """``db_id -> foreign-key map`` of a ``tables.json`` file (what ``mtsql evaluate --table`` uses)."""
    from mtsql.data.loaders import DatasetFormatError
    from mtsql.data.schema import read_tables_json

    maps = {}
    for index, (db_id, entry) in enumerate(read_tables_json(tables).items()):
        try:
            maps[db_id] = build_foreign_key_map(entry)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
            detail = f"missing key {err}" if isinstance(err, KeyError) else f"{type(err).__name__}: {err}"
            raise DatasetFormatError(tables, f"{db_id}: malformed entry ({detail})", index) from None
    return maps


def valid_column_ids(table_units: list[Any], schema: Schema) -> frozenset[str]:
    """Column ids of the tables named in FROM (official ``build_valid_col_units``), where kmap may apply."""
    prefixes = {unit[1][:-2] for unit in table_units if unit[0] == "table_unit"}
    valid: set[str] = set()
    for prefix in prefixes:
        valid.update(schema.columns_matching_prefix(prefix))
    return frozenset(valid)


def normalize_for_match(sql: SQLDict, schema: Schema, kmap: Mapping[str, str]) -> SQLDict:
    """A new structure equal to what the official compares: values dropped, DISTINCT dropped, FKs mapped.

    ``kmap`` (one database's :func:`build_foreign_key_map`) must not change once used: its per-schema
    index is cached.
    """
    # kmap applies to a column only if it is one of valid_column_ids(): only kmap's keys are looked at.
    by_prefix = _kmap_by_table_prefix(schema, kmap)
    replacements: dict[str, str] = {}
    for prefix in {unit[1][:-2] for unit in sql["from"]["table_units"] if unit[0] == "table_unit"}:
        replacements.update(by_prefix.get(prefix, ()))
    return _Normalizer(replacements).query(sql)


# (id(schema), id(kmap)) -> (schema, kmap, index); the objects are kept to make the ids unambiguous.
_KMAP_INDEXES: dict[tuple[int, int], tuple[Schema, Mapping[str, str], dict[str, dict[str, str]]]] = {}


def _kmap_by_table_prefix(schema: Schema, kmap: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """kmap entries for the schema's column ids, grouped by table prefix (``__t``); cached per pair."""
    key = (id(schema), id(kmap))
    cached = _KMAP_INDEXES.get(key)
    if cached is not None and cached[0] is schema and cached[1] is kmap:
        return cached[2]
    index: dict[str, dict[str, str]] = {}
    for column, target in kmap.items():
        if "." in column and schema.has_column_id(column):
            index.setdefault(column[: column.index(".")], {})[column] = target
    if len(_KMAP_INDEXES) >= 4096:
        _KMAP_INDEXES.clear()
    _KMAP_INDEXES[key] = (schema, kmap, index)
    return index


class _Normalizer:
    __slots__ = ("replacements",)

    def __init__(self, replacements: dict[str, str]) -> None:
        self.replacements = replacements

    def col_unit(self, col_unit: Any) -> Any:
        if col_unit is None:
            return None
        column = col_unit[1]
        return (col_unit[0], self.replacements.get(column, column), None)

    def val_unit(self, val_unit: Any) -> Any:
        if val_unit is None:
            return None
        operator, left, right = val_unit
        return (operator, self.col_unit(left), self.col_unit(right))

    def condition(self, condition: list[Any]) -> list[Any]:
        return [
            (item[0], item[1], self.val_unit(item[2]), _without_value(item[3]), _without_value(item[4]))
            if position % 2 == 0
            else item
            for position, item in enumerate(condition)
        ]

    def query(self, sql: SQLDict) -> SQLDict:
        order_by = sql["orderBy"]
        if len(order_by) > 0:
            order_by = (order_by[0], [self.val_unit(unit) for unit in order_by[1]])
        return {
            "select": (None, [(aggregate, self.val_unit(unit)) for aggregate, unit in sql["select"][1]]),
            "from": {
                "table_units": list(sql["from"]["table_units"]),
                "conds": self.condition(sql["from"]["conds"]),
            },
            "where": self.condition(sql["where"]),
            "groupBy": [self.col_unit(unit) for unit in sql["groupBy"]],
            "orderBy": order_by,
            "having": self.condition(sql["having"]),
            "limit": sql["limit"],
            "intersect": None if sql["intersect"] is None else self.query(sql["intersect"]),
            "except": None if sql["except"] is None else self.query(sql["except"]),
            "union": None if sql["union"] is None else self.query(sql["union"]),
        }


def _without_value(value: Any) -> Any:
    """A condition value after the official value removal: only subqueries survive, without their values."""
    return _without_values(value) if type(value) is dict else None


def _without_values(sql: SQLDict) -> SQLDict:
    """A subquery with the values of its conditions (and of its set-operation parts) removed."""
    stripped = dict(sql)
    stripped["from"] = {**sql["from"], "conds": _conditions_without_values(sql["from"]["conds"])}
    stripped["having"] = _conditions_without_values(sql["having"])
    stripped["where"] = _conditions_without_values(sql["where"])
    for operator in ("intersect", "except", "union"):
        if sql[operator] is not None:
            stripped[operator] = _without_values(sql[operator])
    return stripped


def _conditions_without_values(condition: list[Any]) -> list[Any]:
    return [
        (item[0], item[1], item[2], _without_value(item[3]), _without_value(item[4])) if position % 2 == 0 else item
        for position, item in enumerate(condition)
    ]


# ------------------------------------------------------------------------------------------------ matching


def exact_match(pred: SQLDict, gold: SQLDict) -> int:
    """The official exact set match (1 or 0) of two normalised queries."""
    return exact_match_with_partials(pred, gold)[0]


def exact_match_with_partials(pred: SQLDict, gold: SQLDict) -> tuple[int, dict[str, PartialScore]]:
    """The official exact set match of two normalised queries and the partial scores it is based on."""
    partials = partial_scores(pred, gold)
    for score in partials.values():
        if score["f1"] != 1:
            return 0, partials
    gold_tables = gold["from"]["table_units"]
    if len(gold_tables) > 0:
        try:
            same = sorted(gold_tables) == sorted(pred["from"]["table_units"])
        except TypeError as err:
            raise UncomparableTablesError("FROM holds two different subqueries (the official crashes)") from err
        return int(same), partials
    return 1, partials


def partial_scores(pred: SQLDict, gold: SQLDict) -> dict[str, PartialScore]:
    """The official partial scores (``eval_partial_match``) of two normalised queries, in official order."""
    scores: dict[str, PartialScore] = {}
    for name, (label_total, pred_total, matched) in _component_counts(pred, gold, official=True).items():
        score = 1 if pred_total == label_total and matched == pred_total else 0
        scores[name] = {
            "acc": score,
            "rec": score,
            "f1": score,
            "label_total": label_total,
            "pred_total": pred_total,
        }
    return scores


def clause_f1(pred: SQLDict, gold: SQLDict) -> float:
    """A dense similarity in [0, 1]: the mean F1 of the Spider components present in either query.

    Each of the ten official components contributes ``2 * matched / (pred_units + gold_units)`` from the
    official unit matching (and the connector sets for ``and/or``), instead of the official all-or-nothing
    score; components absent from both queries are left out of the mean (1.0 when none is present). Takes
    normalised queries, like :func:`exact_match`.
    """
    f1s = [
        2.0 * matched / (pred_total + label_total)
        for label_total, pred_total, matched in _component_counts(pred, gold, official=False).values()
        if pred_total + label_total > 0
    ]
    return sum(f1s) / len(f1s) if f1s else 1.0


def _component_counts(pred: SQLDict, gold: SQLDict, *, official: bool) -> dict[str, tuple[int, int, int]]:
    """``component -> (label_total, pred_total, matched)``, in official order.

    ``official=False`` gives the true connector-set overlap for ``and/or`` and never raises for IUEN.
    """
    select = _select_counts(pred, gold)
    where = _where_counts(pred, gold)
    return {
        "select": select[:3],
        "select(no AGG)": (select[0], select[1], select[3]),
        "where": where[:3],
        "where(no OP)": (where[0], where[1], where[3]),
        "group(no Having)": _group_counts(pred, gold),
        "group": _group_having_counts(pred, gold),
        "order": _order_counts(pred, gold),
        "and/or": _and_or_counts(pred, gold, official=official),
        "IUEN": _set_operation_counts(pred, gold, official=official),
        "keywords": _keyword_counts(pred, gold),
    }


def _select_counts(pred: SQLDict, gold: SQLDict) -> tuple[int, int, int, int]:
    """Multiset matching of (aggregate, val_unit) items, and of val_units alone."""
    pred_items = pred["select"][1]
    gold_items = list(gold["select"][1])
    gold_units = [item[1] for item in gold_items]
    label_total, pred_total = len(gold_items), len(pred_items)
    matched = matched_without_aggregate = 0
    for item in pred_items:
        if item in gold_items:
            matched += 1
            gold_items.remove(item)
        if item[1] in gold_units:
            matched_without_aggregate += 1
            gold_units.remove(item[1])
    return label_total, pred_total, matched, matched_without_aggregate


def _where_counts(pred: SQLDict, gold: SQLDict) -> tuple[int, int, int, int]:
    """Multiset matching of WHERE condition units, and of their val_units alone."""
    pred_units = pred["where"][::2]
    gold_units = gold["where"][::2]
    gold_val_units = [unit[2] for unit in gold_units]
    label_total, pred_total = len(gold_units), len(pred_units)
    matched = matched_without_operator = 0
    for unit in pred_units:
        if unit in gold_units:
            matched += 1
            gold_units.remove(unit)
        if unit[2] in gold_val_units:
            matched_without_operator += 1
            gold_val_units.remove(unit[2])
    return label_total, pred_total, matched, matched_without_operator


def _column_name(column_id: str) -> str:
    return column_id.split(".")[1] if "." in column_id else column_id


def _group_counts(pred: SQLDict, gold: SQLDict) -> tuple[int, int, int]:
    """GROUP BY columns matched by column name only (the table part is dropped)."""
    pred_columns = [_column_name(unit[1]) for unit in pred["groupBy"]]
    gold_columns = [_column_name(unit[1]) for unit in gold["groupBy"]]
    label_total, pred_total = len(gold_columns), len(pred_columns)
    matched = 0
    for column in pred_columns:
        if column in gold_columns:
            matched += 1
            gold_columns.remove(column)
    return label_total, pred_total, matched


def _group_having_counts(pred: SQLDict, gold: SQLDict) -> tuple[int, int, int]:
    """One unit per query with GROUP BY; matched when the GROUP BY columns (in order) and HAVING are equal."""
    pred_total = int(len(pred["groupBy"]) > 0)
    label_total = int(len(gold["groupBy"]) > 0)
    matched = int(
        pred_total == label_total == 1
        and [unit[1] for unit in pred["groupBy"]] == [unit[1] for unit in gold["groupBy"]]
        and pred["having"] == gold["having"]
    )
    return label_total, pred_total, matched


def _order_counts(pred: SQLDict, gold: SQLDict) -> tuple[int, int, int]:
    """One unit per query with ORDER BY; matched when ORDER BY is equal and both or neither have LIMIT."""
    pred_total = int(len(pred["orderBy"]) > 0)
    label_total = int(len(gold["orderBy"]) > 0)
    matched = int(
        len(gold["orderBy"]) > 0
        and pred["orderBy"] == gold["orderBy"]
        and ((pred["limit"] is None) == (gold["limit"] is None))
    )
    return label_total, pred_total, matched


def _and_or_counts(pred: SQLDict, gold: SQLDict, *, official: bool) -> tuple[int, int, int]:
    """The sets of WHERE connectors: (1, 1, 1) when equal, else the official swapped totals and 0."""
    pred_connectors = set(pred["where"][1::2])
    gold_connectors = set(gold["where"][1::2])
    if not official:
        return len(gold_connectors), len(pred_connectors), len(pred_connectors & gold_connectors)
    if pred_connectors == gold_connectors:
        return 1, 1, 1
    return len(pred_connectors), len(gold_connectors), 0


def _set_operation_counts(pred: SQLDict, gold: SQLDict, *, official: bool) -> tuple[int, int, int]:
    """INTERSECT/EXCEPT/UNION parts present, and those matching exactly (recursively)."""
    label_total = pred_total = matched = 0
    for operator in ("intersect", "except", "union"):
        pred_part, gold_part = pred[operator], gold[operator]
        pred_total += pred_part is not None
        label_total += gold_part is not None
        if pred_part is not None and gold_part is not None:
            try:
                matched += exact_match(pred_part, gold_part)
            except UncomparableTablesError:
                if official:
                    raise
    return label_total, pred_total, matched


def _keywords(sql: SQLDict) -> set[str]:
    keywords = set()
    if sql["where"]:
        keywords.add("where")
    if sql["groupBy"]:
        keywords.add("group")
    if sql["having"]:
        keywords.add("having")
    if len(sql["orderBy"]) > 0:
        keywords.add(sql["orderBy"][0])
        keywords.add("order")
    if sql["limit"] is not None:
        keywords.add("limit")
    for operator in ("except", "union", "intersect"):
        if sql[operator] is not None:
            keywords.add(operator)
    for condition in (sql["from"]["conds"], sql["where"], sql["having"]):
        for position, item in enumerate(condition):
            if position % 2:
                if item == "or":
                    keywords.add("or")
            else:
                if item[0]:
                    keywords.add("not")
                if item[1] == _IN:
                    keywords.add("in")
                elif item[1] == _LIKE:
                    keywords.add("like")
    return keywords


def _keyword_counts(pred: SQLDict, gold: SQLDict) -> tuple[int, int, int]:
    """The sets of SQL keywords used (clauses, asc/desc, or, not, in, like) and their overlap."""
    pred_keywords, gold_keywords = _keywords(pred), _keywords(gold)
    return len(gold_keywords), len(pred_keywords), len(pred_keywords & gold_keywords)
