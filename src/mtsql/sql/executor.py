"""Safe execution of untrusted SQL on SQLite databases.

Model-written SQL is untrusted: a training run executes millions of queries, some of them runaway joins or
recursive CTEs, a few of them hostile. :func:`execute` runs one statement with these guarantees:

**Nothing is written and no file is created.**

- The database is opened read-only at the file level (``file:...?mode=ro`` URI; a missing file is an error,
  never an empty new database as plain ``sqlite3.connect`` would create).
- ``PRAGMA query_only`` is on, ``trusted_schema`` is off and extension loading is disabled.
- Temporary storage (sorts, ``GROUP BY``, ``DISTINCT`` of large results) spills to SQLite's anonymous temporary
  files (``temp_store=FILE``): they are created in the system temporary folder (``SQLITE_TMPDIR``, ``TMPDIR``,
  ``/var/tmp``, ``/tmp``), unlinked the moment they are opened (never visible in any folder) and freed when the
  statement ends. Keeping them in memory instead would let one runaway sort grow by about 1 GB in 5 s; with
  files a runaway query stays at a few MB of memory.
- An authorizer allows reading and nothing else: ``SELECT``, reading columns, calling functions (except
  ``load_extension`` and ``fts3_tokenizer``), recursive CTEs, and a few introspection pragmas that take a
  table or index name (``table_info``, ``table_xinfo``, ``index_list``, ``index_info``, ``index_xinfo``,
  ``foreign_key_list``, ``table_list``; also usable as ``pragma_table_info('t')`` in a ``SELECT``). Everything
  else is denied when the statement is prepared, before it runs: INSERT/UPDATE/DELETE (also inside a CTE),
  CREATE/DROP/ALTER (also TEMP objects, triggers, views, virtual tables), ATTACH/DETACH (which also blocks
  ``VACUUM`` and ``VACUUM INTO``: both attach a database internally, and ``VACUUM INTO`` would otherwise create
  a file even on a read-only connection), REINDEX, ANALYZE, BEGIN/COMMIT/ROLLBACK, SAVEPOINT/RELEASE and every
  other pragma (reading or writing).
- ``SQLITE_LIMIT_ATTACHED`` is 0 as a second lock on ATTACH.
- Databases in WAL mode: a read-only connection would create ``-wal``/``-shm`` files beside the database. When
  no ``-wal`` file exists (all content is in the main file) such a database is opened ``immutable=1``; when
  both exist it is opened ``mode=ro`` (they are reused, nothing new is created); a ``-wal`` without ``-shm``
  is refused with an error. (An ``immutable=1`` connection would not see a writer that starts later.)
- A statement that returns no result columns is refused even when SQLite did not submit it to the authorizer
  (``REINDEX`` of a table without index is such a no-op).

**Exactly one statement.** A trailing ``;``, whitespace and comments are fine; a second statement (``SELECT 1;
DROP TABLE t``) is rejected before anything runs. An empty query is an error.

**Bounded time and size.**

- Time: a progress handler checks a monotonic per-query deadline every few thousand virtual-machine
  instructions and interrupts the query (``query interrupted: time limit of 5 s exceeded``). The deadline
  lives on the connection's own state, so it is per query and per thread. This stops every query that loops
  over rows (runaway joins, recursive CTEs, sorts), within milliseconds of the deadline. It cannot stop work
  done inside one instruction: a few built-in functions are slow on their own (``instr``, ``replace``,
  ``trim``, ``LIKE``/``GLOB`` are quadratic on multi-megabyte strings; ``printf('%.*c', 2000000000, 'x')``
  spins for about 10 s). For a hard limit use :func:`execute_isolated`, which runs the query in a worker
  process killed when it overruns (the ``mtsql sql`` command instead ends its own process).
- Rows and characters: at most ``max_rows`` rows and ``max_chars`` characters of result text are fetched
  (``truncated=True`` says more existed); the rest is never materialised in Python. With ``max_chars``, rows
  are fetched 16 at a time, so what is held beyond the cap is at most 16 rows.
- Memory: ``SQLITE_LIMIT_LENGTH`` caps every string, blob and row SQLite builds at ``max_value_bytes`` (1 MiB by
  default; the longest value in the Spider databases is 213 characters), so ``zeroblob(15000000)`` or
  ``randomblob(1e9)`` fails at once with ``string or blob too big``, and ``SQLITE_LIMIT_SQL_LENGTH`` caps the
  statement's length. The memory a call holds is then bounded by its row cap: with ``max_chars`` (the ``mtsql
  sql`` command, the environment) by about ``max_chars`` plus 16 rows of at most ``max_value_bytes`` each;
  without it (evaluation, which compares whole results) by ``max_rows`` (for a prediction, the gold result's
  rows plus one) rows of at most ``max_value_bytes`` each, and by the gold query's own result. SQLite's
  heap limit (``sqlite3_hard_heap_limit64``) is process-wide, not per connection, so it is not set here; call
  :func:`set_process_heap_limit` to opt in for a whole worker process; :func:`execute_isolated` caps its
  worker's address space. Sorts spill to temporary files (above), so a runaway sort stays at a few MB.

**Concurrency and speed.** Connections are cached per thread (and per process: a forked child never uses its
parent's connections) in a small LRU keyed by the database path and the connection options, so a training
loop pays for opening a database once per thread. Before each use the file is ``stat``-ed: if it was replaced
or modified (inode, size or modification time changed) the cached connection is dropped and a new one opened.
Benchmark databases never change, so this costs one ``stat`` call.

``immutable=True`` opens the file with ``immutable=1``: SQLite then skips file locking and change detection,
which makes small queries markedly faster (the evaluator's execution match uses it), but it is only safe for
files nothing writes to while they are open (benchmark databases); a file modified in place under an immutable
connection can give wrong results or errors. A database with a ``-wal`` file is never opened immutable, since
the committed rows in that file would be ignored.

Decoding: by default invalid UTF-8 in text values is replaced (``text_errors="replace"``);
``text_errors="ignore"`` reproduces the official Spider evaluators (``text_factory = lambda b:
b.decode(errors="ignore")``, applied to the stored bytes, so also to the UTF-16 bytes of a UTF-16 database) and
``"strict"`` makes invalid text an error. Text is first decoded by the fast built-in decoder, which gives the
same strings for valid UTF-8; a query meeting an invalid value is run again with the lenient decoder.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_MAX_SQL_CHARS",
    "DEFAULT_MAX_VALUE_BYTES",
    "DEFAULT_TIMEOUT",
    "ExecResult",
    "TextErrors",
    "close_cached_connections",
    "execute",
    "execute_isolated",
    "executor",
    "json_safe_value",
    "set_process_heap_limit",
]

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_CHARS = 1_000_000
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024
DEFAULT_MAX_SQL_CHARS = 100_000
MAX_CACHED_CONNECTIONS_PER_THREAD = 64
# The progress handler runs every this many SQLite VM instructions: about every 10-50 microseconds of work,
# a negligible overhead (one Python call) with a sub-millisecond reaction time.
_PROGRESS_INSTRUCTIONS = 2_000
# How long to wait for a lock held by a writer of another process before failing.
_BUSY_TIMEOUT_S = 2.0


class TextErrors(StrEnum):
    """How invalid UTF-8 in a text value is decoded (see the module docstring)."""

    STRICT = "strict"
    REPLACE = "replace"
    IGNORE = "ignore"


# Introspection pragmas that only read the schema; their argument is a table or index name.
_ALLOWED_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list", "table_list"}
)
# Read-only table-valued functions a query may use. The other eponymous virtual tables stay unavailable:
# sqlite_stmt would show the SQL of earlier executions on the same cached connection (gold queries run by a
# reward, for one), dbstat the file's page layout.
_TABLE_FUNCTIONS = ("json_each", "json_tree")
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_temp_schema"})
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})

# Authorizer action codes (sqlite3.h); the sqlite3 module exposes most of them but not all on every version.
_AUTH_NAMES = {
    0: "COPY",
    1: "CREATE INDEX",
    2: "CREATE TABLE",
    3: "CREATE TEMP INDEX",
    4: "CREATE TEMP TABLE",
    5: "CREATE TEMP TRIGGER",
    6: "CREATE TEMP VIEW",
    7: "CREATE TRIGGER",
    8: "CREATE VIEW",
    9: "DELETE",
    10: "DROP INDEX",
    11: "DROP TABLE",
    12: "DROP TEMP INDEX",
    13: "DROP TEMP TABLE",
    14: "DROP TEMP TRIGGER",
    15: "DROP TEMP VIEW",
    16: "DROP TRIGGER",
    17: "DROP VIEW",
    18: "INSERT",
    19: "PRAGMA",
    20: "READ",
    21: "SELECT",
    22: "TRANSACTION",
    23: "UPDATE",
    24: "ATTACH",
    25: "DETACH",
    26: "ALTER TABLE",
    27: "REINDEX",
    28: "ANALYZE",
    29: "CREATE VIRTUAL TABLE",
    30: "DROP VIRTUAL TABLE",
    31: "FUNCTION",
    32: "SAVEPOINT",
    33: "RECURSIVE",
}
_SQLITE_PRAGMA, _SQLITE_READ, _SQLITE_SELECT, _SQLITE_FUNCTION, _SQLITE_RECURSIVE = 19, 20, 21, 31, 33
_SQLITE_OK, _SQLITE_DENY = 0, 1
_WRITE_CODES = frozenset({0, 9, 18, 23, 26, 27, 28} | set(range(1, 9)) | set(range(10, 18)) | {29, 30})


@dataclass(slots=True)
class ExecResult:
    """The outcome of one execution.

    ``rows`` holds tuples of Python values exactly as :mod:`sqlite3` returns them (``int``, ``float``, ``str``,
    ``bytes``, ``None``); :func:`json_safe_value` converts a value for JSON. ``error`` is a short message meant
    to be shown to a model; ``error_kind`` classifies it: ``"db_missing"``, ``"empty"``, ``"multi_statement"``,
    ``"not_allowed"``, ``"timeout"``, ``"too_large"`` (a limit of SQLite was hit), ``"sql"`` (any other SQLite
    error, e.g. ``no such column: T1.nme``) or ``"internal"``.
    """

    ok: bool
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    truncated: bool = False
    error: str | None = None
    elapsed_s: float = 0.0
    error_kind: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The six public fields with every value JSON-safe (see :func:`json_safe_value`)."""
        return {
            "ok": self.ok,
            "columns": list(self.columns),
            "rows": [[json_safe_value(v) for v in row] for row in self.rows],
            "truncated": self.truncated,
            "error": self.error,
            "elapsed_s": round(self.elapsed_s, 6),
        }


