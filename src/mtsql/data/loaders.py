"""Loaders for SParC, CoSQL and Spider, and the official gold and prediction file formats.

Dataset files are untrusted input: a broken record is skipped, counted and reported (``strict=True`` raises
instead), so one bad line never ends a long run. A file that is missing or is not JSON at all is an error.

The gold/prediction session format is the one the official SParC/CoSQL evaluator reads: one SQL a line
(``SQL<TAB>db_id`` in gold files), sessions separated by a blank line; Spider files hold one question a line
and no separators. Readers here follow the official reader exactly: lines are split on ``\\n`` only, every
line is stripped, a whitespace-only line closes a session (so two in a row make an empty session), and a last
session without a trailing blank line still counts.
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtsql.data.dialogue import DATASETS, DatasetName, Dialogue, Turn, dialogue_id
from mtsql.errors import ConfigError, InputError, MtsqlError

DISPLAY_NAMES: dict[DatasetName, str] = {"sparc": "SParC", "cosql": "CoSQL", "spider": "Spider"}
HOMEPAGES: dict[DatasetName, str] = {
    "sparc": "https://yale-lily.github.io/sparc",
    "cosql": "https://yale-lily.github.io/cosql",
    "spider": "https://yale-lily.github.io/spider",
}

# Folders tried under ``data_dir``, in order: our layout (``data_dir/sparc``), the official release layouts,
# then ``data_dir`` itself (a user pointing straight at the folder holding the files).
_SUBFOLDERS: dict[DatasetName, tuple[str, ...]] = {
    "sparc": ("sparc",),
    "cosql": ("cosql", "cosql_dataset/sql_state_tracking"),
    "spider": ("spider", "spider_data"),
}

# Per split: the files that make it up, each as the accepted names for that file; a part marked optional
# (``train_others.json``) is read when present. CoSQL's official names carry a ``cosql_`` prefix.
_Part = tuple[tuple[str, ...], bool]
_SPLIT_FILES: dict[DatasetName, dict[str, tuple[_Part, ...]]] = {
    "sparc": {"train": ((("train.json",), True),), "dev": ((("dev.json",), True),)},
    "cosql": {
        "train": ((("cosql_train.json", "train.json"), True),),
        "dev": ((("cosql_dev.json", "dev.json"), True),),
    },
    "spider": {
        "train": ((("train_spider.json",), True), (("train_others.json",), False)),
        "dev": ((("dev.json",), True),),
        "test": ((("test.json",), True),),
    },
}

#: Written in place of an empty prediction. The official reader takes a blank line for a session separator
#: (SParC/CoSQL) or drops it (Spider), which would shift every later prediction onto the wrong gold query.
#: ``SELECT`` alone keeps the line, fails to parse (no exact match) and fails to execute (no execution match),
#: so an empty prediction is scored wrong, as it should be.
EMPTY_PREDICTION = "SELECT"


class DatasetFormatError(MtsqlError, ValueError):
    """A dataset or gold file, or one record of it, that does not have the expected format."""

    def __init__(self, path: Path | str, reason: str, index: int | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.index = index
        where = f"{self.path}" if index is None else f"{self.path}: record {index}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type[DatasetFormatError], tuple[Path, str, int | None]]:
        # Keeps the error picklable (worker processes); the default would pass the message alone.
        return type(self), (self.path, self.reason, self.index)


class DatasetNotFoundError(MtsqlError, FileNotFoundError):
    """A dataset file that is not in the data folder."""


class DatasetFormatWarning(UserWarning):
    """Broken records were skipped while loading a dataset."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Loaded dialogues, the records skipped as broken (one error each) and the files read."""

    dialogues: tuple[Dialogue, ...]
    skipped: tuple[DatasetFormatError, ...]
    files: tuple[Path, ...]


def splits(dataset: DatasetName) -> tuple[str, ...]:
    """The splits a dataset can be loaded with."""
    return tuple(_SPLIT_FILES[_check_dataset(dataset)])


