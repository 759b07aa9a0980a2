"""``mtsql study``: its config, and a smoke run of every arm on the tiny model (a few dialogues, a few steps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mtsql.train.study import ARMS, StudyConfig, StudyError

REPO = Path(__file__).resolve().parents[2]


def write_config(path: Path, **values: Any) -> Path:
    base = {
        "name": "smoke",
        "model": "unused",
        "output_dir": "runs",
        "results_dir": "results",
        "train": {"dataset": "cosql", "split": "dev", "sample": 2, "seed": 0},
        "eval": {"dataset": "sparc", "split": "dev", "sample": 2, "seed": 0},
    }
    path.write_text(yaml.safe_dump({**base, **values}), encoding="utf-8")
    return path


def test_the_shipped_study_config_reads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.setenv("MTSQL_DATA_DIR", tmp_path.name)  # relative to the working directory, not to the file
    config = StudyConfig.from_yaml(REPO / "configs" / "study-smollm2.yaml")
    assert config.arms == list(ARMS) and config.model == "smollm2-135m-instruct"
    assert config.train.dataset == "cosql" and config.eval.dataset == "sparc"  # held-out dialogues
    assert Path(config.results_dir) == REPO / "docs" / "results" / "study-smollm2"
    assert config.data_dir == str(tmp_path)


def test_bad_configs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="unknown arm"):
        StudyConfig.from_yaml(write_config(tmp_path / "a.yaml", arms=["zero-shot", "rlhf"]))
    with pytest.raises(StudyError, match="the grpo arm starts from self-taught or protocol-sft"):
        StudyConfig.from_yaml(write_config(tmp_path / "b.yaml", arms=["zero-shot", "grpo"]))
    with pytest.raises(StudyError, match="unknown key"):
        StudyConfig.from_yaml(write_config(tmp_path / "c.yaml", epochs=3))
    with pytest.raises(StudyError, match="unknown dataset"):
        StudyConfig.from_yaml(write_config(tmp_path / "d.yaml", eval={"dataset": "atis"}))
    with pytest.raises(StudyError, match="sft: unknown key"):
        StudyConfig.from_yaml(write_config(tmp_path / "e.yaml", sft={"learning_rate": 1e-5}))
    arms = StudyConfig.from_yaml(write_config(tmp_path / "f.yaml"), arms=["protocol-sft", "zero-shot"]).arms
    assert arms == ["zero-shot", "protocol-sft"]  # always in the pipeline's order


@pytest.mark.slow
def test_every_arm_on_the_tiny_model(checkpoint: Path, data_dir: Path, tmp_path: Path) -> None:
    """Each arm trains, is evaluated on held-out dialogues, and leaves gold/pred files that the official-compatible
    evaluator re-scores to the numbers reported; a rerun keeps every finished arm."""
    pytest.importorskip("trl")
    from typer.testing import CliRunner

    from mtsql.cli.main import app

    steps = {"max_steps": 2, "learning_rate": 1e-3, "save_strategy": "no", "report_to": "none", "disable_tqdm": True}
    path = write_config(
        tmp_path / "study.yaml",
        model=str(checkpoint),
        evaluation={"backend": "transformers", "max_tokens": 24, "max_steps": 2, "one_shot_max_tokens": 24},
        sft={"training": steps},
        one_shot={"training": steps},
        self_taught={"samples": 2, "max_tokens": 24, "training": steps},
        grpo={
            "num_generations": 2,
            "sampling": {"max_tokens": 24},
            "training": {**steps, "max_steps": 1, "per_device_train_batch_size": 2},
        },
    )
    runner = CliRunner()
    result = runner.invoke(app, ["study", "--config", str(path), "--data-dir", str(data_dir), "--no-progress"])
    assert result.exit_code == 0, result.output
    # the random-init model solves nothing: its self-taught round keeps nothing, and the unchanged model is not
    # evaluated a second time
    assert "self-taught: the same model as the protocol-sft arm; its evaluation is reused" in result.output
    results = tmp_path / "results"
    summary = json.loads((results / "summary.json").read_text(encoding="utf-8"))
    assert [arm["arm"] for arm in summary["arms"]] == list(ARMS)
    assert summary["eval"]["dataset"] == "sparc" and summary["train"]["dataset"] == "cosql"
    for arm in summary["arms"]:
        folder = results / arm["arm"]
        rescored = runner.invoke(
            app,
            [
                "evaluate", "--gold", str(folder / "gold.txt"), "--pred", str(folder / "pred.txt"),
                "--db", str(data_dir / "database"), "--table", str(data_dir / "sparc" / "tables.json"),
                "--json", str(folder / "rescored.json"),
            ],
        )  # fmt: skip
        assert rescored.exit_code == 0, rescored.output
        official = json.loads((folder / "rescored.json").read_text(encoding="utf-8"))
        assert official["question_match"]["exec"] == pytest.approx(arm["ex"])
        assert official["question_match"]["exact"] == pytest.approx(arm["em"])
        assert arm["questions"] == sum(1 for line in (folder / "gold.txt").read_text().splitlines() if line)
        assert (arm["format_valid"] is None) == (arm["arm"] == "one-shot-sft")
    protocol, taught = (
        next(a for a in summary["arms"] if a["arm"] == name) for name in ("protocol-sft", "self-taught")
    )
    assert (taught["ex"], taught["format_valid"]) == (protocol["ex"], protocol["format_valid"])
    assert (results / "self-taught" / "pred.txt").read_text() == (results / "protocol-sft" / "pred.txt").read_text()
    assert (tmp_path / "runs" / "grpo" / "final" / "config.json").is_file()
    assert (results / "grpo" / "metrics.jsonl").is_file() and list((results / "grpo" / "plots").glob("*.png"))
    tables = (results / "tables.md").read_text(encoding="utf-8")
    assert all(f"| {arm} |" in tables for arm in ARMS) and "EX / EM by hardness" in tables
    again = runner.invoke(app, ["study", "--config", str(path), "--data-dir", str(data_dir), "--no-progress"])
    assert again.exit_code == 0 and again.output.count("finished earlier") == len(ARMS), again.output
