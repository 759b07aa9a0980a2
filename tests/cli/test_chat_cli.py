"""``mtsql chat``: the whole session through the console command, and how each kind of step is shown."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mtsql.data import read_dataset_file
from mtsql.env import DialogueEnv, GoldPolicy
from mtsql.examples import load_example
from mtsql.rollout.trajectory import Step

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def db(example: Any) -> Path:
    return example.db_dir / "festival" / "festival.sqlite"


def chat(*args: str, stdin: str = "", cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": "200"}
    command = [sys.executable, "-m", "mtsql", "chat", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.slow
def test_a_session_with_the_tiny_model(db: Path, checkpoint: Path, private_cache: Path, tmp_path: Path) -> None:
    saved = tmp_path / "session.jsonl"
    before = db.read_bytes()
    args = ["--db", str(db), "--model", str(checkpoint), "--max-tokens", "16", "--max-steps", "2"]
    result = chat(*args, "-q", "Which artists are from Ireland?", "-q", "Which of them formed after 2005?",
                  "--save", str(saved), cache=private_cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for text in ("question 1, step 1", "question 2, step 2", "final SQL", f"session saved to {saved}"):
        assert text in result.stdout
    record = json.loads(saved.read_text())
    assert [turn["question"] for turn in record["turns"]] == [
        "Which artists are from Ireland?",
        "Which of them formed after 2005?",
    ]
    assert len(record["completion_ids"]) == len(record["completion_mask"]) == len(record["logprobs"])
    assert db.read_bytes() == before
    # Typed questions: the session ends at an empty line.
    typed = chat(*args, stdin="How many stages are there?\n\nnever asked\n", cache=private_cache)
    assert typed.returncode == 0, typed.stderr
    assert "question 1, step 1" in typed.stdout and "question 2" not in typed.stdout


def test_missing_database_and_model(tmp_path: Path, private_cache: Path, db: Path) -> None:
    missing = chat("--db", str(tmp_path / "none.sqlite"), "--model", "x", cache=private_cache)
    assert missing.returncode == 2 and "no database file" in missing.stderr
    no_model = chat("--db", str(db), "--model", str(tmp_path / "no-model"), "-q", "hi", cache=private_cache)
    assert no_model.returncode == 2 and "cannot load" in no_model.stderr
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database\n", encoding="utf-8")
    not_sqlite = chat("--db", str(text), "--model", str(tmp_path / "no-model"), "-q", "hi", cache=private_cache)
    assert not_sqlite.returncode == 2 and "is not a SQLite database" in not_sqlite.stderr


def test_each_kind_of_step_is_shown(db: Path) -> None:
    """A gold replay's steps: SQL with its result table, verdicts, the memory check; then a malformed one."""
    from rich.console import Console

    from mtsql.cli.render import show_step

    example = load_example("festival")
    dialogue = read_dataset_file(example.dialogues, "sparc", "example").dialogues[0]
    env, policy = DialogueEnv(example.db_dir), GoldPolicy(dialogue)
    observation, info = env.reset(dialogue)
    steps: list[dict[str, Any]] = []
    while not steps or not steps[-1].turn_done or steps[-1].turn < 1:
        text = policy(observation, info)
        observation, _, _, _, info = env.step(text)
        steps.append(Step.from_info(info, text, "stop", 1))
    out = io.StringIO()
    console = Console(file=out, width=200, highlight=False)
    for step in steps:
        show_step(console, step, db)
    shown = out.getvalue()
    assert "exec_sql: SELECT name FROM artist WHERE country = 'Ireland'" in shown
    assert "The Lanterns" in shown and "Saltwater Choir" in shown  # the result table
    assert "exec_verify: pass" in shown and "memory_verify: pass" in shown
    assert "memory_retrieve: checking coherence" in shown
    malformed = dataclasses.replace(
        steps[0], error_kind="no_action", error="no tool call", text="<think>hmm</think> x", verdict=None, action=None
    )
    out.truncate(0)
    show_step(console, malformed, db)
    assert "hmm" in out.getvalue() and "malformed (no_action): no tool call" in out.getvalue()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_session_in_a_terminal_under_tmux(db: Path, checkpoint: Path, private_cache: Path, tmp_path: Path) -> None:
    """The interactive session in a real terminal: a typed question is answered step by step, Enter on an
    empty line ends the session."""
    session = f"mtsql-chat-{os.getpid()}"
    done = tmp_path / "exit-code"
    command = (
        f"XDG_CACHE_HOME={private_cache} {sys.executable} -m mtsql chat --db {db} --model {checkpoint} "
        f"--max-tokens 16 --max-steps 2; echo $? > {done}"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command], check=True)
    try:

        def screen() -> str:
            return subprocess.run(
                ["tmux", "capture-pane", "-p", "-S", "-200", "-t", session], capture_output=True, text=True
            ).stdout

        def wait_for(text: str, timeout: float = 180) -> str:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if text in (shown := screen()):
                    return shown
                time.sleep(0.5)
            raise AssertionError(f"{text!r} never appeared:\n{screen()}")

        wait_for("question>")
        subprocess.run(["tmux", "send-keys", "-t", session, "Which artists are from Ireland?", "Enter"], check=True)
        shown = wait_for("final SQL")
        assert "question 1, step 1" in shown
        subprocess.run(["tmux", "send-keys", "-t", session, "", "Enter"], check=True)
        deadline = time.monotonic() + 60
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert done.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
