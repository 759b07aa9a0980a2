"""Dialogue memory: what the agent may look up about the earlier questions of a dialogue.

Each earlier turn is remembered as its question, its SQL, a short rendering of the SQL's Spider clauses
(tables, select, where, group, having, order, limit, set operations; from :func:`mtsql.sql.parse.parse_sql`)
and a preview of its result. Which SQL is remembered is the *history mode*:

- ``predicted`` (default): the agent's own final SQL of earlier turns, as a leaderboard system sees them;
- ``oracle``: the gold SQL of earlier turns, as in the original MTSQL-R1 paper (not comparable with the
  leaderboards, since errors never carry over).

The clause rendering and the preview are computed lazily, when the memory is first read, and the parses are
cached per database, so an episode that never retrieves its memory pays nothing and repeated episodes (several
samples of one dialogue) parse each SQL once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from mtsql.errors import ConfigError
from mtsql.sql.executor import ExecResult


class HistoryMode(StrEnum):
    """What the memory holds for earlier questions: the agent's own answers (leaderboard-comparable, the default
    for evaluation) or the gold SQL (the original's oracle history)."""

    PREDICTED = "predicted"
    ORACLE = "oracle"


HISTORY_MODES: Final[tuple[str, ...]] = tuple(mode.value for mode in HistoryMode)


def check_history_mode(value: str) -> HistoryMode:
    """``value`` as a :class:`HistoryMode`; a :class:`~mtsql.errors.ConfigError` naming the modes otherwise."""
    try:
        return HistoryMode(value)
    except ValueError:
        raise ConfigError(f"history_mode must be one of {', '.join(HISTORY_MODES)}, not {value!r}") from None


NO_SQL: Final = "(no SQL)"


@dataclass(frozen=True, slots=True)
class MemoryEntry:
    """One earlier turn as the memory shows it (``index`` is 0-based)."""

    index: int
    question: str
    sql: str
    parsed: str
    preview: str


class DialogueMemory:
    """The earlier turns of one dialogue, in order.

    ``describe(sql)`` renders a SQL's clauses and ``run(sql)`` executes it (for the preview of a SQL whose
    result the caller did not pass to :meth:`add`); both are called at most once per turn, on first read.
    """

    __slots__ = ("_describe", "_entries", "_pending", "_preview_chars", "_run", "mode")

    def __init__(
        self,
        mode: HistoryMode,
        *,
        describe: Callable[[str], str],
        run: Callable[[str], ExecResult],
        preview_chars: int = 50,
    ) -> None:
        check_history_mode(mode)
        self.mode: HistoryMode = mode
        self._describe = describe
        self._run = run
        self._preview_chars = preview_chars
        self._entries: list[MemoryEntry] = []
        self._pending: list[tuple[str, str, ExecResult | None]] = []

    def __len__(self) -> int:
        return len(self._entries) + len(self._pending)

    def add(self, question: str, sql: str, result: ExecResult | None = None) -> None:
        """Remember a finished turn; ``result`` is the SQL's execution when the caller already has it."""
        self._pending.append((question, sql, result))

    def entries(self) -> Sequence[MemoryEntry]:
        """Every remembered turn, oldest first."""
        for question, sql, result in self._pending:
            if not sql:
                parsed = preview = NO_SQL
            else:
                parsed = self._describe(sql)
                preview = result_preview(result if result is not None else self._run(sql), self._preview_chars)
            self._entries.append(MemoryEntry(len(self._entries), question, sql or NO_SQL, parsed, preview))
        self._pending.clear()
        return self._entries


# --- result text ------------------------------------------------------------------------------------------


def rows_text(rows: Sequence[tuple[Any, ...]], limit: int) -> str:
    """The rows as a Python list, cut after ``limit`` characters with ``...``.

    Only a growing prefix of the rows is rendered (``repr`` of a slice, in C), so a large result costs no more
    than a small one.
    """
    count = 4
    while True:
        text = repr(list(rows[:count]))
        if len(text) > limit:
            return text[:limit] + "..."
        if count >= len(rows):
            return text
        count *= 4


def result_text(result: ExecResult, limit: int) -> str:
    """An execution result for a tool reply: the error, or the row count, the columns and the first rows."""
    if not result.ok:
        return f"error: {result.error}"
    count = f"{len(result.rows)}{'+' if result.truncated else ''} row{'' if len(result.rows) == 1 else 's'}"
    columns = ", ".join(result.columns)
    if not result.rows:
        return f"{count} (columns: {columns})"
    return f"{count} (columns: {columns}): {rows_text(result.rows, limit)}"


def result_preview(result: ExecResult, limit: int) -> str:
    """A short preview for the memory: the first rows, ``no rows``, or the error, cut to ``limit``."""
    if not result.ok:
        text = f"error: {result.error}"
        return text if len(text) <= limit else text[:limit] + "..."
    return rows_text(result.rows, limit) if result.rows else "no rows"


# --- parsed SQL -------------------------------------------------------------------------------------------

# The official Spider parser's operator tables (process_sql.py), by the ids its structure holds.
_AGG: Final = ("", "max", "min", "count", "sum", "avg")
_UNIT: Final = ("", "-", "+", "*", "/")
_WHERE: Final = ("not", "between", "=", ">", "<", ">=", "<=", "!=", "in", "like", "is", "exists")


@functools.lru_cache(maxsize=65536)
def describe_sql(db_path: str, sql: str) -> str:
    """The clause rendering of ``sql`` on a database (cached), or why the Spider parser rejects it.

    The official parser reads every ``LIMIT n`` as ``LIMIT 1``; the top-level limit shown is taken from the
    text instead, so the memory does not contradict the SQL above it. Model-written SQL is untrusted input:
    any parser failure becomes a description, never an exception.
    """
    from mtsql.sql.parse import Schema, parse_sql

    try:
        parsed = parse_sql(sql, Schema.from_sqlite(db_path))
    except Exception as err:  # a parser bug on odd input must cost one description, not the episode
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        return f"(not parsable: {reason[:100]})"
    return render_components(parsed, limit=_top_level_limit(sql) if parsed["limit"] is not None else None)


def render_components(sql: dict[str, Any], *, limit: str | None = None) -> str:
    """A short readable rendering of the official nested SQL structure, one clause after another.

    Example: ``tables: singer, concert | joins: singer.singer_id = concert.singer_id | select: count(*) |
    where: singer.age > 20``. Column ids ``__table.column__`` are shown as ``table.column``; ``limit``
    replaces the structure's limit value at the top level.
    """
    parts = []
    table_units = sql["from"]["table_units"]
    parts.append("tables: " + ", ".join(_table(unit) for unit in table_units))
    if sql["from"]["conds"]:
        parts.append("joins: " + _conditions(sql["from"]["conds"]))
    distinct, items = sql["select"]
    select = ", ".join(_aggregate(agg, _val_unit(unit)) for agg, unit in items)
    parts.append("select: " + ("distinct " if distinct else "") + select)
    if sql["where"]:
        parts.append("where: " + _conditions(sql["where"]))
    if sql["groupBy"]:
        parts.append("group by: " + ", ".join(_col_unit(unit) for unit in sql["groupBy"]))
    if sql["having"]:
        parts.append("having: " + _conditions(sql["having"]))
    if sql["orderBy"]:
        direction, units = sql["orderBy"]
        parts.append("order by: " + ", ".join(_val_unit(unit) for unit in units) + f" {direction}")
    if sql["limit"] is not None:
        parts.append(f"limit: {limit or sql['limit']}")
    for op in ("intersect", "union", "except"):
        if sql.get(op):
            parts.append(f"{op}: {{{render_components(sql[op])}}}")
    return " | ".join(parts)


_STRING: Final = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_LIMIT_OR_PAREN: Final = re.compile(r"[()]|\blimit\s+(\d+)", re.IGNORECASE)


def _top_level_limit(sql: str) -> str | None:
    """The number of the last ``LIMIT n`` outside parentheses and string literals."""
    depth, found = 0, None
    for match in _LIMIT_OR_PAREN.finditer(_STRING.sub("''", sql)):
        token = match.group(0)
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0:
            found = match.group(1)
    return found


def _name(column_id: Any) -> str:
    text = str(column_id)
    if text == "__all__":
        return "*"
    return text[2:-2] if text.startswith("__") and text.endswith("__") else text


def _table(unit: Sequence[Any]) -> str:
    kind, value = unit[0], unit[1]
    return f"({render_components(value)})" if kind == "sql" else _name(value)


def _aggregate(agg: int, text: str) -> str:
    return f"{_AGG[agg]}({text})" if agg else text


def _col_unit(unit: Sequence[Any]) -> str:
    agg, column, distinct = unit[0], unit[1], unit[2]
    return _aggregate(agg, ("distinct " if distinct else "") + _name(column))


def _val_unit(unit: Sequence[Any]) -> str:
    op, left, right = unit[0], unit[1], unit[2]
    return _col_unit(left) if not op else f"{_col_unit(left)} {_UNIT[op]} {_col_unit(right)}"


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return f"({render_components(value)})"
    if isinstance(value, list | tuple):
        return _col_unit(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _conditions(conds: Sequence[Any]) -> str:
    parts = []
    for item in conds:
        if isinstance(item, str):  # "and" / "or" between condition units
            parts.append(item)
            continue
        negated, op_id, unit, first, second = item
        op = _WHERE[op_id]
        text = f"{_val_unit(unit)} {'not ' if negated else ''}{op} {_value(first)}"
        parts.append(f"{text} and {_value(second)}" if op == "between" else text)
    return " ".join(parts)
