"""benchmarks/bench_rl_step.py runs end to end (tiny model on CPU), so the first GPU session can trust it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_rl_step.py"


@pytest.mark.slow
def test_the_step_benchmark_records_times_and_memory(tmp_path: Path) -> None:
    args = ["--shape", "tiny", "--out", str(tmp_path), "--steps", "2", "--prompts", "1", "--num-generations", "2"]
    args += ["--max-tokens", "8", "--max-steps", "1"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert (bench["shape"], bench["episodes_per_step"], bench["backend"]) == ("tiny", 2, "trainer")
    assert [step["step"] for step in bench["steps"]] == [1, 2]
    for step in bench["steps"]:
        assert 0 < step["rollout_time_s"] < step["step_time_s"] and step["tokens"] > 0
    assert bench["mean_step_time_s"] == bench["steps"][1]["step_time_s"]  # the first step is warm-up
    assert bench["memory"]["max_rss_gib"] > 0
    assert (tmp_path / "model-tiny" / "config.json").is_file()
