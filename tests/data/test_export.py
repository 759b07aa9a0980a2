from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from mtsql.data import export_dialogues, load_dialogues, to_hf_dataset
from mtsql.data.export import dialogue_rows, features, turn_rows


@pytest.fixture
def dialogues(sparc_dir: Path):
    return load_dialogues("sparc", "dev", sparc_dir)


def test_turn_rows_carry_the_history(dialogues) -> None:
    rows = turn_rows(dialogues)
    assert len(rows) == 5
    third = rows[4]
    assert third["id"] == "sparc/dev/0001/2"
    assert (third["dialogue_id"], third["db_id"], third["turn_index"], third["position"]) == (
        "sparc/dev/0001",
        "pets_1",
        2,
        1,
    )
    assert third["previous_utterances"] == ["¿Cuántas mascotas hay en 東京?", "And their weights?"]
    assert third["previous_queries"] == ["SELECT count(*) FROM pets", "SELECT weight\nFROM pets"]
    assert rows[0]["previous_queries"] == []
    assert "hardness" not in third


def test_dialogue_rows_nest_turns(dialogues) -> None:
    rows = dialogue_rows(dialogues, hardness={("sparc/dev/0000", 0): "easy"})
    assert rows[0]["turns"][0] == {
        "index": 0,
        "utterance": "How many singers are there?",
        "query": "SELECT count(*) FROM singer",
        "hardness": "easy",
    }
    assert rows[0]["turns"][1]["hardness"] is None
    assert rows[1]["final_query"] is None


@pytest.mark.parametrize("unit", ["turn", "dialogue"])
def test_hf_dataset_has_fixed_features(dialogues, unit: str) -> None:
    dataset = to_hf_dataset(dialogues, unit=unit)  # type: ignore[arg-type]
    assert dataset.features == features(unit)  # type: ignore[arg-type]
    assert dataset.to_list() == (turn_rows(dialogues) if unit == "turn" else dialogue_rows(dialogues))


@pytest.mark.parametrize("unit", ["turn", "dialogue"])
@pytest.mark.parametrize(("fmt", "loader"), [("jsonl", "json"), ("parquet", "parquet")])
def test_files_round_trip_through_load_dataset(dialogues, tmp_path: Path, unit: str, fmt: str, loader: str) -> None:
    hardness = {(d.id, t.index): "medium" for d in dialogues for t in d.turns}
    out = tmp_path / "out" / f"data.{fmt}"
    rows = export_dialogues(dialogues, out, fmt=fmt, unit=unit, hardness=hardness)  # type: ignore[arg-type]
    expected = to_hf_dataset(dialogues, unit=unit, hardness=hardness)  # type: ignore[arg-type]
    assert rows == len(expected)
    loaded = datasets.load_dataset(loader, data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.to_list() == expected.to_list()
    if fmt == "parquet":
        assert loaded.features == expected.features


def test_jsonl_is_readable_utf8(dialogues, tmp_path: Path) -> None:
    out = tmp_path / "turns.jsonl"
    export_dialogues(dialogues, out, fmt="jsonl")
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5
    assert "東京" in lines[2] and json.loads(lines[2])["utterance"] == "¿Cuántas mascotas hay en 東京?"


def test_unknown_format_and_unit(dialogues, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        export_dialogues(dialogues, tmp_path / "x", fmt="csv")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown export unit 'word'"):
        export_dialogues(dialogues, tmp_path / "x", fmt="jsonl", unit="word")  # type: ignore[arg-type]
