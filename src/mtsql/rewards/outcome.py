"""The foreign-key map of a database that has no ``tables.json`` entry, for the outcome reward's exact match.

The outcome itself (EX and EM of a question's final SQL) is :func:`mtsql.eval.turn.score_turn`, the evaluator's
own per-turn step, so a reward's verdicts are exactly those of ``mtsql evaluate``.
"""

from __future__ import annotations

import os

from mtsql.eval.exact_match import build_foreign_key_map


def sqlite_foreign_key_map(db_file: str | os.PathLike[str]) -> dict[str, str]:
    """The foreign-key map of a database built from the SQLite file's own foreign keys.

    A stand-in for the ``tables.json`` map when none is given: the official groups its foreign keys the same
    way, so the two agree wherever the file declares the keys ``tables.json`` lists (pass ``tables.json``
    for verdicts identical to ``mtsql evaluate --table``).
    """
    from mtsql.data.schema import DatabaseSchema

    schema = DatabaseSchema.from_sqlite(db_file)
    columns: list[tuple[int, str]] = [(-1, "*")]
    index: dict[tuple[str, str], int] = {}
    for table_index, table in enumerate(schema.tables):
        for column in table.columns:
            index[(table.name.lower(), column.name.lower())] = len(columns)
            columns.append((table_index, column.name))
    keys = [
        [index[(fk.table.lower(), fk.column.lower())], index[(fk.ref_table.lower(), fk.ref_column.lower())]]
        for fk in schema.foreign_keys
        if (fk.table.lower(), fk.column.lower()) in index and (fk.ref_table.lower(), fk.ref_column.lower()) in index
    ]
    entry = {
        "table_names_original": [table.name for table in schema.tables],
        "column_names_original": columns,
        "foreign_keys": keys,
    }
    return build_foreign_key_map(entry)