def json_safe_value(value: Any) -> Any:
    """A JSON-safe form of a SQLite value: blobs as the SQL literal ``X'0AFF'``, non-finite floats as strings."""
    if isinstance(value, bytes):
        return "X'" + value.hex().upper() + "'"
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return repr(value)
    return value


class _ConnState:
    """Per-connection mutable state read by the progress handler and the authorizer (one thread at a time)."""

    __slots__ = ("deadline", "denied")

    def __init__(self) -> None:
        self.deadline = float("inf")
        self.denied: str | None = None

    def progress(self) -> int:
        return 1 if time.monotonic() > self.deadline else 0

    def authorize(self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
        if action in (_SQLITE_READ, _SQLITE_SELECT, _SQLITE_RECURSIVE):
            return _SQLITE_OK
        if action == _SQLITE_FUNCTION:
            if arg2 is not None and arg2.lower() in _DENIED_FUNCTIONS:
                self._deny(f"the function {arg2}() is forbidden")
                return _SQLITE_DENY
            return _SQLITE_OK
        if action == _SQLITE_PRAGMA:
            if arg1 is not None and arg1.lower() in _ALLOWED_PRAGMAS:
                return _SQLITE_OK
            allowed = ", ".join(sorted(_ALLOWED_PRAGMAS))
            self._deny(f"PRAGMA {arg1} is forbidden (allowed: {allowed})")
            return _SQLITE_DENY
        name = _AUTH_NAMES.get(action, f"action {action}")
        if action in _WRITE_CODES:
            if arg1 is not None and arg1.lower() in _SCHEMA_TABLES:
                name = "schema change"  # CREATE/DROP/ANALYZE edit sqlite_master first; named in _translate
            self._deny(f"write operations ({name}) are forbidden")
        elif action in (24, 25):
            self._deny(f"{name} is forbidden (this also blocks VACUUM)")
        elif action in (22, 32):
            self._deny(f"transactions ({name}) are forbidden")
        else:
            self._deny(f"{name} is forbidden")
        return _SQLITE_DENY

    def _deny(self, reason: str) -> None:
        if self.denied is None:
            self.denied = reason


@dataclass(slots=True)
class _CachedConn:
    conn: sqlite3.Connection
    state: _ConnState
    signature: tuple[int, int, int, int]
    utf8: bool


class _ThreadCache(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.conns: OrderedDict[tuple[Any, ...], _CachedConn] = OrderedDict()


_cache = _ThreadCache()
# Connections inherited from a parent process through fork: never used nor closed in the child.
_inherited: list[_CachedConn] = []


class _OpenError(Exception):
    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def _file_signature(path: str) -> tuple[int, int, int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _OpenError(f"database not found: {path}", "db_missing") from exc
    if not stat.S_ISREG(st.st_mode):
        raise _OpenError(f"database not found: {path} is not a file", "db_missing")
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _is_utf8(path: str) -> bool:
    """Whether the database's text encoding is UTF-8 (header bytes 56-59: 1 UTF-8, 2/3 UTF-16; 0 empty)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(60)
    except OSError:
        return True
    return len(header) < 60 or int.from_bytes(header[56:60], "big") in (0, 1)


def _is_wal(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[:16] == b"SQLite format 3\x00" and header[18] == 2 and header[19] == 2


def _decode_ignore(data: bytes) -> str:
    return data.decode(errors="ignore")


def _decode_replace(data: bytes) -> str:
    return data.decode(errors="replace")


def _open(
    path: str, immutable: bool, max_value_bytes: int, max_sql_chars: int
) -> tuple[sqlite3.Connection, _ConnState]:
    # Through a symbolic link, the -wal and -shm files that matter are beside the real file.
    path = os.path.realpath(path)
    params = "mode=ro"
    if immutable and not os.path.exists(path + "-wal"):  # immutable would ignore what a -wal file holds
        params += "&immutable=1"
    elif _is_wal(path):
        wal, shm = os.path.exists(path + "-wal"), os.path.exists(path + "-shm")
        if not wal:
            params += "&immutable=1"
        elif not shm:
            raise _OpenError(
                f"cannot open {path} read-only: WAL database with a -wal file but no -shm file "
                "(checkpoint it with a read-write connection first)",
                "internal",
            )
    uri = "file:" + quote(os.path.abspath(path)) + "?" + params
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT_S, cached_statements=256)
    try:
        if hasattr(conn, "enable_load_extension"):
            conn.enable_load_extension(False)
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_value_bytes)
        conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, max_sql_chars)
        conn.setlimit(sqlite3.SQLITE_LIMIT_WORKER_THREADS, 0)
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("PRAGMA temp_store = FILE")
        # The first use of an eponymous virtual table (pragma_table_info(...), json_each(...)) registers it in
        # the in-memory schema, which the authorizer would see as an UPDATE of sqlite_master; do it now for the
        # allowed ones, before the authorizer is installed, so that later uses are plain reads.
        for table in (*(f"pragma_{pragma}" for pragma in sorted(_ALLOWED_PRAGMAS)), *_TABLE_FUNCTIONS):
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"SELECT * FROM {table}('') LIMIT 0").fetchall()
    except sqlite3.Error as exc:
        conn.close()
        raise _OpenError(f"cannot open database {path}: {exc}", "sql") from exc
    state = _ConnState()
    conn.set_authorizer(state.authorize)
    conn.set_progress_handler(state.progress, _PROGRESS_INSTRUCTIONS)
    return conn, state


def _get_connection(path: str, immutable: bool, max_value_bytes: int, max_sql_chars: int, cache: bool) -> _CachedConn:
    signature = _file_signature(path)
    if not cache:
        conn, state = _open(path, immutable, max_value_bytes, max_sql_chars)
        return _CachedConn(conn, state, signature, _is_utf8(path))
    local = _cache
    pid = os.getpid()
    if local.pid != pid:  # forked child: the parent's connections must not be used (nor closed) here
        _inherited.extend(local.conns.values())
        local.conns = OrderedDict()
        local.pid = pid
    key = (path, immutable, max_value_bytes, max_sql_chars)
    conns = local.conns
    entry = conns.get(key)
    if entry is not None:
        if entry.signature == signature:
            conns.move_to_end(key)
            return entry
        del conns[key]
        entry.conn.close()
    conn, state = _open(path, immutable, max_value_bytes, max_sql_chars)
    entry = _CachedConn(conn, state, signature, _is_utf8(path))
    conns[key] = entry
    while len(conns) > MAX_CACHED_CONNECTIONS_PER_THREAD:
        _, old = conns.popitem(last=False)
        old.conn.close()
    return entry


def close_cached_connections() -> None:
    """Close the calling thread's cached connections (other threads' connections are closed when they end)."""
    local = _cache
    if local.pid != os.getpid():
        _inherited.extend(local.conns.values())
    else:
        for entry in local.conns.values():
            entry.conn.close()
    local.conns = OrderedDict()
    local.pid = os.getpid()


def set_process_heap_limit(nbytes: int) -> int:
    """Set SQLite's hard heap limit for the whole process (``PRAGMA hard_heap_limit``); returns the new limit.

    SQLite's heap limit is global to the process, not per connection, so it is an explicit opt-in for a worker
    process that only runs untrusted SQL. Allocations beyond it fail with ``out of memory`` errors. Through
    this pragma the limit can only be lowered: 0 or a value above the current limit leaves it unchanged.
    """
    conn = sqlite3.connect(":memory:")
    try:
        return int(conn.execute(f"PRAGMA hard_heap_limit = {int(nbytes)}").fetchone()[0])
    finally:
        conn.close()


_BLANK_SQL = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$)|;)*", re.DOTALL)


def _is_blank_sql(sql: str) -> bool:
    match = _BLANK_SQL.match(sql)
    return match is not None and match.end() == len(sql)


def _value_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if value is None:
        return 4
    if isinstance(value, bytes):
        return 2 * len(value) + 3
    return len(repr(value))


def _error(message: str, kind: str, start: float) -> ExecResult:
    return ExecResult(ok=False, error=message, error_kind=kind, elapsed_s=time.perf_counter() - start)


_LEADING_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$)|\()*([A-Za-z]+)", re.DOTALL)


def _translate(exc: Exception, state: _ConnState, timeout: float, sql: str) -> tuple[str, str]:
    message = str(exc)
    if state.denied is not None:
        denied = state.denied
        if "(schema change)" in denied:
            match = _LEADING_WORD.match(sql)
            word = match.group(1).upper() if match else ""
            if word in ("CREATE", "DROP", "ALTER", "ANALYZE"):
                denied = denied.replace("(schema change)", f"({word})")
            elif word in ("SELECT", "WITH", "VALUES"):  # a query naming an unavailable eponymous virtual table
                functions = ", ".join(_TABLE_FUNCTIONS)
                denied = f"this virtual table is not available (the table-valued functions allowed: {functions})"
        return f"not allowed: {denied}", "not_allowed"
    if "one statement at a time" in message:
        return "only one statement is allowed", "multi_statement"
    if isinstance(exc, MemoryError):
        return "out of memory", "too_large"
    if message == "interrupted":
        return f"query interrupted: time limit of {timeout:g} s exceeded", "timeout"
    if message in ("string or blob too big", "query string is too large") or "too many" in message:
        return message, "too_large"
    return message, "sql"


def execute(
    db_path: str | os.PathLike[str],
    sql: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    max_chars: int | None = DEFAULT_MAX_CHARS,
    text_errors: TextErrors = "replace",
    immutable: bool = False,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_sql_chars: int = DEFAULT_MAX_SQL_CHARS,
    cache: bool = True,
) -> ExecResult:
    """Execute one read-only statement on a SQLite file and return its rows or a short error message.

    ``timeout`` (seconds) interrupts the query; ``max_rows`` and ``max_chars`` (total characters of the result
    values, ``None`` for no cap) stop fetching and set ``truncated``; ``text_errors`` decides how invalid UTF-8
    text is decoded; ``immutable`` opens the file with ``immutable=1`` (only for files nothing writes to);
    ``cache=False`` opens and closes a connection for this call only. Never raises for a problem of the query
    or the database: every failure is an ``ExecResult`` with ``ok=False``.
    """
    start = time.perf_counter()
    if not isinstance(sql, str):
        return _error("the query must be a string", "internal", start)
    path = os.fspath(db_path)
    try:
        entry = _get_connection(path, immutable, max_value_bytes, max_sql_chars, cache)
    except _OpenError as exc:
        return _error(str(exc), exc.kind, start)
    except sqlite3.Error as exc:
        return _error(f"cannot open database {path}: {exc}", "sql", start)
    conn, state = entry.conn, entry.state
    if text_errors not in ("strict", "replace", "ignore"):
        if not cache:
            conn.close()
        return _error(f"text_errors must be 'strict', 'replace' or 'ignore', not {text_errors!r}", "internal", start)
    state.denied = None
    state.deadline = time.monotonic() + timeout
    try:
        # Text is decoded by the fast built-in UTF-8 decoder first; only when a value is not valid UTF-8 is
        # the query run again with the lenient decoder (same deadline). Valid text decodes identically.
        try:
            if text_errors == "ignore" and not entry.utf8:
                # the official decoding applies to the raw stored bytes, UTF-16 in such a database
                raise sqlite3.OperationalError("Could not decode to UTF-8: UTF-16 database")
            columns, rows, truncated, blank, no_result = _run(conn, sql, max_rows, max_chars)
        except sqlite3.OperationalError as exc:
            if text_errors == "strict" or not str(exc).startswith("Could not decode to UTF-8"):
                raise
            conn.text_factory = _decode_ignore if text_errors == "ignore" else _decode_replace
            try:
                columns, rows, truncated, blank, no_result = _run(conn, sql, max_rows, max_chars)
            finally:
                conn.text_factory = str
    except (sqlite3.Error, sqlite3.Warning, OverflowError, MemoryError, ValueError) as exc:
        message, kind = _translate(exc, state, timeout, sql)
        return _error(message, kind, start)
    finally:
        state.deadline = float("inf")
        if not cache:
            conn.close()
    if blank:
        return _error("empty query: there is no SQL statement to execute", "empty", start)
    if no_result:  # a statement that passed the authorizer as a no-op, e.g. REINDEX of a table without index
        match = _LEADING_WORD.match(sql)
        word = match.group(1).upper() if match else "this statement"
        return _error(f"not allowed: only queries are allowed ({word} returns no rows)", "not_allowed", start)
    return ExecResult(ok=True, columns=columns, rows=rows, truncated=truncated, elapsed_s=time.perf_counter() - start)


def _run(
    conn: sqlite3.Connection, sql: str, max_rows: int | None, max_chars: int | None
) -> tuple[list[str], list[Any], bool, bool, bool]:
    """Columns, rows, truncated, whether the SQL is blank, whether it was a statement without result columns."""
    try:
        cursor = conn.execute(sql)
    except sqlite3.ProgrammingError as exc:
        # Python's sqlite3 counts what follows the first statement's ';' as a second statement even when it is
        # only more ';', whitespace and comments ('SELECT 1;;'); such a tail is dropped, anything else refused.
        first = _first_statement(sql) if "one statement at a time" in str(exc) else None
        if first is None:
            raise
        cursor = conn.execute(first)
    try:
        description = cursor.description
        if description is None:
            blank = _is_blank_sql(sql)
            return [], [], False, blank, not blank
        rows, truncated = _fetch(cursor, max_rows, max_chars)
        return [d[0] for d in description], rows, truncated, False, False
    finally:
        cursor.close()


_EMPTY_TAIL = re.compile(r"(?:\s+|;|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)


def _first_statement(sql: str) -> str | None:
    """The first complete statement of ``sql`` when all that follows it is ``;``, whitespace and comments."""
    for position, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[: position + 1]):
            return sql[: position + 1] if _EMPTY_TAIL.fullmatch(sql, position + 1) else None
    return None


def _fetch(cursor: sqlite3.Cursor, max_rows: int | None, max_chars: int | None) -> tuple[list[Any], bool]:
    if max_chars is None:
        if max_rows is None:
            return cursor.fetchall(), False
        rows = cursor.fetchmany(max_rows + 1)
        if len(rows) > max_rows:
            return rows[:max_rows], True
        return rows, False
    rows: list[Any] = []
    limit = max_rows if max_rows is not None else -1
    # Counting characters value by value costs more than SQLite's own work on small queries, so whole batches
    # are accepted while twice their repr (an upper bound of their characters for every SQLite type) keeps the
    # total under the cap; the exact count starts only near the cap or the row limit.
    bound = 0
    chars: int | None = None
    while True:
        batch = cursor.fetchmany(16)  # small: a row may hold values of up to max_value_bytes each
        if not batch:
            return rows, False
        if chars is None:
            bound += 2 * len(repr(batch))
            if bound <= max_chars and (limit < 0 or len(rows) + len(batch) <= limit):
                rows.extend(batch)
                continue
            chars = sum(_value_chars(v) for row in rows for v in row)
        for row in batch:
            if len(rows) == limit:
                return rows, True
            chars += sum(_value_chars(v) for v in row)
            if chars > max_chars:
                return rows, True
            rows.append(row)


# ---------------------------------------------------------------------------------------------------------
# Hard limits: execution in a worker process
# ---------------------------------------------------------------------------------------------------------

DEFAULT_GRACE_S = 0.5
DEFAULT_WORKER_MEMORY_BYTES = 2 * 1024**3

# The worker is a fresh interpreter that imports only this module: unlike multiprocessing's "spawn" and
# "forkserver" it never re-imports the caller's ``__main__`` (a script without a main guard, or code read from
# stdin, would break or run twice), and unlike "fork" it does not inherit a trainer's memory and threads.
_WORKER_CODE = "import sys; from mtsql.sql.executor import _worker_main; _worker_main(*map(int, sys.argv[1:]))"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding ``mtsql``: the worker imports it


#: Seconds a new worker may take to start (an interpreter and this module's imports) before it counts as failed;
#: its start never counts against a query's time limit.
_WORKER_START_S = 60.0
_READY = "ready"


def _worker_main(read_fd: int, write_fd: int, max_memory_bytes: int) -> None:
    """Body of a worker process: run :func:`execute` for each numbered request until the parent closes the pipe,
    answering with the request's number (so a reply never answers another request)."""
    from multiprocessing.connection import Connection

    if max_memory_bytes:
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (max_memory_bytes, max_memory_bytes))
        except (ImportError, ValueError, OSError):
            pass
    requests, replies = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    replies.send(_READY)
    while True:
        try:
            number, args, kwargs = requests.recv()
        except (EOFError, OSError):
            return
        try:
            result = execute(*args, **kwargs)
        except MemoryError:
            result = ExecResult(ok=False, error="out of memory", error_kind="too_large")
        replies.send((number, result))


def _stop_process(process: subprocess.Popen[bytes], *connections: Any) -> None:
    with contextlib.suppress(OSError):
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(1.0)
    for connection in connections:
        connection.close()


class _Worker:
    """A worker process and its two pipes; started and ready (its imports done) when constructed."""

    def __init__(self, max_memory_bytes: int | None) -> None:
        from multiprocessing.connection import Connection

        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (_PACKAGE_ROOT, env.get("PYTHONPATH"))))
        try:
            # its own session: a Ctrl-C at the terminal interrupts the caller, not every worker with a traceback
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_CODE, str(request_read), str(reply_write), str(max_memory_bytes or 0)],
                pass_fds=(request_read, reply_write),
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            os.close(request_write)
            os.close(reply_read)
            raise
        finally:
            os.close(request_read)
            os.close(reply_write)
        self.requests = Connection(request_write, readable=False)
        self.replies = Connection(reply_read, writable=False)
        self.max_memory_bytes = max_memory_bytes
        self.sent = 0
        # a thread that ends drops its slot, and with it this worker: its process must not outlive it
        self.stop = weakref.finalize(self, _stop_process, self.process, self.requests, self.replies)
        try:
            ready = self.replies.poll(_WORKER_START_S) and self.replies.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.stop()
            raise OSError(f"the worker process did not start within {_WORKER_START_S:g} s")

    def run(self, db_path: str, sql: str, timeout: float, grace: float, options: dict[str, Any]) -> ExecResult | None:
        """The query's result, or ``None`` when no answer came within ``timeout + grace`` seconds."""
        self.sent += 1
        self.requests.send((self.sent, (db_path, sql), {"timeout": timeout, **options}))
        deadline = time.monotonic() + timeout + grace
        while (left := deadline - time.monotonic()) > 0 and self.replies.poll(left):
            number, result = self.replies.recv()
            if number == self.sent:
                return result  # type: ignore[no-any-return]
        return None

    def death(self) -> tuple[str, str]:
        """Why the process is gone, and the error kind: killed (the kernel's out-of-memory killer sends SIGKILL)
        or ended otherwise."""
        try:
            code = self.process.wait(1.0)
        except subprocess.TimeoutExpired:
            code = None
        if code == -9:
            return "killed (out of memory?)", "too_large"
        return f"exit status {code}", "internal"


