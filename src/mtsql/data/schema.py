"""Database schemas from Spider's ``tables.json`` or from a live SQLite file, and their text for prompts.

A user's own database has no ``tables.json``, so a schema can be read straight from the file. Files are always
opened read-only through a ``file:...?mode=ro`` URI: reading a schema never creates or modifies a file.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtsql.data.dialogue import DatasetName
from mtsql.data.loaders import DatasetFormatError, DatasetNotFoundError, dataset_folder


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its name in the database, a natural-language name, and its type.

    The type is Spider's coarse type (``text``, ``number``, ``time``, ``boolean``, ``others``) for schemas
    from ``tables.json``, and the declared type (possibly empty) for schemas read from SQLite.
    """

    name: str
    normalized_name: str
    type: str


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    normalized_name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    def column(self, name: str) -> Column:
        """The column called ``name``, compared case-insensitively as SQLite does."""
        lowered = name.lower()
        for column in self.columns:
            if column.name.lower() == lowered:
                return column
        raise KeyError(f"no column {name!r} in table {self.name!r}")


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """``table.column`` references ``ref_table.ref_column``; composite keys are one pair per column."""

    table: str
    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True, slots=True)
class DatabaseSchema:
    db_id: str
    tables: tuple[Table, ...]
    foreign_keys: tuple[ForeignKey, ...]

    def table(self, name: str) -> Table:
        """The table called ``name``, compared case-insensitively as SQLite does."""
        lowered = name.lower()
        for table in self.tables:
            if table.name.lower() == lowered:
                return table
        raise KeyError(f"no table {name!r} in database {self.db_id!r}")

    @classmethod
    def from_tables_json(cls, entry: Mapping[str, Any]) -> DatabaseSchema:
        """A schema from one ``tables.json`` entry; raises ``ValueError`` naming what is malformed."""
        try:
            return _from_tables_json(entry)
        except (KeyError, IndexError, TypeError, ValueError) as err:
            db_id = entry.get("db_id", "?") if isinstance(entry, Mapping) else "?"
            raise ValueError(f"malformed tables.json entry {db_id!r}: {err!r}") from None

    @classmethod
    def from_sqlite(cls, path: Path | str, db_id: str | None = None) -> DatabaseSchema:
        """A schema read from a SQLite file (``sqlite_master`` and the table and foreign-key pragmas).

        ``db_id`` defaults to the file name without its suffix. SQLite's own tables (``sqlite_sequence``) are
        left out.
        """
        path = Path(path)
        with closing(_connect_read_only(path)) as conn:
            return _from_connection(conn, db_id or path.stem)

    def render(self, values: Mapping[tuple[str, str], Sequence[Any]] | None = None) -> str:
        """A compact ``CREATE TABLE``-like text of the schema, for prompts.

        ``values`` maps ``(table, column)`` to a few example values (see :func:`sample_values`), shown as a
        comment after the column.
        """
        blocks = []
        for table in self.tables:
            if table.name.lower().startswith("sqlite_"):
                continue
            entries: list[tuple[str, str]] = []  # (definition, comment)
            for column in table.columns:
                examples = (values or {}).get((table.name, column.name))
                comment = "e.g. " + ", ".join(_format_value(v) for v in examples) if examples else ""
                entries.append((f"{quote_identifier(column.name)} {column.type}".rstrip(), comment))
            if table.primary_key:
                entries.append((f"PRIMARY KEY ({', '.join(quote_identifier(c) for c in table.primary_key)})", ""))
            for fk in self.foreign_keys:
                if fk.table == table.name:
                    reference = f"{quote_identifier(fk.ref_table)}({quote_identifier(fk.ref_column)})"
                    entries.append((f"FOREIGN KEY ({quote_identifier(fk.column)}) REFERENCES {reference}", ""))
            lines = [
                f"  {definition}{',' if i < len(entries) - 1 else ''}{'  -- ' + comment if comment else ''}"
                for i, (definition, comment) in enumerate(entries)
            ]
            blocks.append(f"CREATE TABLE {quote_identifier(table.name)} (\n" + "\n".join(lines) + "\n);")
        return "\n\n".join(blocks)


