"""Stage 1's data and trainer: gold trajectories, SFT rows, the loss mask TRL trains with, a run and its resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from mtsql.data import Dialogue, Turn

pytest.importorskip("torch")
pytest.importorskip("trl")

from mtsql.backends import TokenizerOnly
from mtsql.rewards import RewardConfig
from mtsql.rollout import RolloutConfig, RolloutEngine, Trajectory
from mtsql.train.data import one_shot_examples, sft_example
from mtsql.train.gold import GoldStats, gold_records
from mtsql.train.sft import SFTRunConfig, build_trainer, train_sft


@pytest.fixture(scope="module")
def engine(checkpoint: Path, example: Any) -> RolloutEngine:
    return RolloutEngine(
        TokenizerOnly(str(checkpoint)), example.db_dir, RolloutConfig(), tables=example.tables, rewards=RewardConfig()
    )


@pytest.fixture(scope="module")
def gold(engine: RolloutEngine, dialogues: list[Dialogue]) -> list[Trajectory]:
    return list(gold_records(engine, dialogues))


def test_gold_trajectories_follow_the_protocol_and_score_full_marks(
    gold: list[Trajectory], dialogues: list[Dialogue]
) -> None:
    assert len(gold) == len(dialogues)
    for record in gold:
        assert record.finish == "done" and record.malformed == 0
        assert record.final_sql == record.gold_sql
        assert record.rewards["exec"] == record.rewards["exact"] == 1.0
        assert record.rewards["exec_verify"] == 1.0
        for turn in record.turns:
            assert turn.answered and turn.memory_retrieved == (turn.index > 0)
        assert len(record.completion_ids) == len(record.completion_mask) == len(record.logprobs)


def test_failing_gold_and_missing_databases_are_skipped_and_counted(
    engine: RolloutEngine, dialogues: list[Dialogue]
) -> None:
    broken = dataclasses.replace(dialogues[0], id="broken", turns=(Turn(0, "Who?", "SELECT nope FROM artist"),))
    lost = dataclasses.replace(dialogues[0], id="lost", db_id="no_such_db")
    stats = GoldStats()
    records = list(gold_records(engine, [broken, lost, dialogues[1]], stats))
    assert [r.dialogue_id for r in records] == [dialogues[1].id]
    assert (stats.written, stats.failing_gold, stats.missing_database, stats.failing) == (1, 1, 1, ["broken"])


def test_sft_rows_train_on_the_chosen_questions_only(gold: list[Trajectory]) -> None:
    record = gold[1]
    whole = sft_example(record)
    prompt = len(record.prompt_ids)
    last_model = max(s.end for s in record.segments if s.kind == "model")
    assert whole["input_ids"] == record.prompt_ids + record.completion_ids[:last_model]
    assert whole["assistant_masks"] == [0] * prompt + record.completion_mask[:last_model]
    second = sft_example(record, turns=[1])
    model_1 = [s for s in record.segments if s.kind == "model" and s.turn == 1]
    assert len(second["input_ids"]) == prompt + model_1[-1].end
    trained = {i - prompt for i, bit in enumerate(second["assistant_masks"]) if bit}
    assert trained == {i for s in model_1 for i in range(s.start, s.end)}
    with pytest.raises(ValueError, match="no model tokens"):
        sft_example(record, turns=[99])


def test_the_training_loss_mask_is_the_rollout_completion_mask(
    checkpoint: Path, gold: list[Trajectory], tmp_path: Path
) -> None:
    """Token for token: TRL's labels (and the collated batch's) are set exactly where completion_mask is 1."""
    from datasets import Dataset

    rows = [sft_example(record) for record in gold[:4]]
    dataset = Dataset.from_list([{k: row[k] for k in ("input_ids", "assistant_masks")} for row in rows])
    trainer = build_trainer(SFTRunConfig(str(checkpoint), [], str(tmp_path / "out")), dataset)
    for record, row, prepared in zip(gold, rows, trainer.train_dataset, strict=False):
        assert prepared["input_ids"] == row["input_ids"]
        trained = [int(label != -100) for label in prepared["labels"]]
        prompt = len(record.prompt_ids)
        assert trained[:prompt] == [0] * prompt
        assert trained[prompt:] == record.completion_mask[: len(trained) - prompt]
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    for index, row in enumerate(rows):
        n = len(row["input_ids"])
        labels = batch["labels"][index].tolist()
        assert [int(label != -100) for label in labels[:n]] == row["assistant_masks"]
        assert set(labels[n:]) <= {-100}


@pytest.mark.slow
def test_a_run_from_yaml_trains_saves_and_resumes(checkpoint: Path, gold: list[Trajectory], tmp_path: Path) -> None:
    import json

    from transformers import AutoModelForCausalLM

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(sft_example(record)) + "\n" for record in gold[:3]))
    config_file = tmp_path / "sft.yaml"
    config_file.write_text(
        f"model: {checkpoint}\ndata: rows.jsonl\noutput_dir: out\nmax_length: 4096\n"
        "training:\n  max_steps: 2\n  save_steps: 1\n  learning_rate: 1.0e-3\n  logging_steps: 1\n"
    )
    config = SFTRunConfig.from_yaml(config_file)
    assert config.data == [str(data)] and config.lora is None
    output = train_sft(config)
    assert (output / "checkpoint-2").is_dir() and (output / "model.safetensors").is_file()
    config.training["max_steps"] = 3
    train_sft(config)  # resumes from checkpoint-2
    state = json.loads((output / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and len([e for e in state["log_history"] if "loss" in e]) == 3
    AutoModelForCausalLM.from_pretrained(output)


def test_yaml_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model: m\ndata: d\n")
    with pytest.raises(ValueError, match="'output_dir' is required"):
        SFTRunConfig.from_yaml(path)
    path.write_text("model: m\ndata: d\noutput_dir: o\nepochs: 3\n")
    with pytest.raises(ValueError, match="unknown key"):
        SFTRunConfig.from_yaml(path)


def test_one_shot_baseline_rows(example: Any, dialogues: list[Dialogue]) -> None:
    rows = one_shot_examples(dialogues[:2], str(example.db_dir))
    assert len(rows) == sum(len(d.turns) for d in dialogues[:2])
    second = rows[1]
    assert second["completion"] == [{"role": "assistant", "content": dialogues[0].turns[1].query}]
    user = second["prompt"][1]["content"]
    assert dialogues[0].turns[0].query in user and user.endswith(dialogues[0].turns[1].utterance)
    assert "CREATE TABLE" in user


@pytest.mark.slow
def test_lora_trains_the_adapter_and_saves_a_merged_checkpoint(
    checkpoint: Path, gold: list[Trajectory], tmp_path: Path
) -> None:
    import json

    import torch
    from transformers import AutoModelForCausalLM

    from mtsql.train.config import LoraSettings

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(sft_example(record)) + "\n" for record in gold[:2]))
    config = SFTRunConfig(
        str(checkpoint), [str(data)], str(tmp_path / "out"), lora=LoraSettings(r=4, alpha=8, dropout=0.0),
        training={"max_steps": 2, "learning_rate": 1e-2, "save_strategy": "no"},
    )  # fmt: skip
    trainer = build_trainer(config)
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    output = train_sft(config)
    merged = AutoModelForCausalLM.from_pretrained(output)
    original = AutoModelForCausalLM.from_pretrained(checkpoint)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    changed = [
        name
        for (name, a), (_, b) in zip(merged.named_parameters(), original.named_parameters(), strict=True)
        if not torch.equal(a, b)
    ]
    assert changed and all("proj" in name for name in changed)
