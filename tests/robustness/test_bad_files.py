"""Bad input files, generated: a records file damaged anywhere is appended to or refused, never cut short; a
prediction file of any text is scored or refused with a clear error, never a crash; the database is unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtsql.data import DatasetFormatError, read_prediction_file
from mtsql.data.loaders import GoldQuery
from mtsql.eval.evaluator import EvalOptions, evaluate_turns
from mtsql.examples import load_example
from mtsql.rollout import RecordsFileError, read_finished, read_records

SETTINGS = {"model": "m", "backend": "b", "history_mode": "predicted", "max_steps": 4, "template_version": "v",
            "sampling": {}, "thinking": True}  # fmt: skip


def record(index: int) -> bytes:
    return (json.dumps({"id": f"d{index}#0", "prompt_ids": [1, 2], **SETTINGS}) + "\n").encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.integers(min_value=0, max_value=4),
    junk=st.binary(min_size=1, max_size=60),
    where=st.integers(min_value=0, max_value=4),
)
def test_a_damaged_records_file_is_appended_to_or_refused_never_cut(
    tmp_path: Path, records: int, junk: bytes, where: int
) -> None:
    lines = [record(i) for i in range(records)]
    where = min(where, len(lines))
    content = b"".join(lines[:where]) + junk + b"".join(lines[where:])
    path = tmp_path / "records.jsonl"
    path.write_bytes(content)
    try:
        ids, dropped = read_finished(path, SETTINGS)
    except RecordsFileError as err:
        assert "line" in str(err) or "settings" in str(err) or "episodes with" in str(err)
        assert path.read_bytes() == content  # refused: untouched
        return
    after = path.read_bytes()
    if dropped is None:
        assert after == content
    else:  # only a last line that began as a record, cut by a crash, may go
        assert content.startswith(after) and content[len(after) :].startswith(b'{"id": ')
        assert b"\n" not in content[len(after) :].rstrip(b"\n")
    assert {f"d{i}#0" for i in range(where)} <= ids <= {f"d{i}#0" for i in range(records)}
    assert {r["id"] for _, r in read_records(path)} == ids  # what was kept reads back, all of it


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory):
    return load_example("festival", root=tmp_path_factory.mktemp("examples"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_any_prediction_text_is_scored_or_refused_and_the_database_is_unchanged(
    example, tmp_path: Path, text: str
) -> None:
    database = next(Path(example.db_dir).glob("*/*.sqlite"))
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    path = tmp_path / "pred.txt"
    path.write_text(text, encoding="utf-8")
    try:
        preds = read_prediction_file(path)
    except DatasetFormatError:
        return
    gold = [[GoldQuery("SELECT name FROM stage", "festival")] * max(1, len(session)) for session in preds]
    options = EvalOptions(db_dir=example.db_dir, tables=example.tables, workers=1, timeout=2)
    try:
        results = evaluate_turns(gold, preds, options)
    except ValueError as err:  # sessions that do not pair up
        assert "sessions" in str(err) or "prediction" in str(err)
    else:
        for session in results:
            for turn in session:
                assert turn.exec in (0, 1) and (turn.exec == 1 or turn.exec_status)
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