def read_tables_json(path: Path | str) -> dict[str, dict[str, Any]]:
    """The raw entries of a ``tables.json`` by ``db_id`` (the evaluator's parser builds its own schema)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path} not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetFormatError(path, f"not a JSON file: {err}") from None
    if not isinstance(data, list):
        raise DatasetFormatError(path, f"expected a JSON list of databases, found {type(data).__name__}")
    entries: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("db_id"), str):
            raise DatasetFormatError(path, "not an object with a string 'db_id'", index)
        if entry["db_id"] in entries:
            raise DatasetFormatError(path, f"duplicate db_id {entry['db_id']!r}", index)
        entries[entry["db_id"]] = entry
    return entries


def load_tables_json(path: Path | str) -> dict[str, DatabaseSchema]:
    """Every schema of a ``tables.json`` by ``db_id``; a malformed entry is a :class:`DatasetFormatError`."""
    schemas = {}
    for index, (db_id, entry) in enumerate(read_tables_json(path).items()):
        try:
            schemas[db_id] = DatabaseSchema.from_tables_json(entry)
        except ValueError as err:
            raise DatasetFormatError(path, str(err), index) from None
    return schemas


def find_tables_json(dataset: DatasetName, data_dir: Path | str) -> Path:
    """The ``tables.json`` of a dataset: beside its files, else directly in ``data_dir``."""
    for folder in (dataset_folder(dataset, data_dir), Path(data_dir)):
        if (folder / "tables.json").is_file():
            return folder / "tables.json"
    raise DatasetNotFoundError(f"tables.json not found in {dataset_folder(dataset, data_dir)} or {data_dir}")


def find_database_dir(dataset: DatasetName, data_dir: Path | str) -> Path:
    """The folder of ``<db_id>/<db_id>.sqlite`` files: ``data_dir/database``, else the dataset's own."""
    for folder in (Path(data_dir) / "database", dataset_folder(dataset, data_dir) / "database"):
        if folder.is_dir():
            return folder
    raise DatasetNotFoundError(f"no database folder in {data_dir} (expected {Path(data_dir) / 'database'})")


def resolve_database_path(db_dir: Path | str, db_id: str) -> Path:
    """Where the official layout keeps a database, ``db_dir/db_id/db_id.sqlite`` (existing or not); the one
    definition of that layout. A ``db_dir`` that is itself a file is the database of every ``db_id`` (one's own
    database, as ``mtsql chat`` uses it)."""
    if os.path.isfile(db_dir):
        return Path(db_dir)
    return Path(db_dir) / db_id / f"{db_id}.sqlite"


def missing_databases(db_dir: Path | str, db_ids: Iterable[str]) -> list[str]:
    """The sorted ids among ``db_ids`` whose SQLite file is not in ``db_dir``."""
    return sorted({db_id for db_id in db_ids if not resolve_database_path(db_dir, db_id).is_file()})


def sample_values(
    path: Path | str, schema: DatabaseSchema, per_column: int = 3, timeout: float = 1.0
) -> dict[tuple[str, str], list[Any]]:
    """A few distinct non-null values of every column, for prompts.

    Each column's query is interrupted after ``timeout`` seconds so a huge user table cannot stall prompt
    building; such columns (and unreadable ones) get no values. Blobs are left out.
    """
    values: dict[tuple[str, str], list[Any]] = {}
    deadline = 0.0
    with closing(_connect_read_only(Path(path))) as conn:
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        for table in schema.tables:
            for column in table.columns:
                deadline = time.monotonic() + timeout
                name, source = (
                    quote_identifier(column.name, always=True),
                    quote_identifier(table.name, always=True),
                )
                sql = f"SELECT DISTINCT {name} FROM {source} WHERE {name} IS NOT NULL LIMIT ?"
                try:
                    rows = conn.execute(sql, (per_column,)).fetchall()
                except sqlite3.Error:
                    continue
                found = [row[0] for row in rows if not isinstance(row[0], bytes)]
                if found:
                    values[(table.name, column.name)] = found
    return values


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = frozenset(
    {
        "all",
        "and",
        "as",
        "asc",
        "between",
        "by",
        "case",
        "check",
        "default",
        "desc",
        "distinct",
        "else",
        "end",
        "except",
        "foreign",
        "from",
        "group",
        "having",
        "in",
        "index",
        "intersect",
        "is",
        "join",
        "key",
        "like",
        "limit",
        "not",
        "null",
        "on",
        "or",
        "order",
        "primary",
        "references",
        "select",
        "table",
        "then",
        "to",
        "union",
        "values",
        "when",
        "where",
    }
)


