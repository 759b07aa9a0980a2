from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from mtsql.data import (
    DatasetFormatError,
    DatasetFormatWarning,
    DatasetNotFoundError,
    Dialogue,
    Turn,
    load_dialogues,
    read_dataset,
)
from mtsql.data.loaders import dataset_files, splits


def test_sparc_dev_loads_typed_dialogues(sparc_dir: Path) -> None:
    dialogues = load_dialogues("sparc", "dev", sparc_dir)
    assert [d.id for d in dialogues] == ["sparc/dev/0000", "sparc/dev/0001"]
    first, second = dialogues
    assert isinstance(first, Dialogue) and isinstance(first.turns[0], Turn)
    assert (first.db_id, first.position, first.dataset, first.split) == ("concert_singer", 0, "sparc", "dev")
    assert [t.index for t in second.turns] == [0, 1, 2]
    assert second.turns[0].utterance == "¿Cuántas mascotas hay en 東京?"
    assert second.turns[1].query == "SELECT weight\nFROM pets"  # kept exactly as in the file
    assert first.final_query == "SELECT name FROM singer WHERE country = 'France'"
    assert second.final_utterance is None
    assert first.turns[0].sql == {"select": [False, []]}
    assert second.history(2) == second.turns[:2]
    assert len(second) == 3


def test_dialogues_are_frozen_and_hashable(sparc_dir: Path) -> None:
    dialogue = load_dialogues("sparc", "dev", sparc_dir)[0]
    with pytest.raises(AttributeError):
        dialogue.db_id = "other"  # type: ignore[misc]
    assert len({dialogue, dialogue}) == 1


def test_data_dir_may_be_the_dataset_folder_itself(sparc_dir: Path) -> None:
    assert len(load_dialogues("sparc", "dev", sparc_dir / "sparc")) == 2


@pytest.mark.parametrize("name", ["cosql_dev.json", "dev.json"])
def test_cosql_accepts_official_and_short_names(tmp_path: Path, name: str, interaction, write_json) -> None:
    write_json(tmp_path / "cosql" / name, [interaction("car_1", ("How many cars?", "SELECT count(*) FROM cars"))])
    [dialogue] = load_dialogues("cosql", "dev", tmp_path)
    assert dialogue.id == "cosql/dev/0000"


def test_cosql_official_name_wins(tmp_path: Path, interaction, write_json) -> None:
    write_json(tmp_path / "cosql" / "cosql_dev.json", [interaction("a", ("q", "SELECT 1"))])
    write_json(tmp_path / "cosql" / "dev.json", [interaction("b", ("q", "SELECT 1"))])
    assert [d.db_id for d in load_dialogues("cosql", "dev", tmp_path)] == ["a"]


def test_spider_questions_become_one_turn_dialogues_across_train_files(tmp_path: Path, write_json) -> None:
    def question(i: int) -> dict[str, object]:
        return {"db_id": f"db{i}", "question": f"q{i}?", "query": f"SELECT {i}", "sql": {}}

    write_json(tmp_path / "spider" / "train_spider.json", [question(0), question(1)])
    write_json(tmp_path / "spider" / "train_others.json", [question(2)])
    dialogues = load_dialogues("spider", "train", tmp_path)
    assert [d.id for d in dialogues] == ["spider/train/0000", "spider/train/0001", "spider/train/0002"]
    assert dialogues[2].turns == (Turn(0, "q2?", "SELECT 2", {}),)
    assert dialogues[2].final_query is None


def test_spider_train_others_is_optional(tmp_path: Path, write_json) -> None:
    write_json(tmp_path / "spider" / "train_spider.json", [{"db_id": "d", "question": "q", "query": "SELECT 1"}])
    assert dataset_files("spider", "train", tmp_path) == [tmp_path / "spider" / "train_spider.json"]