def dataset_folder(dataset: DatasetName, data_dir: Path | str) -> Path:
    """The folder of a dataset's files: ``data_dir/<dataset>`` (or an official layout), else ``data_dir``."""
    data_dir = Path(data_dir)
    for sub in _SUBFOLDERS[_check_dataset(dataset)]:
        if (data_dir / sub).is_dir():
            return data_dir / sub
    return data_dir


def dataset_files(dataset: DatasetName, split: str, data_dir: Path | str) -> list[Path]:
    """The files of a split, in reading order; raises :class:`DatasetNotFoundError` naming what is missing."""
    parts = _split_parts(dataset, split)
    folder = dataset_folder(dataset, data_dir)
    files = []
    for names, required in parts:
        found = next((folder / name for name in names if (folder / name).is_file()), None)
        if found is not None:
            files.append(found)
        elif required:
            raise DatasetNotFoundError(_missing_message(dataset, split, names, folder))
    return files


def read_dataset(dataset: DatasetName, split: str, data_dir: Path | str, *, strict: bool = False) -> LoadResult:
    """Load a split with the records skipped as broken (``strict=True``: raise at the first one)."""
    dialogues: list[Dialogue] = []
    skipped: list[DatasetFormatError] = []
    files = dataset_files(dataset, split, data_dir)
    for path in files:
        # Positions run on across the files of a split (Spider's train_spider + train_others), as the
        # official train gold file concatenates them.
        result = read_dataset_file(path, dataset, split, first_position=len(dialogues) + len(skipped), strict=strict)
        dialogues.extend(result.dialogues)
        skipped.extend(result.skipped)
    return LoadResult(tuple(dialogues), tuple(skipped), tuple(files))


def load_dialogues(dataset: DatasetName, split: str, data_dir: Path | str, *, strict: bool = False) -> list[Dialogue]:
    """Load a split as dialogues; broken records are skipped with a :class:`DatasetFormatWarning`."""
    result = read_dataset(dataset, split, data_dir, strict=strict)
    if result.skipped:
        warnings.warn(_skipped_message(result), DatasetFormatWarning, stacklevel=2)
    return list(result.dialogues)


def read_dataset_file(
    path: Path | str,
    dataset: DatasetName,
    split: str,
    *,
    first_position: int = 0,
    strict: bool = False,
) -> LoadResult:
    """Load one file in a dataset's official format (a user's own file too)."""
    path = Path(path)
    records = _read_json_list(path)
    parse = _spider_record if _check_dataset(dataset) == "spider" else _interaction_record
    dialogues: list[Dialogue] = []
    skipped: list[DatasetFormatError] = []
    for index, record in enumerate(records):
        position = first_position + index
        try:
            dialogues.append(parse(record, dataset, split, position))
        except _BadRecord as bad:
            error = DatasetFormatError(path, str(bad), index)
            if strict:
                raise error from None
            skipped.append(error)
    return LoadResult(tuple(dialogues), tuple(skipped), (path,))


class _BadRecord(Exception):
    """Why one record cannot be loaded; becomes a :class:`DatasetFormatError` with the file and index."""


def _check_dataset(dataset: str) -> DatasetName:
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    return dataset  # type: ignore[return-value]


def _split_parts(dataset: DatasetName, split: str) -> tuple[_Part, ...]:
    by_split = _SPLIT_FILES[_check_dataset(dataset)]
    if split not in by_split:
        raise ConfigError(f"unknown {DISPLAY_NAMES[dataset]} split {split!r}: expected one of {', '.join(by_split)}")
    return by_split[split]


def _missing_message(dataset: DatasetName, split: str, names: tuple[str, ...], folder: Path) -> str:
    name = DISPLAY_NAMES[dataset]
    wanted = " or ".join(names)
    if split == "train" and dataset in ("sparc", "cosql"):
        why = f"the official train set is not distributed here, see {HOMEPAGES[dataset]}"
    else:
        why = f"download the official release from {HOMEPAGES[dataset]}"
    return f"{name} {wanted} not found in {folder}: {why}"


