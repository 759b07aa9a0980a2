"""Examples written for mtsql (no benchmark data): a small database with its dialogues, gold and predictions.

The database ships as SQL text and is built into a folder laid out like the benchmarks' (``<db_id>/<db_id>.sqlite``)
on first use, so the evaluator, the environment and the demo run on a fresh machine with nothing downloaded.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mtsql.data.schema import resolve_database_path
from mtsql.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Example:
    name: str
    db_dir: Path
    """Folder holding ``<db_id>/<db_id>.sqlite``, as ``--db`` expects."""
    tables: Path
    dialogues: Path
    """SParC-format dialogues (``database_id``, ``interaction[{utterance, query}]``)."""
    gold: Path
    predictions: Path


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mtsql" / "examples"


def load_example(name: str = "festival", root: Path | None = None) -> Example:
    """Build the example's database (once) and return the paths of its files."""
    source = resources.files("mtsql.examples") / name
    if not source.is_dir():
        raise ConfigError(f"unknown example {name!r}")
    target = (root or _cache_root()) / name
    db_file = resolve_database_path(target / "database", name)
    script = (source / f"{name}.sql").read_text(encoding="utf-8")
    stamp = target / "database" / name / ".source"
    if not db_file.is_file() or not stamp.is_file() or stamp.read_text(encoding="utf-8") != script:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        # Build beside the target and rename, so concurrent users never see a half-written database.
        with tempfile.NamedTemporaryFile(dir=db_file.parent, suffix=".tmp", delete=False) as tmp:
            tmp_path = Path(tmp.name)
        try:
            with sqlite3.connect(tmp_path) as conn:
                conn.executescript(script)
            conn.close()
            os.replace(tmp_path, db_file)
        finally:
            tmp_path.unlink(missing_ok=True)
        stamp.write_text(script, encoding="utf-8")
    files = {}
    for key, filename in (("tables", "tables.json"), ("dialogues", "dialogues.json"), ("gold", "gold.txt"),
                          ("predictions", "predictions.txt")):  # fmt: skip
        path = target / filename
        data = (source / filename).read_text(encoding="utf-8")
        if not path.is_file() or path.read_text(encoding="utf-8") != data:
            path.write_text(data, encoding="utf-8")
        files[key] = path
    return Example(name=name, db_dir=target / "database", **files)
