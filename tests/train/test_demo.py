"""Stage 1 end to end on CPU (fixed seed): after SFT on gold trajectories, the tiny model follows the protocol
and answers its training dialogues clearly better than the untrained model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mtsql.data import Dialogue

pytest.importorskip("torch")
pytest.importorskip("trl")


@pytest.mark.slow
def test_sft_on_gold_trajectories_teaches_the_protocol_and_the_answers(
    example: Any, dialogues: list[Dialogue], tmp_path: Path
) -> None:
    from mtsql.train.demo import DemoConfig, run_demo

    config = DemoConfig(out_dir=tmp_path, sft_steps=200, learning_rate=3e-3, max_tokens=96, seed=0)
    result = run_demo(config, dialogues[:4], example.db_dir, example.tables, log=lambda _: None)
    before, after = result.before, result.after
    assert before["questions"] == after["questions"] == sum(len(d.turns) for d in dialogues[:4])
    assert after["format_valid"] >= before["format_valid"] + 0.3, (before, after)
    assert after["answered"] >= before["answered"] + 0.3, (before, after)
    assert after["ex"] >= before["ex"] + 0.15, (before, after)
    assert after["reward"] > before["reward"] + 0.2, (before, after)
    for name in ("gold-sft.jsonl", "before.jsonl", "after.jsonl", "summary.json", "sft-model/model.safetensors"):
        assert (tmp_path / name).is_file(), name


@pytest.mark.slow
def test_held_out_evaluation(example: Any, dialogues: list[Dialogue], tmp_path: Path) -> None:
    """With evaluation dialogues the before/after rollouts run on them only, never on the training ones."""
    from mtsql.rollout import read_episodes
    from mtsql.train.demo import DemoConfig, run_demo

    config = DemoConfig(out_dir=tmp_path, sft_steps=5, max_tokens=16, max_steps=2, seed=0)
    with pytest.raises(ValueError, match="overlap"):
        run_demo(config, dialogues[:2], example.db_dir, example.tables, log=lambda _: None, evaluation=dialogues[1:3])
    result = run_demo(
        config, dialogues[:2], example.db_dir, example.tables, log=lambda _: None, evaluation=dialogues[2:3]
    )
    assert (result.dialogues, result.evaluated, result.held_out) == (2, 1, True)
    for name in ("before", "after"):
        assert {r.dialogue_id for r in read_episodes(tmp_path / f"{name}.jsonl")} == {dialogues[2].id}


def test_the_llamacpp_demo_needs_a_real_model() -> None:
    from typer.testing import CliRunner

    from mtsql.cli.main import app

    result = CliRunner().invoke(app, ["demo", "--backend", "llamacpp"])
    assert result.exit_code == 2 and "llamacpp with --model" in result.output
