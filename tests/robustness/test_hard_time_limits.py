"""Every path that runs untrusted SQL keeps its time limit, also inside one slow built-in function call.

``printf('%.*c', 2000000000, 'x')`` spins about 10 s inside SQLite, where the in-process progress handler is
never called. The environment, the reward scorer and the evaluator run queries in a worker process killed at
the limit by default (``isolate``), so each of them answers in about ``timeout + grace`` seconds.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from mtsql.data import read_dataset_file
from mtsql.env import DialogueEnv
from mtsql.env.protocol import format_tool_call
from mtsql.env.tools import EXEC_SQL
from mtsql.eval.evaluator import EvalOptions, evaluate_turns
from mtsql.eval.exec_match import PRED_TIMEOUT, exec_match
from mtsql.examples import load_example
from mtsql.rewards import RewardConfig, RewardScorer

SLOW = "SELECT printf('%.*c', 2000000000, 'x')"
GOLD = "SELECT name FROM stage"
LIMIT_S = 0.5
BOUND_S = 4.0  # timeout + grace, the worker's restart and a loaded 2-core machine


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory):
    return load_example("festival", root=tmp_path_factory.mktemp("examples"))


@pytest.fixture(scope="module")
def database(example) -> Path:
    return next(Path(example.db_dir).glob("*/*.sqlite"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_environment_stops_a_slow_function_at_its_limit(example, database: Path) -> None:
    before = digest(database)
    env = DialogueEnv(example.db_dir, timeout=LIMIT_S)
    env.reset(read_dataset_file(example.dialogues, "sparc", "example").dialogues[0])
    start = time.monotonic()
    observation, *_ = env.step(format_tool_call(EXEC_SQL, {"code": SLOW}))
    assert time.monotonic() - start < BOUND_S
    assert f"time limit of {LIMIT_S:g} s exceeded" in observation[-1]["content"]
    # the next execution gets a fresh worker and the database is unchanged
    observation, *_ = env.step(format_tool_call(EXEC_SQL, {"code": GOLD}))
    assert "time limit" not in observation[-1]["content"]
    assert digest(database) == before


def test_the_reward_outcome_stops_a_slow_function_at_its_limit(example) -> None:
    scorer = RewardScorer(example.db_dir, RewardConfig(timeout=LIMIT_S))
    db_id = "festival"
    start = time.monotonic()
    score = scorer.outcome(SLOW, GOLD, db_id)
    assert time.monotonic() - start < BOUND_S
    assert score.exec == 0 and score.exec_status == PRED_TIMEOUT
    assert scorer.outcome(GOLD, GOLD, db_id).exec == 1


def test_execution_match_stops_a_slow_function_at_its_limit(database: Path) -> None:
    start = time.monotonic()
    verdict = exec_match(database.parent, database, SLOW, GOLD, timeout=LIMIT_S)
    assert time.monotonic() - start < BOUND_S
    assert verdict.status == PRED_TIMEOUT and "time limit" in str(verdict.message)


def test_the_evaluator_stops_a_slow_function_at_its_limit(example, database: Path) -> None:
    from mtsql.data.loaders import GoldQuery

    gold = [[GoldQuery(GOLD, database.parent.name)] * 2]
    options = EvalOptions(db_dir=example.db_dir, tables=example.tables, workers=1, timeout=LIMIT_S)
    start = time.monotonic()
    [[slow, right]] = evaluate_turns(gold, [[SLOW, GOLD]], options)
    assert time.monotonic() - start < BOUND_S + 2  # the pool's start too
    assert slow.exec == 0 and slow.exec_status == PRED_TIMEOUT and "time limit" in str(slow.error)
    assert right.exec == 1


def test_isolated_and_in_process_verdicts_agree(database: Path) -> None:
    """The worker changes where a query runs, not what it returns."""
    queries = [GOLD, "SELECT name FROM stage ORDER BY name", "SELECT nme FROM stage", "DROP TABLE stage", ""]
    for pred in queries:
        a = exec_match(database.parent, database, pred, GOLD, isolate=True)
        b = exec_match(database.parent, database, pred, GOLD, isolate=False)
        assert (a.score, a.status, a.message) == (b.score, b.status, b.message), pred