def quote_identifier(name: str, *, always: bool = False) -> str:
    """``name`` as a SQL identifier: bare when that is unambiguous, else double-quoted."""
    if not always and _IDENTIFIER.fullmatch(name) and name.lower() not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def normalize_name(name: str) -> str:
    """A natural-language name for an identifier (``StuID`` -> ``stu id``), as ``tables.json`` provides."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return " ".join(re.sub(r"[_\s]+", " ", spaced).split()).lower()


def _from_tables_json(entry: Mapping[str, Any]) -> DatabaseSchema:
    table_names = list(entry["table_names_original"])
    normalized_tables = list(entry.get("table_names") or table_names)
    columns: list[list[Column]] = [[] for _ in table_names]
    owner: dict[int, tuple[int, str]] = {}
    normalized_columns = entry.get("column_names") or entry["column_names_original"]
    for index, ((table_index, name), (_, normalized), type_) in enumerate(
        zip(entry["column_names_original"], normalized_columns, entry["column_types"], strict=True)
    ):
        if table_index < 0:  # the ``*`` pseudo-column
            continue
        columns[table_index].append(Column(name, normalized, type_))
        owner[index] = (table_index, name)
    primary: list[list[str]] = [[] for _ in table_names]
    for key in entry.get("primary_keys", []):
        # Newer releases list a composite key as one nested list.
        for index in key if isinstance(key, list) else [key]:
            table_index, name = owner[index]
            primary[table_index].append(name)
    foreign_keys = []
    for child, parent in entry.get("foreign_keys", []):
        (child_table, child_column), (parent_table, parent_column) = owner[child], owner[parent]
        foreign_keys.append(
            ForeignKey(table_names[child_table], child_column, table_names[parent_table], parent_column)
        )
    tables = tuple(
        Table(name, normalized_tables[i], tuple(columns[i]), tuple(primary[i])) for i, name in enumerate(table_names)
    )
    return DatabaseSchema(str(entry["db_id"]), tables, tuple(foreign_keys))


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Open with no chance of writing: ``mode=ro``, plus ``immutable=1`` for a WAL database without a
    ``-wal`` file, where a read-only connection would otherwise create ``-wal``/``-shm`` files beside it."""
    if not path.is_file():
        raise FileNotFoundError(f"database file {path} not found")
    params = "mode=ro"
    if _is_wal(path):
        wal, shm = Path(f"{path}-wal").exists(), Path(f"{path}-shm").exists()
        if not wal:
            params += "&immutable=1"
        elif not shm:
            raise sqlite3.OperationalError(f"cannot open WAL database {path} read-only: it has a -wal but no -shm file")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?{params}", uri=True)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA trusted_schema = OFF")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _is_wal(path: Path) -> bool:
    """Whether the file header marks a WAL-mode database (read and write versions 2)."""
    with path.open("rb") as file:
        header = file.read(20)
    return len(header) == 20 and header.startswith(b"SQLite format 3\x00") and header[18:20] == b"\x02\x02"


def _from_connection(conn: sqlite3.Connection, db_id: str) -> DatabaseSchema:
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY rowid"
        )
    ]
    by_lower = {name.lower(): name for name in names}
    tables = []
    foreign_keys = []
    for name in names:
        try:
            info = conn.execute("SELECT name, type, pk FROM pragma_table_info(?)", (name,)).fetchall()
            fk_rows = conn.execute(
                'SELECT seq, "table", "from", "to" FROM pragma_foreign_key_list(?) ORDER BY id, seq', (name,)
            ).fetchall()
        except sqlite3.Error:  # e.g. a virtual table whose module this SQLite lacks
            info, fk_rows = [], []
        columns = tuple(Column(column, normalize_name(column), type_ or "") for column, type_, _ in info)
        primary_key = tuple(column for column, _, pk in sorted(info, key=lambda row: row[2]) if pk > 0)
        tables.append(Table(name, normalize_name(name), columns, primary_key))
        for seq, ref_table, column, ref_column in fk_rows:
            ref_table = by_lower.get(ref_table.lower(), ref_table)
            if ref_column is None:  # ``REFERENCES parent`` without columns means the parent's primary key
                ref_column = _primary_key_column(conn, ref_table, seq)
            if ref_column is not None:
                foreign_keys.append(ForeignKey(name, column, ref_table, ref_column))
    return DatabaseSchema(db_id, tuple(tables), tuple(foreign_keys))


def _primary_key_column(conn: sqlite3.Connection, table: str, seq: int) -> str | None:
    rows = conn.execute("SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", (table,)).fetchall()
    return rows[seq][0] if seq < len(rows) else None


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 30 else value[:27] + "..."
        return "'" + text.replace("'", "''").replace("\n", " ").replace("\r", " ") + "'"
    return str(value)