def test_missing_train_set_says_it_is_not_distributed(sparc_dir: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dialogues("sparc", "train", sparc_dir)
    message = str(info.value)
    assert message.startswith(f"SParC train.json not found in {sparc_dir / 'sparc'}")
    assert "not distributed here" in message and "yale-lily.github.io/sparc" in message


def test_missing_cosql_file_names_both_accepted_names(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cosql_train\.json or train\.json"):
        load_dialogues("cosql", "train", tmp_path)


def test_unknown_dataset_and_split() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dialogues("wikisql", "dev", ".")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected one of train, dev"):
        load_dialogues("sparc", "test", ".")
    assert splits("spider") == ("train", "dev", "test")


def test_invalid_json_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "sparc" / "dev.json"
    path.parent.mkdir()
    path.write_text('[{"database_id": "x",\n "interaction": [}', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"dev\.json: invalid JSON at line 2 column") as info:
        load_dialogues("sparc", "dev", tmp_path)
    assert info.value.path == path and info.value.index is None


def test_top_level_must_be_a_list(tmp_path: Path, write_json) -> None:
    write_json(tmp_path / "sparc" / "dev.json", {"database_id": "x"})
    with pytest.raises(DatasetFormatError, match="expected a JSON list of records, found dict"):
        load_dialogues("sparc", "dev", tmp_path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "sparc" / "dev.json"
    path.parent.mkdir()
    path.write_bytes(b'[{"database_id": "\xff"}]')
    with pytest.raises(DatasetFormatError, match="not UTF-8"):
        load_dialogues("sparc", "dev", tmp_path)


def test_utf8_bom_is_accepted(tmp_path: Path, interaction) -> None:
    path = tmp_path / "sparc" / "dev.json"
    path.parent.mkdir()
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([interaction("x", ("q", "SELECT 1"))]).encode())
    assert len(load_dialogues("sparc", "dev", tmp_path)) == 1


BROKEN = [
    {"database_id": "ok", "interaction": [{"utterance": "q", "query": "SELECT 1"}]},
    {"database_id": "x", "interaction": []},
    {"database_id": "x", "interaction": [{"utterance": "q"}]},
    "not an object",
    {"interaction": [{"utterance": "q", "query": "SELECT 1"}]},
    {"database_id": "x", "interaction": [{"utterance": "q", "query": 3}]},
    {"database_id": "x", "interaction": ["turn"]},
    {"database_id": "x"},
    {"database_id": "ok2", "interaction": [{"utterance": "q", "query": "SELECT 2"}], "final": "junk"},
]


def test_broken_records_are_skipped_counted_and_reported(tmp_path: Path, write_json) -> None:
    path = write_json(tmp_path / "sparc" / "dev.json", BROKEN)
    result = read_dataset("sparc", "dev", tmp_path)
    # Good records keep the id of their position in the file, whatever was skipped before them.
    assert [d.id for d in result.dialogues] == ["sparc/dev/0000", "sparc/dev/0008"]
    assert result.dialogues[1].final_query is None
    reasons = {error.index: error.reason for error in result.skipped}
    assert reasons == {
        1: "empty interaction (no turns)",
        2: "turn 0: key 'query' is missing",
        3: "record is a str, not an object",
        4: "key 'database_id' is missing",
        5: "turn 0: key 'query' is a int, not a string",
        6: "turn 0 is a str, not an object",
        7: "key 'interaction' is missing or not a list",
    }
    assert str(result.skipped[0]) == f"{path}: record 1: empty interaction (no turns)"
    assert result.files == (path,)


def test_load_dialogues_warns_about_skipped_records(tmp_path: Path, write_json) -> None:
    write_json(tmp_path / "sparc" / "dev.json", BROKEN)
    with pytest.warns(DatasetFormatWarning, match=r"skipped 7 of 9 broken records: .*record 1: empty"):
        assert len(load_dialogues("sparc", "dev", tmp_path)) == 2


def test_skipped_record_errors_pickle(tmp_path: Path, write_json) -> None:
    write_json(tmp_path / "sparc" / "dev.json", BROKEN)
    error = read_dataset("sparc", "dev", tmp_path).skipped[0]
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.path, copy.index, copy.reason) == (str(error), error.path, 1, error.reason)


def test_strict_raises_at_first_broken_record(tmp_path: Path, write_json) -> None:
    write_json(tmp_path / "sparc" / "dev.json", BROKEN)
    with pytest.raises(DatasetFormatError, match="record 1: empty interaction") as info:
        read_dataset("sparc", "dev", tmp_path, strict=True)
    assert info.value.index == 1


def test_spider_missing_keys_are_skipped(tmp_path: Path, write_json) -> None:
    write_json(tmp_path / "spider" / "dev.json", [{"db_id": "d", "query": "SELECT 1"}, {"db_id": "d"}])
    result = read_dataset("spider", "dev", tmp_path)
    assert not result.dialogues
    assert [e.reason for e in result.skipped] == ["key 'question' is missing", "key 'question' is missing"]


def test_empty_file_list_is_fine(tmp_path: Path, write_json) -> None:
    write_json(tmp_path / "sparc" / "dev.json", [])
    assert load_dialogues("sparc", "dev", tmp_path) == []


def test_importing_the_data_layer_stays_light() -> None:
    code = (
        "import sys, mtsql.data; "
        "heavy = {'datasets', 'pyarrow', 'mtsql.sql.parse', 'mtsql.sql.executor'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
