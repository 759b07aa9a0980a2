"""benchmarks/bench_env.py: the replay benchmark and its protocol floor run, and leave the environment as found."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from mtsql.data import Dialogue
from mtsql.env import DialogueEnv, GoldPolicy, run_episode
from mtsql.env.templates import TemplateSet

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_env.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_env", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_protocol_floor_times_the_recorded_pass_and_restores_the_environment(db_dir: Path, dialogue: Dialogue) -> None:
    bench = load_bench()
    env = DialogueEnv(db_dir)
    floor_s, calls = bench.protocol_floor(env, [dialogue, dialogue], repeats=2)
    assert calls == 2 * len(dialogue.turns)  # one exec_sql call per gold question
    assert floor_s > 0
    assert isinstance(env.templates, TemplateSet)
    sqlite_calls = env.stats.sqlite_calls
    record = run_episode(env, dialogue, GoldPolicy(dialogue))
    assert [turn.final_sql for turn in record.turns] == [turn.query for turn in dialogue.turns]
    assert env.stats.sqlite_calls == sqlite_calls + len(dialogue.turns)  # timed through the real executor again


def test_benchmark_runs_on_a_few_real_dialogues(data_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--limit", "12", "--passes", "2", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MTSQL_DATA_DIR": str(data_dir)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "sparc dev: 12 dialogues" in out
    assert "single process, best warm pass:" in out and "per exec_sql call: environment" in out
    assert "protocol floor" in out and "2 processes, warm pass 2:" in out