def _skipped_message(result: LoadResult) -> str:
    total = len(result.dialogues) + len(result.skipped)
    shown = "; ".join(str(error) for error in result.skipped[:3])
    more = f" (and {len(result.skipped) - 3} more)" if len(result.skipped) > 3 else ""
    return f"skipped {len(result.skipped)} of {total} broken records: {shown}{more}"


def _read_json_list(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path} not found") from None
    except UnicodeDecodeError as err:
        raise DatasetFormatError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetFormatError(path, f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    if not isinstance(data, list):
        raise DatasetFormatError(path, f"expected a JSON list of records, found {type(data).__name__}")
    return data


def _field(record: dict[str, Any], key: str, where: str = "") -> str:
    value = record.get(key)
    if not isinstance(value, str):
        found = "missing" if key not in record else f"a {type(value).__name__}, not a string"
        raise _BadRecord(f"{where}key {key!r} is {found}")
    return value


def _object(record: Any, what: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise _BadRecord(f"{what} is a {type(record).__name__}, not an object")
    return record


def _sql(record: dict[str, Any]) -> dict[str, Any] | None:
    value = record.get("sql")
    return value if isinstance(value, dict) else None


def _interaction_record(record: Any, dataset: DatasetName, split: str, position: int) -> Dialogue:
    record = _object(record, "record")
    db_id = _field(record, "database_id")
    interaction = record.get("interaction")
    if not isinstance(interaction, list):
        raise _BadRecord("key 'interaction' is missing or not a list")
    if not interaction:
        raise _BadRecord("empty interaction (no turns)")
    turns = []
    for index, raw in enumerate(interaction):
        where = f"turn {index}: "
        turn = _object(raw, f"turn {index}")
        turns.append(Turn(index, _field(turn, "utterance", where), _field(turn, "query", where), _sql(turn)))
    final = record.get("final")
    final = final if isinstance(final, dict) else {}
    final_utterance = final.get("utterance")
    final_query = final.get("query")
    return Dialogue(
        id=dialogue_id(dataset, split, position),
        dataset=dataset,
        split=split,
        position=position,
        db_id=db_id,
        turns=tuple(turns),
        final_utterance=final_utterance if isinstance(final_utterance, str) else None,
        final_query=final_query if isinstance(final_query, str) else None,
    )


def _spider_record(record: Any, dataset: DatasetName, split: str, position: int) -> Dialogue:
    record = _object(record, "record")
    turn = Turn(0, _field(record, "question"), _field(record, "query"), _sql(record))
    return Dialogue(
        id=dialogue_id(dataset, split, position),
        dataset=dataset,
        split=split,
        position=position,
        db_id=_field(record, "db_id"),
        turns=(turn,),
    )


# --- official gold and prediction files -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GoldQuery:
    """One line of a gold file."""

    query: str
    db_id: str


def sql_line(sql: str) -> str:
    """A SQL string as one line of a gold or prediction file.

    Line breaks and tabs become spaces (the official reader splits lines on newlines and fields on tabs);
    other spacing is kept, since it may sit inside a string literal. An empty query becomes
    :data:`EMPTY_PREDICTION`.
    """
    line = sql.translate(_LINE_BREAKS).strip()
    return line or EMPTY_PREDICTION


_LINE_BREAKS = str.maketrans({"\r": " ", "\n": " ", "\t": " "})


def read_gold_file(path: Path | str, *, single_turn: bool = False) -> list[list[GoldQuery]]:
    """Read a gold file into sessions of ``(query, db_id)``, as the official evaluator does.

    ``single_turn=True`` reads a Spider gold file: every line is a session of its own, blank lines are
    ignored.
    """
    path = Path(path)
    sessions = []
    for session in _read_sessions(path, single_turn):
        gold = []
        for number, line in session:
            fields = line.split("\t")
            if len(fields) != 2:
                raise DatasetFormatError(
                    path,
                    f"line {number}: expected 'SQL<TAB>db_id', found {len(fields)} tab-separated field(s)",
                )
            gold.append(GoldQuery(fields[0], fields[1]))
        sessions.append(gold)
    return sessions


def read_prediction_file(path: Path | str, *, single_turn: bool = False) -> list[list[str]]:
    """Read a prediction file into sessions of SQL strings (text after a tab is ignored, as officially)."""
    return [[line.split("\t")[0] for _, line in session] for session in _read_sessions(Path(path), single_turn)]


def gold_sessions(dialogues: Iterable[Dialogue]) -> list[list[GoldQuery]]:
    """The gold file content of dialogues: their turns' queries, one session per dialogue."""
    return [[GoldQuery(turn.query, dialogue.db_id) for turn in dialogue.turns] for dialogue in dialogues]


def write_gold_file(path: Path | str, sessions: Iterable[Sequence[GoldQuery]], *, single_turn: bool = False) -> None:
    """Write a gold file (``SQL<TAB>db_id`` lines) that the official reader reads back."""
    _write_sessions(
        path,
        ([f"{sql_line(gold.query)}\t{gold.db_id}" for gold in session] for session in sessions),
        single_turn,
    )


def write_prediction_file(path: Path | str, sessions: Iterable[Sequence[str]], *, single_turn: bool = False) -> None:
    """Write per-turn predictions in the official format, one session per dialogue.

    Every session ends with a blank line, including the last: the original SParC reader drops a last session
    that has none. Empty predictions are written as :data:`EMPTY_PREDICTION` so no line goes missing.
    ``single_turn=True`` writes a Spider file: one prediction a line, no separators.
    """
    _write_sessions(path, ([sql_line(sql) for sql in session] for session in sessions), single_turn)


def order_like_gold(dialogues: Iterable[Dialogue], gold: Sequence[Sequence[GoldQuery]]) -> list[Dialogue]:
    """The dialogues in the order of a gold file's sessions, matched by database and queries.

    The official evaluator pairs predictions with gold sessions by position, and a gold file need not follow
    the dataset file: CoSQL's ``dev_gold.txt`` groups dialogues by database. Queries are compared modulo
    whitespace; identical dialogues are assigned in their original order. Raises ``ValueError`` when a gold
    session matches no remaining dialogue.
    """
    pool: dict[tuple[str, tuple[str, ...]], deque[Dialogue]] = defaultdict(deque)
    for dialogue in dialogues:
        pool[(dialogue.db_id, tuple(_squash(turn.query) for turn in dialogue.turns))].append(dialogue)
    ordered = []
    for index, session in enumerate(gold):
        db_ids = {g.db_id for g in session}
        key = (next(iter(db_ids)) if len(db_ids) == 1 else "", tuple(_squash(g.query) for g in session))
        if not pool.get(key):
            first = session[0].db_id if session else "no turns"
            raise InputError(f"gold session {index} ({first}, {len(session)} turns) matches no dialogue")
        ordered.append(pool[key].popleft())
    return ordered


def _squash(sql: str) -> str:
    return " ".join(sql.split())


def _read_sessions(path: Path, single_turn: bool) -> list[list[tuple[int, str]]]:
    """Stripped lines with their 1-based numbers, grouped into sessions as the official reader groups them."""
    try:
        with path.open(encoding="utf-8-sig") as file:  # a byte-order mark (Windows editors) is not SQL
            lines = list(file)
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path} not found") from None
    except UnicodeDecodeError as err:
        raise DatasetFormatError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    if single_turn:
        return [[(number, line.strip())] for number, line in enumerate(lines, start=1) if line.strip()]
    sessions: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            current.append((number, line.strip()))
        else:
            sessions.append(current)
            current = []
    if current:
        sessions.append(current)
    return sessions


def _write_sessions(path: Path | str, sessions: Iterable[Sequence[str]], single_turn: bool) -> None:
    with Path(path).open("w", encoding="utf-8", newline="\n") as file:
        for session in sessions:
            for line in session:
                file.write(line + "\n")
            if not single_turn:
                file.write("\n")
