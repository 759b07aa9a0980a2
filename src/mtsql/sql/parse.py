"""The Spider-format SQL parser: the official evaluator's nested ``sql`` structure, and its failures.

The official evaluator (``process_sql.get_sql`` of test-suite-sql-eval) is a small recursive-descent parser
that understands only the Spider subset of SQL and fails with whatever exception Python raises on anything
else; a prediction that fails scores as the empty query. :func:`parse_sql` returns the same structure for
every query that parses and raises :class:`SQLParseError` exactly where the official raises anything. Its
quirks are reproduced on purpose, for example:

- ``LIMIT n`` always parses to ``1`` (the official tests the *token* for ``int``), whatever token ``n`` is;
- parsing stops without an error at the first token no clause expects, e.g. after a GROUP BY or ORDER BY
  list, a LIMIT value or a stray ``)``: ``SELECT a FROM t ORDER BY a garbage`` parses, while
  ``SELECT a FROM t garbage`` does not (``garbage`` is read as a table);
- an alias equal to any table name of the schema, ``AS`` as the last token, ``FROM a, b``, ``INNER``/``LEFT``
  joins, column aliases (``count(*) AS n``), ``IS NULL``, ``EXISTS``, ``CASE``, parenthesised or
  aggregated values and arithmetic between aggregates all fail;
- a column-valued condition swallows everything up to the next ``,``/``)``/``AND``/clause keyword, and
  keeps only its first column (``a = b.c OR d = 1`` is one condition);
- the FROM clause is found as the first ``from`` token after the query start, wherever it is;
- a parenthesised aggregate column unit leaves its own ``)`` unconsumed, so ``SELECT ((count(a)))`` fails;
- numbers are whatever Python's ``float`` accepts (``1e3``, ``1_000``, ``nan``, ``inf``).

Structure (identical to the official; tuples and lists as there)::

    col_unit   = (agg_id, col_id, is_distinct)
    val_unit   = (unit_op, col_unit, col_unit | None)
    table_unit = ("table_unit", table_id) | ("sql", sql)
    cond_unit  = (not_op, op_id, val_unit, value, value | None)   value: float | '"string"' | col_unit | sql
    condition  = [cond_unit, "and" | "or", cond_unit, ...]
    sql = {"from": {"table_units": [...], "conds": condition}, "select": (is_distinct, [(agg_id, val_unit)]),
           "where": condition, "groupBy": [col_unit], "having": condition,
           "orderBy": [] | ("asc" | "desc", [val_unit]), "limit": None | 1,
           "intersect": sql | None, "union": sql | None, "except": sql | None}

Column ids are the official strings: ``__all__`` for ``*``, ``__table.column__``, ``__table__``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mtsql.errors import MtsqlError
from mtsql.sql.grammar import AGG_OPS, COND_OPS, ORDER_OPS, SQL_OPS, UNIT_OPS, WHERE_OPS
from mtsql.sql.tokenize import SQLTokenizeError, tokenize

__all__ = [
    "SQLParseError",
    "Schema",
    "empty_sql",
    "parse_sql",
]


_AGG_INDEX = {name: index for index, name in enumerate(AGG_OPS)}
_UNIT_INDEX = {name: index for index, name in enumerate(UNIT_OPS)}
_WHERE_INDEX = {name: index for index, name in enumerate(WHERE_OPS)}
_BETWEEN = _WHERE_INDEX["between"]
_CLAUSE_KEYWORDS = frozenset(("select", "from", "where", "group", "order", "limit", "intersect", "union", "except"))
_JOIN_KEYWORDS = frozenset(("join", "on", "as"))
# Tokens ending a condition, a FROM clause, a column-valued value, and a GROUP BY / ORDER BY list.
_CONDITION_END = _CLAUSE_KEYWORDS | _JOIN_KEYWORDS | {")", ";"}
_CLAUSE_END = _CLAUSE_KEYWORDS | {")", ";"}
_COLUMN_VALUE_END = _CLAUSE_KEYWORDS | _JOIN_KEYWORDS | {",", ")", "and"}

SQLDict = dict[str, Any]


class SQLParseError(MtsqlError, ValueError):
    """The official parser rejects this query (it would raise; the official then scores the empty query)."""


class Schema:
    """A database's lower-cased tables and columns, with the official id map.

    ``tables`` maps each table to its columns, in database order; ``id_map`` maps ``*`` to ``__all__``,
    ``table.column`` to ``__table.column__`` and ``table`` to ``__table__``. Treat both as read-only:
    :meth:`from_sqlite` shares one instance per database file.
    """

    __slots__ = ("_column_ids", "_column_sets", "_columns_by_prefix", "id_map", "table_identity", "tables")

    def __init__(self, tables: Mapping[str, Iterable[str]]) -> None:
        self.tables: dict[str, list[str]] = {table: list(columns) for table, columns in tables.items()}
        id_map = {"*": "__all__"}
        for table, columns in self.tables.items():
            for column in columns:
                id_map[f"{table.lower()}.{column.lower()}"] = f"__{table.lower()}.{column.lower()}__"
        for table in self.tables:
            id_map[table.lower()] = f"__{table.lower()}__"
        self.id_map: dict[str, str] = id_map
        self._column_sets = {table: frozenset(columns) for table, columns in self.tables.items()}
        prefixes: dict[str, list[str]] = {}
        for column_id in id_map.values():
            if "." in column_id:
                prefixes.setdefault(column_id[: column_id.index(".")], []).append(column_id)
        self._columns_by_prefix = prefixes
        self._column_ids = frozenset(id_map.values())
        self.table_identity: Mapping[str, str] = MappingProxyType({table: table for table in self.tables})

    @classmethod
    def from_sqlite(cls, path: str | Path) -> Schema:
        """The schema the official evaluator reads from the live SQLite file (cached per resolved path).

        Tables are the ``sqlite_master`` entries of type ``table`` (``sqlite_sequence`` included) and their
        ``PRAGMA table_info`` columns, lower-cased. The file is opened read-only; a missing file raises
        ``FileNotFoundError`` (the official would silently create an empty database).
        """
        return _schema_for_path(str(path))

    @classmethod
    def from_tables_json(cls, entry: Mapping[str, Any]) -> Schema:
        """The schema of one Spider ``tables.json`` entry (original table and column names, lower-cased)."""
        table_names = [str(name).lower() for name in entry["table_names_original"]]
        tables: dict[str, list[str]] = {name: [] for name in table_names}
        for table_index, column in entry["column_names_original"]:
            if table_index >= 0:
                tables[table_names[table_index]].append(str(column).lower())
        return cls(tables)

    def columns_matching_prefix(self, prefix: str) -> list[str]:
        """Column ids ``__t.c__`` whose text before the first ``.`` is ``prefix`` (official valid columns)."""
        return self._columns_by_prefix.get(prefix, [])

    def has_column_id(self, column_id: str) -> bool:
        """Whether ``column_id`` is one of the official ids of this schema."""
        return column_id in self._column_ids

    def has_column(self, table: str, column: str) -> bool:
        """Whether ``column`` belongs to ``table``; raises ``KeyError`` for an unknown table."""
        return column in self._column_sets[table]

    def __repr__(self) -> str:
        return f"Schema({len(self.tables)} tables)"


@lru_cache(maxsize=1024)
def _schema_for_path(path: str) -> Schema:
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"no SQLite database at {resolved}")
    return _schema_from_sqlite(resolved)


@lru_cache(maxsize=512)
def _schema_from_sqlite(path: Path) -> Schema:
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT name FROM sqlite_master WHERE type='table';")
        table_names = [str(row[0].lower()) for row in cursor.fetchall()]
        tables: dict[str, list[str]] = {}
        for table in table_names:
            cursor.execute(f"PRAGMA table_info('{table}')")
            tables[table] = [str(row[1].lower()) for row in cursor.fetchall()]
    finally:
        connection.close()
    return Schema(tables)


def empty_sql() -> SQLDict:
    """A fresh copy of the official "empty query" that replaces a prediction that does not parse."""
    return {
        "except": None,
        "from": {"conds": [], "table_units": []},
        "groupBy": [],
        "having": [],
        "intersect": None,
        "limit": None,
        "orderBy": [],
        "select": [False, []],
        "union": None,
        "where": [],
    }


def parse_sql(sql: str, schema: Schema) -> SQLDict:
    """The official structure of ``sql`` (``get_sql``), or :class:`SQLParseError` where the official fails."""
    try:
        tokens = tokenize(sql)
    except SQLTokenizeError as err:
        raise SQLParseError(str(err)) from err
    try:
        parser = _Parser(tokens, _table_aliases(tokens, schema), schema)
        return parser.query(0)[1]
    except IndexError as err:  # a read past the last token: the official fails there with IndexError too
        raise SQLParseError("unexpected end of query") from err
    except RecursionError as err:  # the official overflows the stack too, at a similar nesting depth
        raise SQLParseError("query nested too deeply") from err


def _table_aliases(tokens: list[str], schema: Schema) -> Mapping[str, str]:
    """``alias -> what precedes its AS`` over the whole query, then every table mapped to itself.

    As officially, any ``x AS y`` counts (column aliases too), an ``AS`` in first position takes the *last*
    token as its target, and an alias spelled like a table of the schema is an error. Read-only result.
    """
    if "as" not in tokens:
        return schema.table_identity
    aliases: dict[str, str] = {}
    for index, token in enumerate(tokens):
        if token == "as":
            if index + 1 >= len(tokens):
                raise SQLParseError("AS at the end of the query")
            aliases[tokens[index + 1]] = tokens[index - 1]
    for table in schema.tables:
        if table in aliases:
            raise SQLParseError(f"alias {table!r} is also a table name")
    aliases.update(schema.table_identity)
    return aliases


class _Parser:
    """Recursive descent over the token list; each method takes a position and returns the next one.

    Positions only grow from 0, so ``self.tokens[i]`` is the official's unchecked read: past the end it
    raises ``IndexError``, which :func:`parse_sql` reports as :class:`SQLParseError`. Where the official
    checks the position first, so does this parser (``i < self.size and ...``).
    """

    __slots__ = ("aliases", "schema", "size", "tokens")

    def __init__(self, tokens: list[str], aliases: Mapping[str, str], schema: Schema) -> None:
        self.tokens = tokens
        self.size = len(tokens)
        self.aliases = aliases
        self.schema = schema

    def is_at(self, index: int, token: str) -> bool:
        return index < self.size and self.tokens[index] == token

    def expect(self, index: int, token: str) -> int:
        if self.tokens[index] != token:
            raise SQLParseError(f"expected {token!r} at token {index}, found {self.tokens[index]!r}")
        return index + 1

    def resolve(self, name: str) -> str:
        try:
            return self.aliases[name]
        except KeyError:
            raise SQLParseError(f"unknown table or alias {name!r}") from None

    def column_id(self, key: str) -> str:
        try:
            return self.schema.id_map[key]
        except KeyError:
            raise SQLParseError(f"unknown table or column {key!r}") from None

    # -- units
    def column(self, index: int, default_tables: list[str] | None) -> tuple[int, str]:
        token = self.tokens[index]
        if token == "*":
            return index + 1, self.schema.id_map["*"]
        if "." in token:
            parts = token.split(".")
            if len(parts) != 2:
                raise SQLParseError(f"malformed column reference {token!r}")
            return index + 1, self.column_id(f"{self.resolve(parts[0])}.{parts[1]}")
        if not default_tables:
            raise SQLParseError(f"column {token!r} outside any FROM table")
        for name in default_tables:
            table = self.resolve(name)
            try:
                found = self.schema.has_column(table, token)
            except KeyError:
                raise SQLParseError(f"{table!r} is not a table") from None
            if found:
                return index + 1, self.column_id(f"{table}.{token}")
        raise SQLParseError(f"unknown column {token!r}")

    def col_unit(self, index: int, default_tables: list[str] | None) -> tuple[int, tuple[int, str, bool]]:
        tokens = self.tokens
        parenthesised = tokens[index] == "("
        if parenthesised:
            index += 1
        distinct = False
        aggregate = _AGG_INDEX.get(tokens[index])
        if aggregate is not None:
            if not self.is_at(index + 1, "("):
                raise SQLParseError("aggregate without '('")
            index += 2
            if tokens[index] == "distinct":
                index, distinct = index + 1, True
            index, column = self.column(index, default_tables)
            if not self.is_at(index, ")"):
                raise SQLParseError("aggregate without ')'")
            # The official returns here: an outer '(' before the aggregate is left open.
            return index + 1, (aggregate, column, distinct)
        if tokens[index] == "distinct":
            index, distinct = index + 1, True
        index, column = self.column(index, default_tables)
        if parenthesised:
            index = self.expect(index, ")")
        return index, (0, column, distinct)

    def val_unit(self, index: int, default_tables: list[str] | None) -> tuple[int, tuple[Any, ...]]:
        tokens = self.tokens
        parenthesised = tokens[index] == "("
        if parenthesised:
            index += 1
        index, left = self.col_unit(index, default_tables)
        operator, right = 0, None
        if index < self.size and tokens[index] in _UNIT_INDEX:
            operator = _UNIT_INDEX[tokens[index]]
            index, right = self.col_unit(index + 1, default_tables)
        if parenthesised:
            index = self.expect(index, ")")
        return index, (operator, left, right)

    def table_unit(self, index: int) -> tuple[int, str, str]:
        table = self.resolve(self.tokens[index])
        index += 3 if self.is_at(index + 1, "as") else 1
        return index, self.column_id(table), table

    def value(self, start: int, default_tables: list[str]) -> tuple[int, Any]:
        tokens = self.tokens
        index = start
        parenthesised = tokens[index] == "("
        if parenthesised:
            index += 1
        token = tokens[index]
        value: Any
        if token == "select":
            index, value = self.query(index)
        elif '"' in token:
            value, index = token, index + 1
        else:
            try:
                value, index = float(token), index + 1
            except ValueError:
                # A column-valued value: the official parses one column unit from the tokens between the
                # value's *start* (an opening '(' included) and the next stop token, and skips the rest.
                end = index
                while end < self.size and tokens[end] not in _COLUMN_VALUE_END:
                    end += 1
                span = _Parser(tokens[start:end], self.aliases, self.schema)
                value, index = span.col_unit(0, default_tables)[1], end
        if parenthesised:
            index = self.expect(index, ")")
        return index, value

    def condition(self, index: int, default_tables: list[str]) -> tuple[int, list[Any]]:
        tokens, size = self.tokens, self.size
        conditions: list[Any] = []
        while index < size:
            index, val_unit = self.val_unit(index, default_tables)
            negated = tokens[index] == "not"
            if negated:
                index += 1
            if index >= size or tokens[index] not in _WHERE_INDEX:
                raise SQLParseError(f"no comparison operator at token {index}")
            operator = _WHERE_INDEX[tokens[index]]
            index, first = self.value(index + 1, default_tables)
            second = None
            if operator == _BETWEEN:
                index = self.expect(index, "and")
                index, second = self.value(index, default_tables)
            conditions.append((negated, operator, val_unit, first, second))
            if index < size and tokens[index] in _CONDITION_END:
                break
            if index < size and tokens[index] in COND_OPS:
                conditions.append(tokens[index])
                index += 1
        return index, conditions

    # -- clauses
    def select(self, index: int, default_tables: list[str]) -> tuple[bool, list[Any]]:
        tokens, size = self.tokens, self.size
        index = self.expect(index, "select")
        distinct = self.is_at(index, "distinct")
        if distinct:
            index += 1
        units = []
        while index < size and tokens[index] not in _CLAUSE_KEYWORDS:
            aggregate = _AGG_INDEX.get(tokens[index], 0)
            if tokens[index] in _AGG_INDEX:
                index += 1
            index, val_unit = self.val_unit(index, default_tables)
            units.append((aggregate, val_unit))
            if index < size and tokens[index] == ",":
                index += 1
        return distinct, units

    def from_clause(self, start: int) -> tuple[int, list[Any], list[Any], list[str]]:
        tokens, size = self.tokens, self.size
        try:
            index = tokens.index("from", start) + 1
        except ValueError:
            raise SQLParseError("no FROM clause") from None
        default_tables: list[str] = []
        table_units: list[Any] = []
        conditions: list[Any] = []
        while index < size:
            parenthesised = tokens[index] == "("
            if parenthesised:
                index += 1
            if tokens[index] == "select":
                index, subquery = self.query(index)
                table_units.append(("sql", subquery))
            else:
                if index < size and tokens[index] == "join":
                    index += 1
                index, table_id, table = self.table_unit(index)
                table_units.append(("table_unit", table_id))
                default_tables.append(table)
            if index < size and tokens[index] == "on":
                index, join_conditions = self.condition(index + 1, default_tables)
                if conditions:
                    conditions.append("and")
                conditions.extend(join_conditions)
            if parenthesised:
                index = self.expect(index, ")")
            if index < size and tokens[index] in _CLAUSE_END:
                break
        return index, table_units, conditions, default_tables

    def filter_clause(self, index: int, keyword: str, default_tables: list[str]) -> tuple[int, list[Any]]:
        """WHERE or HAVING."""
        if not self.is_at(index, keyword):
            return index, []
        return self.condition(index + 1, default_tables)

    def group_by(self, index: int, default_tables: list[str]) -> tuple[int, list[Any]]:
        tokens, size = self.tokens, self.size
        units: list[Any] = []
        if not self.is_at(index, "group"):
            return index, units
        index = self.expect(index + 1, "by")
        while index < size and tokens[index] not in _CLAUSE_END:
            index, col_unit = self.col_unit(index, default_tables)
            units.append(col_unit)
            if not (index < size and tokens[index] == ","):
                break
            index += 1
        return index, units

    def order_by(self, index: int, default_tables: list[str]) -> tuple[int, Any]:
        tokens, size = self.tokens, self.size
        if not self.is_at(index, "order"):
            return index, []
        index = self.expect(index + 1, "by")
        direction = "asc"
        units = []
        while index < size and tokens[index] not in _CLAUSE_END:
            index, val_unit = self.val_unit(index, default_tables)
            units.append(val_unit)
            if index < size and tokens[index] in ORDER_OPS:
                direction = tokens[index]
                index += 1
            if not (index < size and tokens[index] == ","):
                break
            index += 1
        return index, (direction, units)

    def skip_semicolons(self, index: int) -> int:
        while index < self.size and self.tokens[index] == ";":
            index += 1
        return index

    def query(self, start: int) -> tuple[int, SQLDict]:
        """One (sub)query: FROM first (it yields the default tables), then SELECT and the other clauses."""
        tokens = self.tokens
        index = start
        parenthesised = tokens[index] == "("
        if parenthesised:
            index += 1
        from_end, table_units, join_conditions, default_tables = self.from_clause(start)
        result: SQLDict = {"from": {"table_units": table_units, "conds": join_conditions}}
        result["select"] = self.select(index, default_tables)  # where SELECT ends is not used
        index, result["where"] = self.filter_clause(from_end, "where", default_tables)
        index, result["groupBy"] = self.group_by(index, default_tables)
        index, result["having"] = self.filter_clause(index, "having", default_tables)
        index, result["orderBy"] = self.order_by(index, default_tables)
        if self.is_at(index, "limit"):
            # The official reads the token after LIMIT (so it must exist) but keeps 1 for any limit: it tests
            # whether the token, always a string, is an int.
            if index + 1 >= self.size:
                raise SQLParseError("LIMIT without a value")
            index, result["limit"] = index + 2, 1
        else:
            result["limit"] = None
        index = self.skip_semicolons(index)
        if parenthesised:
            index = self.expect(index, ")")
        index = self.skip_semicolons(index)
        result["intersect"] = result["union"] = result["except"] = None
        if index < self.size and tokens[index] in SQL_OPS:
            operator = tokens[index]
            index, result[operator] = self.query(index + 1)
        return index, result
