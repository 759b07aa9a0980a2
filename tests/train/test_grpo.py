"""Stage 2 with TRL's GRPOTrainer: the run's YAML, the prompts, the question-episode cut, the rollout function's
fields on a real trainer and model, the loss mask TRL builds from them (no environment token in the loss), the
reward functions, metrics, checkpoints, resume and plots."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mtsql.data import Dialogue, Turn
from mtsql.rewards import COMPONENTS, RewardConfig
from mtsql.rollout.trajectory import Trajectory
from mtsql.train.rl.config import RLConfig
from mtsql.train.rl.episodes import episode_key, episode_rows, parse_key

pytest.importorskip("torch")
pytest.importorskip("trl")

from mtsql.backends import TokenizerOnly
from mtsql.rollout import RolloutConfig, RolloutEngine
from mtsql.train.gold import gold_records
from mtsql.train.rl.rollout import REWARDS_FIELD, ComponentReward, cut_dialogue, cut_question, reward_functions

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def run_config(checkpoint: Path, out: Path, **overrides: Any) -> RLConfig:
    """A tiny run on the first dialogues of the example: short messages, G=2, two prompts a step."""
    values: dict[str, Any] = {
        "model": str(checkpoint),
        "output_dir": str(out),
        "data": {"example": "festival", "limit": 3},
        "num_generations": 2,
        "sampling": {"max_tokens": 12, "max_steps": 2, "temperature": 1.0},
        "curriculum": {"stages": [{"name": "later questions", "min_depth": 2}]},
        "training": {"max_steps": 1, "per_device_train_batch_size": 4, "save_strategy": "no", "disable_tqdm": True},
    }
    values.update(overrides)
    return RLConfig.from_dict(values)


# --- configuration and prompts --------------------------------------------------------------------------------


def test_a_run_reads_from_yaml_and_owns_sampling_rewards_and_generation(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: m\noutput_dir: out\ndata: {dataset: sparc, data_dir: data}\nnum_generations: 5\n"
        "sampling: {temperature: 0.9, max_tokens: 64}\nrewards: {format_weight: 0.5}\n"
        "curriculum: {stages: [{name: easy, hardness: [easy], steps: 10}], mix_earlier: 0.25}\n"
        "training: {learning_rate: 2.0e-6, beta: 0.01}\n"
    )
    config = RLConfig.from_yaml(path)
    assert config.output_dir == str(tmp_path / "out") and config.data.data_dir == str(tmp_path / "data")
    assert config.model == "m" and config.episode == "question" and config.history_mode == "oracle"
    assert config.curriculum is not None and config.curriculum.mix_earlier == 0.25
    args = config.grpo_settings(cuda=False)
    assert args["reward_weights"] == [config.rewards.weight(name) for name in COMPONENTS]
    assert args["reward_weights"] == [1.0, 1.0, 0.1, 0.1, 0.8, 0.5]
    assert (args["temperature"], args["num_generations"], args["use_vllm"], args["bf16"]) == (0.9, 5, False, False)
    assert (args["learning_rate"], args["beta"], args["output_dir"]) == (2e-6, 0.01, config.output_dir)
    vllm = dataclasses.replace(config, generation=dataclasses.replace(config.generation, backend="vllm"))
    vllm.sampling.max_total_tokens = 8192
    assert vllm.grpo_settings(cuda=True)["use_vllm"] and vllm.grpo_settings(cuda=True)["vllm_max_model_length"] == 8192
    for bad, message in [
        ({"training": {"temperature": 0.5}}, r"temperature \(set sampling.temperature\)"),
        ({"training": {"reward_weights": [1]}}, "rewards"),
        ({"num_generations": 1}, "at least 2"),
        ({"episode": "turn"}, "episode"),
        ({"data": {"example": "festival", "dataset": "sparc"}}, "exactly one"),
        ({"epochs": 3}, "unknown key"),
        ({"sampling": {"temperature": 0}}, "positive"),
    ]:
        values = {"model": "m", "output_dir": "o", "data": {"example": "festival"}, **bad}
        with pytest.raises(ValueError, match=message):
            RLConfig.from_dict(values)


def test_a_run_takes_its_templates_by_name_or_from_a_file_beside_it(tmp_path: Path) -> None:
    from mtsql.env.templates import builtin_template_text

    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "mine.toml").write_text(
        builtin_template_text().replace('"mtsql-v1"', '"mine-v1"'), encoding="utf-8"
    )
    path = tmp_path / "run.yaml"
    path.write_text("model: m\noutput_dir: out\ndata: {example: festival}\ntemplates: texts/mine.toml\n")
    assert RLConfig.from_yaml(path).templates == str(tmp_path / "texts" / "mine.toml")
    path.write_text("model: m\noutput_dir: out\ndata: {example: festival}\n")
    assert RLConfig.from_yaml(path).templates == "mtsql-v1"
    path.write_text("model: m\noutput_dir: out\ndata: {example: festival}\ntemplates: texts/absent.toml\n")
    with pytest.raises(ValueError, match="cannot read template file"):
        RLConfig.from_yaml(path)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("rl-*.yaml")), ids=lambda p: p.name)
def test_example_run_files_parse(path: Path) -> None:
    config = RLConfig.from_yaml(path)
    assert Path(config.output_dir).is_absolute() and config.num_generations >= 2
    assert config.grpo_settings(cuda=True)["learning_rate"] > 0


def test_one_row_per_question_or_dialogue_with_hardness_and_depth(example: Any, dialogues: list[Dialogue]) -> None:
    chosen = dialogues[:6]
    rows, stats = episode_rows(chosen, example.db_dir, episode="question", hardness=["easy", "medium", "hard", "extra"])
    assert stats.rows == len(rows) == sum(len(d.turns) for d in chosen)
    assert [parse_key(row["prompt"]) for row in rows[:3]] == [(chosen[0].id, 0), (chosen[0].id, 1), (chosen[0].id, 2)]
    assert [row["depth"] for row in rows[:3]] == [1, 2, 3] and rows[0]["hardness"] == "easy"
    easy, filtered = episode_rows(chosen, example.db_dir, episode="question", hardness=["easy"])
    assert {row["hardness"] for row in easy} == {"easy"} and filtered.filtered == len(rows) - len(easy)
    whole, _ = episode_rows(chosen, example.db_dir, episode="dialogue", hardness=["easy", "medium", "hard", "extra"])
    assert [row["prompt"] for row in whole] == [d.id for d in chosen] and whole[0]["depth"] == len(chosen[0].turns)
    for row in whole:  # a dialogue is as hard as its hardest question
        levels = [r["hardness"] for r in rows if r["dialogue_id"] == row["dialogue_id"]]
        assert row["hardness"] == max(levels, key=["easy", "medium", "hard", "extra"].index)
    broken = dataclasses.replace(
        chosen[0], id="broken", turns=(*chosen[0].turns[:1], Turn(1, "?", "SELECT nope FROM x"))
    )
    lost = dataclasses.replace(chosen[0], id="lost", db_id="no_such_db")
    rows, stats = episode_rows([broken, lost], example.db_dir, episode="question", hardness=["easy", "medium"])
    assert [row["prompt"] for row in rows] == [episode_key("broken", 0)]
    assert (stats.unusable_gold, stats.missing_database) == (1, 3)  # questions left out
    assert parse_key("sparc/dev/0001") == ("sparc/dev/0001", None)


def test_empty_gold_questions_can_be_dropped(example: Any, dialogues: list[Dialogue]) -> None:
    """``data.empty_gold: drop``: no prompt whose gold returns no rows (no dialogue holding one, for dialogues)."""
    levels = ["easy", "medium", "hard", "extra"]
    empty = dataclasses.replace(
        dialogues[0],
        id="empty",
        turns=(*dialogues[0].turns[:1], Turn(1, "?", "SELECT name FROM artist WHERE country = 'Atlantis'")),
    )
    kept, _ = episode_rows([empty], example.db_dir, episode="question", hardness=levels)
    rows, stats = episode_rows([empty], example.db_dir, episode="question", hardness=levels, drop_empty_gold=True)
    assert len(kept) == 2 and [row["prompt"] for row in rows] == [episode_key("empty", 0)] and stats.empty_gold == 1
    whole, stats = episode_rows([empty], example.db_dir, episode="dialogue", hardness=levels, drop_empty_gold=True)
    assert whole == [] and stats.empty_gold == 2
    with pytest.raises(ValueError, match="empty_gold must be keep or drop"):
        RLConfig.from_dict({"model": "m", "output_dir": "o", "data": {"example": "festival", "empty_gold": "half"}})


# --- the question-episode cut -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gold(checkpoint: Path, example: Any, dialogues: list[Dialogue]) -> list[Trajectory]:
    engine = RolloutEngine(
        TokenizerOnly(str(checkpoint)), example.db_dir, RolloutConfig(), tables=example.tables, rewards=RewardConfig()
    )
    return list(gold_records(engine, dialogues[:3]))


def test_a_question_episode_is_its_segments_after_everything_before_them(
    gold: list[Trajectory], checkpoint: Path
) -> None:
    from transformers import AutoTokenizer

    decode = AutoTokenizer.from_pretrained(checkpoint).decode
    record = gold[0]
    assert record.n_turns == 3
    segments = record.segments
    model_1 = [s for s in segments if s.kind == "model" and s.turn == 1]
    sample = cut_question(record, 1)
    assert sample is not None
    start, end = model_1[0].start, model_1[-1].end
    assert sample.prompt_ids == record.prompt_ids + record.completion_ids[:start]
    assert sample.completion_ids == record.completion_ids[start:end]
    assert sample.env_mask == record.completion_mask[start:end] and sample.logprobs == record.logprobs[start:end]
    assert len(sample.completion_ids) == len(sample.env_mask) == len(sample.logprobs)
    # the prompt ends with the second question, the completion with the model's answer and its closing token
    assert record.turns[1].question in decode(sample.prompt_ids[-40:])
    assert decode(sample.completion_ids).rstrip().endswith("</answer_sql><|im_end|>")
    # the tool replies inside the question are masked, the model's messages are not
    for segment in segments:
        if segment.turn == 1 and segment.end <= end:
            bits = set(sample.env_mask[segment.start - start : segment.end - start])
            assert bits == ({1} if segment.kind == "model" else {0})
    assert 0 in sample.env_mask and sample.env_mask[0] == sample.env_mask[-1] == 1
    assert sample.rewards is not None
    assert sample.rewards == {k: record.rewards["questions"][1][k] for k in (*COMPONENTS, "total")}
    first = cut_question(record, 0)
    assert first is not None and first.prompt_ids == record.prompt_ids
    assert cut_question(record, 7) is None


def test_a_dialogue_episode_ends_with_its_last_model_segment(gold: list[Trajectory]) -> None:
    record = gold[1]
    sample = cut_dialogue(record)
    assert sample is not None
    last = max(s.end for s in record.segments if s.kind == "model")
    assert sample.prompt_ids == record.prompt_ids and sample.completion_ids == record.completion_ids[:last]
    assert sample.rewards is not None and sample.rewards["total"] == pytest.approx(record.rewards["total"])
    # a question the context never reached counts 0 in the mean
    short = dataclasses.replace(record, rewards={**record.rewards, "questions": record.rewards["questions"][:1]})
    cut = cut_dialogue(short)
    assert cut is not None and cut.rewards is not None
    assert cut.rewards["total"] == pytest.approx(record.rewards["questions"][0]["total"] / record.n_turns)


def test_reward_functions_return_one_component_each() -> None:
    functions = reward_functions()
    assert [f.__name__ for f in functions] == list(COMPONENTS)
    rewards = [{name: float(i) for i, name in enumerate((*COMPONENTS, "total"))}, None]
    assert functions[4](["a", "b"], **{REWARDS_FIELD: rewards}) == [4.0, None]
    with pytest.raises(ValueError, match="unknown reward component"):
        ComponentReward("style")


# --- the rollout function on a real trainer -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trainer(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mtsql.train.rl.trainer import build_trainer

    return build_trainer(run_config(checkpoint, tmp_path_factory.mktemp("run")))


@pytest.fixture(scope="module")
def batch(trainer: Any) -> list[dict[str, Any]]:
    return next(iter(trainer.get_train_dataloader()))


def test_the_rollout_function_returns_one_token_exact_completion_per_prompt(trainer: Any, batch: list[dict]) -> None:
    import torch

    prompts = [row["prompt"] for row in batch]
    # TRL's sampler: the curriculum's stage (questions 2 and 3), each prompt num_generations times in a row
    assert len(prompts) == 4 and prompts[0] == prompts[1] and prompts[2] == prompts[3]
    assert all(parse_key(p)[1] in (1, 2) for p in prompts)
    trainer.model.train()  # as in the training loop
    out = trainer.rollout_func(prompts, trainer)
    assert trainer.model.training  # generation put the model in eval mode, and back
    records = trainer.rollout_func.last_records
    assert len(records) == 4
    fields = ("prompt_ids", "completion_ids", "logprobs", "env_mask", REWARDS_FIELD)
    assert all(len(out[name]) == 4 for name in fields)
    for i, (prompt, record) in enumerate(zip(prompts, records, strict=True)):
        completion, mask, logprobs = out["completion_ids"][i], out["env_mask"][i], out["logprobs"][i]
        assert len(completion) == len(mask) == len(logprobs) > 0
        assert all(lp == 0.0 for lp, bit in zip(logprobs, mask, strict=True) if not bit)
        question = parse_key(prompt)[1]
        sample = cut_question(record, question)
        assert sample is not None and sample.completion_ids == completion and sample.prompt_ids == out["prompt_ids"][i]
        assert out[REWARDS_FIELD][i] == sample.rewards
    # gold context: both samples of a question see the same prompt (the earlier questions answered with gold)
    assert out["prompt_ids"][0] == out["prompt_ids"][1]
    dialogue_id, question = parse_key(prompts[0])
    gold_sql = trainer.rollout_func.dialogues[dialogue_id].turns[question - 1].query
    assert gold_sql in trainer.processing_class.decode(out["prompt_ids"][0])
    # the logprobs are the trainer model's, under the sampling temperature: what GRPO's ratio starts from
    model = trainer.model.eval()
    for i in range(4):
        ids = torch.tensor([out["prompt_ids"][i] + out["completion_ids"][i]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(out["prompt_ids"][i]) - 1 : -1].float()
        expected = torch.log_softmax(logits / trainer.args.temperature, -1)
        expected = expected.gather(-1, torch.tensor(out["completion_ids"][i])[:, None])[:, 0]
        for j, bit in enumerate(out["env_mask"][i]):
            if bit:
                assert out["logprobs"][i][j] == pytest.approx(expected[j].item(), abs=1e-4)


def test_no_environment_token_ever_enters_the_loss(trainer: Any, batch: list[dict], check_loss_mask: Any) -> None:
    """TRL's own batch: its loss mask (completion_mask * tool_mask) is exactly the episodes' model-token mask."""
    output = trainer._generate_and_score_completions([dict(row) for row in batch])
    records = trainer.rollout_func.last_records
    assert not trainer.args.mask_truncated_completions  # so every model token must be in the loss
    env_tokens = check_loss_mask(output, records, [r["prompt"] for r in batch])
    assert env_tokens > 0  # the batch does have tool replies inside its completions
    loss_mask = (output["completion_mask"] * output["tool_mask"]).tolist()
    assert output["num_items_in_batch"].item() == sum(map(sum, loss_mask))


def test_whole_dialogue_episodes_and_policy_played_context(checkpoint: Path, tmp_path: Path) -> None:
    from mtsql.env.templates import builtin_template_text
    from mtsql.train.rl.trainer import build_trainer

    texts = tmp_path / "mine.toml"  # the run's own environment texts
    texts.write_text(builtin_template_text().replace('"mtsql-v1"', '"mine-v1"'), encoding="utf-8")
    whole = build_trainer(
        run_config(checkpoint, tmp_path / "whole", episode="dialogue", curriculum=None, templates=str(texts))
    )
    prompts = [row["prompt"] for row in next(iter(whole.get_train_dataloader()))]
    out = whole.rollout_func(prompts, whole)
    for i, (prompt, record) in enumerate(zip(prompts, whole.rollout_func.last_records, strict=True)):
        assert parse_key(prompt) == (record.dialogue_id, None) and record.n_turns == len(record.turns)
        assert record.settings.template_version == "mine-v1"
        last = max(s.end for s in record.segments if s.kind == "model")
        assert out["prompt_ids"][i] == record.prompt_ids
        assert out["completion_ids"][i] == record.completion_ids[:last]
        assert out["env_mask"][i] == record.completion_mask[:last]
        questions = record.rewards["questions"]
        assert out[REWARDS_FIELD][i]["total"] == pytest.approx(sum(q["total"] for q in questions) / record.n_turns)
    sampled = build_trainer(run_config(checkpoint, tmp_path / "sampled", context="sampled"))
    prompts = [row["prompt"] for row in next(iter(sampled.get_train_dataloader()))]
    out = sampled.rollout_func(prompts, sampled)
    # the policy played the earlier questions too: each sample has its own context, the gold SQL is not in it
    assert out["prompt_ids"][0] != out["prompt_ids"][1]
    dialogue_id, question = parse_key(prompts[0])
    assert question is not None and question >= 1
    gold_sql = sampled.rollout_func.dialogues[dialogue_id].turns[0].query
    assert gold_sql not in sampled.processing_class.decode(out["prompt_ids"][0])
    records = sampled.rollout_func.last_records
    assert all(step.turn <= question for step in records[0].steps) and records[0].n_turns == question + 1
    assert all(len(step.text) > 0 for step in records[0].steps if step.turn < question)


# --- a run: metrics, checkpoints, resume, plots ---------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_train_as_one_run(checkpoint: Path, tmp_path: Path) -> None:
    """Two CPU processes (DDP over gloo, as on GPUs with NCCL): each process plays its share of the episodes on its
    own copy of the model, the main process alone writes metrics and summary."""
    import os
    import subprocess
    import sys

    import yaml

    from mtsql.train.rl.metrics import read_metrics

    run = {
        "model": str(checkpoint),
        "output_dir": str(tmp_path / "out"),
        "data": {"example": "festival", "limit": 4},
        "num_generations": 2,
        "sampling": {"max_tokens": 12, "max_steps": 2, "temperature": 1.0},
        "curriculum": {"stages": [{"name": "first", "max_depth": 1, "steps": 1}, {"name": "rest", "min_depth": 2}]},
        "training": {"max_steps": 2, "per_device_train_batch_size": 2, "save_steps": 1, "disable_tqdm": True},
    }
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(run), encoding="utf-8")
    # torchrun, since accelerate launches several CPU processes only through MPI; accelerate reads the same variables
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*launch, "-m", "mtsql", "rl", "train", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "ACCELERATE_USE_CPU": "true"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["processes"], summary["episodes_per_step"], summary["steps"]) == (2, 4, 2)
    assert [e["stage"] for e in summary["curriculum"]] == ["first", "rest"]
    lines = read_metrics(out / "metrics.jsonl")
    assert [line["step"] for line in lines if "reward" in line] == [1, 2]  # logged once, by the main process
    assert (out / "checkpoint-2" / "curriculum.json").is_file() and (out / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_run_logs_every_component_checkpoints_resumes_and_plots(checkpoint: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mtsql.cli.main import app
    from mtsql.train.rl.metrics import read_metrics
    from mtsql.train.rl.trainer import train_rl

    curriculum = {"stages": [{"name": "first", "max_depth": 1, "steps": 1}, {"name": "rest", "min_depth": 2}]}
    training = {"max_steps": 2, "per_device_train_batch_size": 4, "save_steps": 1, "disable_tqdm": True}
    training["report_to"] = "tensorboard"
    config = run_config(checkpoint, tmp_path / "out", curriculum=curriculum, training=training)
    output = train_rl(config)
    assert (output / "checkpoint-1" / "curriculum.json").is_file() and (output / "model.safetensors").is_file()
    config.training["max_steps"] = 3
    train_rl(config)  # resumes from checkpoint-2
    lines = [line for line in read_metrics(output / "metrics.jsonl") if "reward" in line]
    assert [line["step"] for line in lines] == [1, 2, 3]
    for line in lines:
        for name in COMPONENTS:
            assert f"rewards/{name}/mean" in line
        for name in ("completions/mean_length", "episode/env_tokens", "episode/steps", "episode/rollout_s", "reward"):
            assert name in line
    assert [line["curriculum/stage"] for line in lines] == [0, 1, 1]
    summary = json.loads((output / "summary.json").read_text())
    assert summary["steps"] == 3 and [e["stage"] for e in summary["curriculum"]] == ["first", "rest"]
    state = json.loads((output / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged: dict[str, list[int]] = {}  # TensorBoard too: one event folder per run, the resumed one adds step 3
    for folder in sorted((output / "runs").iterdir()):
        events = EventAccumulator(str(folder))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            logged.setdefault(tag, []).extend(event.step for event in events.Scalars(tag))
    for name in ("reward", *(f"rewards/{c}/mean" for c in COMPONENTS), "curriculum/stage", "episode/rollout_s"):
        assert set(logged[f"train/{name}"]) == {1, 2, 3}, name  # curriculum/stage is in the end-of-run log too
    result = CliRunner().invoke(app, ["rl", "plot", "--metrics", str(output / "metrics.jsonl"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    stems = ("reward", *(f"reward_{name}" for name in COMPONENTS), "response_length", "curriculum", "time", "overview")
    for stem in stems:
        assert (tmp_path / f"{stem}.png").stat().st_size > 1000, stem


def test_the_commands_refuse_bad_input(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mtsql.cli.main import app

    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m\noutput_dir: o\ndata: {example: festival}\ntraining: {top_p: 0.5}\n")
    result = CliRunner().invoke(app, ["rl", "train", "--config", str(bad)])
    assert result.exit_code == 2 and "sampling.top_p" in result.output
    empty = tmp_path / "metrics.jsonl"
    empty.write_text(json.dumps({"step": 1, "train_runtime": 3.0}) + "\n")
    result = CliRunner().invoke(app, ["rl", "plot", "--metrics", str(empty), "--out", str(tmp_path / "plots")])
    assert result.exit_code == 2 and "no reward" in result.output
