"""The official gold and prediction file formats, read exactly as the official evaluator reads them.

Gold: ``SQL<TAB>db_id`` a line. Predictions: one SQL a line; text after a tab is ignored. Sessions (SParC and
CoSQL interactions) are separated by blank lines, and a last session without a trailing blank line still counts.
Every line is stripped, so a line holding only whitespace is a separator, and several blank lines in a row make
empty sessions (which the official evaluator counts as sessions with no turns).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class EvalFileError(ValueError):
    """A gold or prediction file that cannot be read as the official format."""


@dataclass(frozen=True, slots=True)
class GoldTurn:
    sql: str
    db_id: str


def _sessions(path: Path) -> list[list[tuple[int, str]]]:
    """Split a file into sessions of ``(line number, stripped line)``."""
    sessions: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise EvalFileError(f"cannot read {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise EvalFileError(f"{path} is not UTF-8 text: {err}") from err
    # splitlines() would also split on form feeds and other separators that readlines() keeps.
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if stripped:
            current.append((number, stripped))
        elif number <= text.count("\n"):
            sessions.append(current)
            current = []
    if current:
        sessions.append(current)
    return sessions


def read_gold(path: Path) -> list[list[GoldTurn]]:
    sessions = []
    for session in _sessions(path):
        turns = []
        for number, line in session:
            fields = line.split("\t")
            if len(fields) != 2:
                raise EvalFileError(
                    f"{path}:{number}: expected 'SQL<TAB>db_id', found {len(fields)} tab-separated field(s)"
                )
            turns.append(GoldTurn(sql=fields[0], db_id=fields[1]))
        sessions.append(turns)
    return sessions


def read_predictions(path: Path) -> list[list[str]]:
    return [[line.split("\t")[0] for _, line in session] for session in _sessions(path)]
