from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtsql.data import (
    EMPTY_PREDICTION,
    DatasetFormatError,
    GoldQuery,
    gold_sessions,
    load_dialogues,
    order_like_gold,
    read_gold_file,
    read_prediction_file,
    write_gold_file,
    write_prediction_file,
)
from mtsql.data.loaders import sql_line


def official_sessions(path: Path, *, keep_last: bool = True) -> list[list[list[str]]]:
    """The official SParC/CoSQL reader, line for line; ``keep_last=False`` is the original script, which drops
    a last session not followed by a blank line (test-suite-sql-eval keeps it)."""
    with open(path) as f:
        sessions, one = [], []
        for line in f.readlines():
            if len(line.strip()) == 0:
                sessions.append(one)
                one = []
            else:
                one.append(line.strip().split("\t"))
        if keep_last and len(one) != 0:
            sessions.append(one)
    return sessions


def official_spider(path: Path) -> list[list[str]]:
    """The official Spider reader."""
    with open(path) as f:
        return [line.strip().split("\t") for line in f.readlines() if len(line.strip()) > 0]


def test_read_gold_sessions(tmp_path: Path) -> None:
    path = tmp_path / "gold.txt"
    path.write_text("SELECT 1\tdb_a\nSELECT 2\tdb_a\n\n  SELECT 3\tdb_b  \n", encoding="utf-8")
    assert read_gold_file(path) == [
        [GoldQuery("SELECT 1", "db_a"), GoldQuery("SELECT 2", "db_a")],
        [GoldQuery("SELECT 3", "db_b")],  # the last session needs no trailing blank line
    ]


def test_read_gold_follows_official_separators(tmp_path: Path) -> None:
    path = tmp_path / "gold.txt"
    # A whitespace-only line separates; two separators in a row make an empty session; CRLF is a newline.
    path.write_text("SELECT 1\ta\r\n \t \r\n\r\nSELECT 2\tb\r\n\r\n", encoding="utf-8", newline="")
    ours = [[[g.query, g.db_id] for g in session] for session in read_gold_file(path)]
    assert ours == official_sessions(path) == [[["SELECT 1", "a"]], [], [["SELECT 2", "b"]]]