class _WorkerSlot(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.worker: _Worker | None = None


_workers = _WorkerSlot()


def execute_isolated(
    db_path: str | os.PathLike[str],
    sql: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    grace: float = DEFAULT_GRACE_S,
    max_memory_bytes: int | None = DEFAULT_WORKER_MEMORY_BYTES,
    **options: Any,
) -> ExecResult:
    """:func:`execute` in a worker process that is killed when it overruns: a hard time and memory limit.

    The in-process time limit is checked between SQLite instructions, so it stops every query that loops over
    rows, but not a single function call that is slow on its own: ``instr``, ``replace``, ``trim``, ``LIKE``
    and ``GLOB`` on multi-megabyte strings are quadratic, and ``printf('%.*c', 2000000000, 'x')`` spins for
    about 10 s. Here the calling thread's worker (a fresh interpreter started on first use, one per thread and
    process, stopped when its thread ends; its start is not counted in the limit) runs the query; if no answer
    comes ``grace`` seconds after ``timeout`` the worker is killed (and restarted on the next call) and the
    result is the usual time-limit error. Requests are numbered, so a reply can only answer its own request, and
    an interrupted call (``KeyboardInterrupt``) drops the worker. ``max_memory_bytes`` caps the worker's address
    space (``RLIMIT_AS``, where the platform has it). The cost per call is a pipe round trip with the pickled
    rows (``benchmarks/bench_env.py`` against ``--in-process`` measures it). ``options`` are those of
    :func:`execute`; a relative ``db_path`` is made absolute here, since the worker keeps the working folder it
    started in.
    """
    start = time.perf_counter()
    slot = _workers
    if slot.pid != os.getpid():  # forked: the parent's worker belongs to the parent
        slot.worker, slot.pid = None, os.getpid()
    worker = slot.worker
    if worker is not None and (worker.max_memory_bytes != max_memory_bytes or worker.process.poll() is not None):
        worker.stop()
        worker = slot.worker = None
    if worker is None:
        try:
            worker = slot.worker = _Worker(max_memory_bytes)
        except OSError as exc:
            return _error(f"cannot start a worker process for the query: {exc}", "internal", start)
    try:
        result = worker.run(os.path.abspath(db_path), sql, timeout, grace, options)
    except (EOFError, OSError):
        why, kind = worker.death()
        worker.stop()
        slot.worker = None
        return _error(f"the query's worker process died ({why})", kind, start)
    except BaseException:  # interrupted while the worker still works: its late reply must not answer anything
        worker.stop()
        slot.worker = None
        raise
    if result is not None:
        return result
    worker.stop()
    slot.worker = None
    return _error(f"query interrupted: time limit of {timeout:g} s exceeded", "timeout", start)


def executor(isolate: bool) -> Callable[..., ExecResult]:
    """:func:`execute_isolated` (a hard time limit) when ``isolate``, else :func:`execute` (in-process, a little
    faster): the one switch behind every ``isolate`` setting (environment, rewards, evaluation)."""
    return execute_isolated if isolate else execute
