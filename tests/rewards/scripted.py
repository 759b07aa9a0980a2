"""Scripted episodes on a small database: the schema, queries with known outcomes, message builders, and a player
that steps messages through the environment to get real records."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mtsql.data import Dialogue, Turn
from mtsql.env import (
    EXEC_SQL,
    MEMORY_RETRIEVE,
    DialogueEnv,
    EpisodeRecord,
    VerdictTag,
    format_answer,
    format_tool_call,
    format_verdict,
)

SCHEMA = """
CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);
CREATE TABLE concert (
    concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER,
    singer_id INTEGER REFERENCES singer(singer_id)
);
INSERT INTO singer VALUES (1, 'Joe Sharp', 'Netherlands', 52), (2, 'Timbaland', 'United States', 32),
    (3, 'Justin Brown', 'France', 29), (4, 'Rose White', 'France', 41);
INSERT INTO concert VALUES (1, 'Auditions', 2014, 1), (2, 'Super bootcamp', 2014, 2), (3, 'Home Visits', 2015, 3);
"""

ALL = "SELECT name FROM singer"
FRANCE = 'SELECT name FROM singer WHERE country  =  "France"'
SPAIN = 'SELECT name FROM singer WHERE country  =  "Spain"'  # a gold query without rows
BROKEN = "SELECT nme FROM singer"  # does not execute, does not parse
EMPTY = "SELECT name FROM singer WHERE age > 100"
OLD = "SELECT name FROM singer WHERE age > 40"

PASS = format_verdict(VerdictTag.EXEC, True)
NO_PASS = format_verdict(VerdictTag.EXEC, False)
MEMORY_PASS = format_verdict(VerdictTag.MEMORY, True)
MEMORY_NO_PASS = format_verdict(VerdictTag.MEMORY, False)


def run(sql: str, verdict: str = "") -> str:
    """A message: the verdict on the last reply, then ``exec_sql``."""
    return verdict + format_tool_call(EXEC_SQL, {"code": sql})


def check(verdict: str = "") -> str:
    """A message: the verdict on the last reply, then ``memory_retrieve`` of the last executed SQL."""
    return verdict + format_tool_call(MEMORY_RETRIEVE, {})


def answer(sql: str, verdict: str = "") -> str:
    return verdict + format_answer(sql)


def dialogue(*gold: str) -> Dialogue:
    turns = tuple(Turn(index, f"question {index + 1}?", sql) for index, sql in enumerate(gold))
    return Dialogue(id="test/dev/0000", dataset="sparc", split="dev", position=0, db_id="concert", turns=turns)


def play(db_dir: Path, gold: Sequence[str], *turns: Sequence[str], history_mode: str = "predicted") -> EpisodeRecord:
    """The record of an episode on a dialogue with ``gold`` queries, one list of assistant messages per question."""
    env = DialogueEnv(db_dir, history_mode=history_mode)  # type: ignore[arg-type]
    env.reset(dialogue(*gold))
    messages = [message for turn in turns for message in turn]
    for index, message in enumerate(messages):
        _, _, terminated, _, info = env.step(message)
        if terminated:
            assert index == len(messages) - 1, "messages left after the episode ended"
            return info["episode"]
    raise AssertionError("the episode did not end")
