"""The data layer: typed dialogues from SParC, CoSQL and Spider, database schemas, statistics and export.

Importing this package is cheap: the SQL parser, the executor and ``datasets`` are imported only by the
functions that use them.
"""

from mtsql.data.dialogue import DATASETS, DatasetName, Dialogue, Turn, dialogue_id
from mtsql.data.export import export_dialogues, to_hf_dataset
from mtsql.data.loaders import (
    EMPTY_PREDICTION,
    DatasetFormatError,
    DatasetFormatWarning,
    DatasetNotFoundError,
    GoldQuery,
    LoadResult,
    gold_sessions,
    load_dialogues,
    order_like_gold,
    read_dataset,
    read_dataset_file,
    read_gold_file,
    read_prediction_file,
    write_gold_file,
    write_prediction_file,
)
from mtsql.data.schema import (
    Column,
    DatabaseSchema,
    ForeignKey,
    Table,
    find_database_dir,
    find_tables_json,
    load_tables_json,
    missing_databases,
    read_tables_json,
    resolve_database_path,
    sample_values,
)
from mtsql.data.sources import DialogueSource, load_source
from mtsql.data.stats import DatasetStats, compute_stats

__all__ = [
    "DATASETS",
    "EMPTY_PREDICTION",
    "Column",
    "DatabaseSchema",
    "DatasetFormatError",
    "DatasetFormatWarning",
    "DatasetName",
    "DatasetNotFoundError",
    "DatasetStats",
    "Dialogue",
    "DialogueSource",
    "ForeignKey",
    "GoldQuery",
    "LoadResult",
    "Table",
    "Turn",
    "compute_stats",
    "dialogue_id",
    "export_dialogues",
    "find_database_dir",
    "find_tables_json",
    "gold_sessions",
    "load_dialogues",
    "load_source",
    "load_tables_json",
    "missing_databases",
    "order_like_gold",
    "read_dataset",
    "read_dataset_file",
    "read_gold_file",
    "read_prediction_file",
    "read_tables_json",
    "resolve_database_path",
    "sample_values",
    "to_hf_dataset",
    "write_gold_file",
    "write_prediction_file",
]
