from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from mtsql.data import (
    Column,
    DatabaseSchema,
    DatasetFormatError,
    ForeignKey,
    load_tables_json,
    missing_databases,
    read_tables_json,
    resolve_database_path,
    sample_values,
)
from mtsql.data.schema import normalize_name, quote_identifier

DDL = """
CREATE TABLE Artist (ArtistId INTEGER PRIMARY KEY AUTOINCREMENT, Name VARCHAR(120) NOT NULL, Photo BLOB);
CREATE TABLE "my table" (
    "order" TEXT, "we""ird" REAL, artist INT, year INTEGER,
    PRIMARY KEY ("order", year),
    FOREIGN KEY (artist) REFERENCES artist(ArtistId)
);
CREATE TABLE child (
    id INTEGER PRIMARY KEY, o TEXT, y INTEGER, a INTEGER REFERENCES Artist, untyped,
    FOREIGN KEY (o, y) REFERENCES "my table"("order", year)
);
INSERT INTO Artist (Name, Photo) VALUES
    ('AC/DC', x'00'), ('Ünïcode ''quoted''', NULL), ('AC/DC', NULL), ('X', NULL);
INSERT INTO "my table" VALUES ('first', 1.5, 1, 2001);
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = resolve_database_path(tmp_path / "database", "music")
    path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(DDL)
        conn.commit()
    return path


def test_schema_from_sqlite(db_path: Path) -> None:
    schema = DatabaseSchema.from_sqlite(db_path)
    assert schema.db_id == "music"
    assert [t.name for t in schema.tables] == ["Artist", "my table", "child"]  # no sqlite_sequence
    artist = schema.table("artist")
    assert artist.columns == (
        Column("ArtistId", "artist id", "INTEGER"),
        Column("Name", "name", "VARCHAR(120)"),
        Column("Photo", "photo", "BLOB"),
    )
    assert artist.primary_key == ("ArtistId",)
    odd = schema.table("MY TABLE")
    assert [c.name for c in odd.columns] == ["order", 'we"ird', "artist", "year"]
    assert odd.primary_key == ("order", "year")
    assert schema.table("child").column("UNTYPED").type == ""
    assert set(schema.foreign_keys) == {
        ForeignKey("my table", "artist", "Artist", "ArtistId"),  # the referenced name resolved to its case
        ForeignKey("child", "o", "my table", "order"),
        ForeignKey("child", "y", "my table", "year"),
        ForeignKey("child", "a", "Artist", "ArtistId"),  # REFERENCES without columns: the parent's key
    }
    with pytest.raises(KeyError, match="no table 'nope'"):
        schema.table("nope")


def test_reading_never_modifies_or_creates_files(db_path: Path, tmp_path: Path) -> None:
    before = hashlib.sha256(db_path.read_bytes()).hexdigest(), db_path.stat().st_mtime_ns
    schema = DatabaseSchema.from_sqlite(db_path)
    sample_values(db_path, schema)
    assert (hashlib.sha256(db_path.read_bytes()).hexdigest(), db_path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in db_path.parent.iterdir()) == ["music.sqlite"]
    missing = tmp_path / "nothing.sqlite"
    with pytest.raises(FileNotFoundError, match=r"nothing\.sqlite not found"):
        DatabaseSchema.from_sqlite(missing)
    assert not missing.exists()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_text("not sqlite at all, just text long enough to be read as a header ......", encoding="utf-8")
    with pytest.raises(sqlite3.DatabaseError):
        DatabaseSchema.from_sqlite(path)


def test_render_is_valid_sql_recreating_the_schema(db_path: Path) -> None:
    schema = DatabaseSchema.from_sqlite(db_path)
    text = schema.render(sample_values(db_path, schema, per_column=2))
    assert 'CREATE TABLE "my table" (' in text
    assert '  "order" TEXT,' in text and '  "we""ird" REAL,  -- e.g. 1.5' in text
    assert "  Name VARCHAR(120),  -- e.g. 'AC/DC', 'Ünïcode ''quoted'''" in text
    assert '  PRIMARY KEY ("order", year),' in text
    assert '  FOREIGN KEY (o) REFERENCES "my table"("order")' in text
    assert "Photo BLOB,\n" in text  # blobs give no example values
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.executescript(text)
        rebuilt = [
            (row[0], [c[1] for c in conn.execute("SELECT * FROM pragma_table_info(?)", row)])
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
    assert rebuilt == [(t.name, [c.name for c in t.columns]) for t in schema.tables]


def test_sample_values_are_distinct_and_limited(db_path: Path) -> None:
    schema = DatabaseSchema.from_sqlite(db_path)
    values = sample_values(db_path, schema, per_column=2)
    assert values[("Artist", "Name")] == ["AC/DC", "Ünïcode 'quoted'"]
    assert ("Artist", "Photo") not in values
    assert ("child", "id") not in values  # empty table


TABLES_ENTRY = {
    "db_id": "shop",
    "table_names_original": ["Customer", "Orders"],
    "table_names": ["customer", "orders"],
    "column_names_original": [
        [-1, "*"],
        [0, "Id"],
        [0, "Name"],
        [1, "OrderId"],
        [1, "CustomerId"],
        [1, "Line"],
    ],
    "column_names": [[-1, "*"], [0, "id"], [0, "name"], [1, "order id"], [1, "customer id"], [1, "line"]],
    "column_types": ["text", "number", "text", "number", "number", "number"],
    "primary_keys": [1, [3, 5]],
    "foreign_keys": [[4, 1]],
}


def test_schema_from_tables_json_entry() -> None:
    schema = DatabaseSchema.from_tables_json(TABLES_ENTRY)
    assert [(t.name, t.normalized_name) for t in schema.tables] == [
        ("Customer", "customer"),
        ("Orders", "orders"),
    ]
    assert schema.table("orders").columns[1] == Column("CustomerId", "customer id", "number")
    assert schema.table("Orders").primary_key == ("OrderId", "Line")  # a nested composite key
    assert schema.foreign_keys == (ForeignKey("Orders", "CustomerId", "Customer", "Id"),)
    assert "FOREIGN KEY (CustomerId) REFERENCES Customer(Id)" in schema.render()


def test_malformed_tables_json_entry() -> None:
    entry = {**TABLES_ENTRY, "column_types": ["text"]}
    with pytest.raises(ValueError, match=r"malformed tables\.json entry 'shop'"):
        DatabaseSchema.from_tables_json(entry)


def test_tables_json_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "tables.json"
    path.write_text(json.dumps([TABLES_ENTRY, TABLES_ENTRY]), encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="record 1: duplicate db_id 'shop'"):
        read_tables_json(path)
    path.write_text(json.dumps([TABLES_ENTRY, {**TABLES_ENTRY, "db_id": "bad", "foreign_keys": [[99, 1]]}]))
    with pytest.raises(DatasetFormatError, match=r"record 1: malformed tables\.json entry 'bad'"):
        load_tables_json(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="not a JSON file"):
        read_tables_json(path)


def test_database_paths(tmp_path: Path, db_path: Path) -> None:
    db_dir = db_path.parent.parent
    assert resolve_database_path(db_dir, "music") == db_path
    assert missing_databases(db_dir, ["music", "zoo", "abc", "zoo"]) == ["abc", "zoo"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("StuID", "stu id"), ("first_name", "first name"), ("Home Town", "home town"), ("ID", "id")],
)
def test_normalize_name(name: str, expected: str) -> None:
    assert normalize_name(name) == expected


def test_quote_identifier() -> None:
    assert quote_identifier("name") == "name"
    assert quote_identifier("Order") == '"Order"'
    assert quote_identifier('a"b c') == '"a""b c"'
    assert quote_identifier("x", always=True) == '"x"'


def test_wal_database_is_read_without_creating_side_files(tmp_path: Path) -> None:
    path = tmp_path / "wal.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (a INT)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wal.sqlite"]  # checkpointed on close
    schema = DatabaseSchema.from_sqlite(path)
    assert sample_values(path, schema) == {("t", "a"): [1]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wal.sqlite"]