def test_read_gold_rejects_lines_without_db_id(tmp_path: Path) -> None:
    path = tmp_path / "gold.txt"
    path.write_text("SELECT 1\ta\nSELECT 2\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"line 2: expected 'SQL<TAB>db_id', found 1 tab-separated"):
        read_gold_file(path)


def test_read_spider_gold_one_question_a_line(tmp_path: Path) -> None:
    path = tmp_path / "dev_gold.sql"
    path.write_text("SELECT 1\ta\n\nSELECT 2\tb\n", encoding="utf-8")
    assert read_gold_file(path, single_turn=True) == [
        [GoldQuery("SELECT 1", "a")],
        [GoldQuery("SELECT 2", "b")],
    ]


def test_gold_file_round_trip_from_dialogues(sparc_dir: Path, tmp_path: Path) -> None:
    dialogues = load_dialogues("sparc", "dev", sparc_dir)
    path = tmp_path / "gold.txt"
    write_gold_file(path, gold_sessions(dialogues))
    read = read_gold_file(path)
    assert [len(s) for s in read] == [2, 3]
    assert read[1][1] == GoldQuery("SELECT weight FROM pets", "pets_1")  # the newline became a space
    assert read[1][2] == GoldQuery("SELECT weight FROM pets WHERE weight > 10", "pets_1")
    assert official_sessions(path, keep_last=False) == [[[g.query, g.db_id] for g in s] for s in read]


def test_prediction_file_keeps_every_turn(tmp_path: Path) -> None:
    path = tmp_path / "pred.txt"
    predictions = [["SELECT a\nFROM t", "", "  "], ["SELECT\tb FROM t WHERE x = 'two  spaces'"]]
    write_prediction_file(path, predictions)
    assert path.read_text(encoding="utf-8") == (
        "SELECT a FROM t\nSELECT\nSELECT\n\nSELECT b FROM t WHERE x = 'two  spaces'\n\n"
    )
    expected = [
        ["SELECT a FROM t", EMPTY_PREDICTION, EMPTY_PREDICTION],
        ["SELECT b FROM t WHERE x = 'two  spaces'"],
    ]
    assert read_prediction_file(path) == expected
    # Both official readers, old and new, see the same sessions.
    for keep_last in (True, False):
        assert [[p[0] for p in s] for s in official_sessions(path, keep_last=keep_last)] == expected


def test_spider_prediction_file_has_no_separators(tmp_path: Path) -> None:
    path = tmp_path / "pred.sql"
    write_prediction_file(path, [["SELECT 1"], [""], ["SELECT\n2"]], single_turn=True)
    assert path.read_text(encoding="utf-8") == "SELECT 1\nSELECT\nSELECT 2\n"
    assert official_spider(path) == [["SELECT 1"], ["SELECT"], ["SELECT 2"]]
    assert read_prediction_file(path, single_turn=True) == [["SELECT 1"], ["SELECT"], ["SELECT 2"]]


def test_read_prediction_drops_text_after_tab(tmp_path: Path) -> None:
    path = tmp_path / "pred.txt"
    path.write_text("SELECT 1\tdb\n", encoding="utf-8")
    assert read_prediction_file(path) == [["SELECT 1"]]


sql_text = st.text(alphabet=st.sampled_from(list("SELCT *ab1'\"\n\r\t\u2028\x0c ")), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(sql_text, min_size=1, max_size=4), max_size=5))
def test_any_predictions_keep_their_shape_under_the_official_reader(tmp_path_factory, sessions) -> None:
    path = tmp_path_factory.mktemp("pred") / "pred.txt"
    write_prediction_file(path, sessions)
    read = official_sessions(path)
    assert [len(s) for s in read] == [len(s) for s in sessions]
    assert [[p[0] for p in s] for s in read] == [[sql_line(sql) for sql in s] for s in sessions]
    assert read_prediction_file(path) == [[p[0] for p in s] for s in read]


def test_order_like_gold_matches_by_db_and_queries(sparc_dir: Path) -> None:
    dialogues = load_dialogues("sparc", "dev", sparc_dir)
    gold = gold_sessions(dialogues)[::-1]
    gold[0] = [GoldQuery("  ".join(g.query.split()), g.db_id) for g in gold[0]]  # spacing does not matter
    assert order_like_gold(dialogues, gold) == dialogues[::-1]


def test_order_like_gold_assigns_identical_dialogues_in_order(sparc_dir: Path) -> None:
    dialogues = load_dialogues("sparc", "dev", sparc_dir)
    twins = [dialogues[0], dialogues[1], replace(dialogues[0], id="twin")]
    gold = gold_sessions([twins[0], twins[0], twins[1]])
    assert [d.id for d in order_like_gold(twins, gold)] == [dialogues[0].id, "twin", dialogues[1].id]


def test_order_like_gold_reports_unmatched_session(sparc_dir: Path) -> None:
    dialogues = load_dialogues("sparc", "dev", sparc_dir)
    gold = gold_sessions(dialogues)
    random.Random(0).shuffle(gold)
    gold.append([GoldQuery("SELECT nothing", "concert_singer")])
    with pytest.raises(ValueError, match=r"gold session 2 \(concert_singer, 1 turns\) matches no dialogue"):
        order_like_gold(dialogues, gold)


def test_a_byte_order_mark_is_not_part_of_the_first_query(tmp_path: Path) -> None:
    from mtsql.data import read_prediction_file

    path = tmp_path / "pred.txt"
    path.write_bytes("\ufeffSELECT 1\nSELECT 2\n\nSELECT 3\n".encode())
    assert read_prediction_file(path) == [["SELECT 1", "SELECT 2"], ["SELECT 3"]]
