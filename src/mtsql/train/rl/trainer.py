"""Stage 2's trainer: TRL's GRPOTrainer with the rollout engine as its ``rollout_func``, one reward function per
component, the curriculum's sampler, JSONL metrics, checkpoints and resume.

Layout of ``output_dir``::

    rl_config.json       the run's settings, as read from its YAML file
    metrics.jsonl        one line per log (see mtsql.train.rl.metrics)
    checkpoint-N/        the trainer's checkpoints, each with curriculum.json (the curriculum's state)
    curriculum.json      the curriculum's final state and stage history
    summary.json         steps, prompts, the curriculum's history
    model files          the final model (LoRA merged) and tokenizer
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from trl import GRPOTrainer

from mtsql.models.packaged import resolve_model
from mtsql.train.files import write_json
from mtsql.train.rl.config import RLConfig
from mtsql.train.rl.curriculum import Curriculum, CurriculumSampler
from mtsql.train.rl.episodes import episode_rows
from mtsql.train.rl.metrics import read_metrics
from mtsql.train.rl.rollout import EpisodeRollout, reward_functions

log = logging.getLogger(__name__)

CURRICULUM_FILE = "curriculum.json"


class MetricsCallback(TrainerCallback):
    """Appends each log (with its ``step``) to ``path`` as one JSON line, on the main process. A resumed run first
    drops the lines written after its checkpoint, so the file never holds a step twice."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or not self.path.is_file():
            return
        kept = [line for line in read_metrics(self.path) if line.get("step", 0) <= state.global_step]
        self.path.write_text("".join(json.dumps(line) + "\n" for line in kept), encoding="utf-8")

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps({"step": state.global_step, **logs}) + "\n")


class MTSQLGRPOTrainer(GRPOTrainer):
    """GRPOTrainer drawing its prompts through ``curriculum`` (when given) and logging its stage."""

    def __init__(self, *args: Any, curriculum: Curriculum | None = None, **kwargs: Any) -> None:
        self.curriculum = curriculum
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, dataset: Any = None) -> Any:
        if self.curriculum is None:
            return super()._get_train_sampler(dataset)
        dataset = dataset if dataset is not None else self.train_dataset
        return CurriculumSampler(
            self.curriculum,
            num_samples=len(dataset),
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.curriculum is not None:  # the stage the step trained in (it may have advanced at its end)
            logs["curriculum/stage"] = self.curriculum.stage_at(self.state.global_step)
        super().log(logs, start_time)


class CurriculumCallback(TrainerCallback):
    """Advances the curriculum after each optimizer step (schedule) and each log (reward threshold), and saves its
    state into every checkpoint."""

    def __init__(self, curriculum: Curriculum) -> None:
        self.curriculum = curriculum

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        if self.curriculum.on_step(state.global_step):
            self._report(state)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        reward = (logs or {}).get("reward")
        if reward is not None and self.curriculum.on_reward(state.global_step, float(reward)):
            self._report(state)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                write_json(folder / CURRICULUM_FILE, self.curriculum.state_dict())

    def _report(self, state: TrainerState) -> None:
        if state.is_world_process_zero:
            event = self.curriculum.history[-1]
            log.info("curriculum: stage %r from step %d (%s)", event["stage"], event["step"], event["reason"])


def build_trainer(config: RLConfig) -> MTSQLGRPOTrainer:
    """The trainer of ``config``: its prompts (:func:`~mtsql.train.rl.episodes.episode_rows`), curriculum,
    rollout function, reward functions and callbacks. Raises ``ValueError`` when no prompt is left."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig

    data = config.data
    source = data.load_source()
    dialogues = source.dialogues
    rows, stats = episode_rows(
        dialogues,
        source.db_dir,
        episode=config.episode,
        hardness=data.hardness,
        drop_empty_gold=data.empty_gold == "drop",
    )
    if not rows:
        raise ValueError(f"no training prompt: {asdict(stats)}")
    args = GRPOConfig(**config.grpo_settings(cuda=torch.cuda.is_available()))
    curriculum = Curriculum(config.curriculum, rows, seed=args.seed) if config.curriculum is not None else None
    callbacks: list[TrainerCallback] = [MetricsCallback(Path(config.output_dir) / "metrics.jsonl")]
    if curriculum is not None:
        callbacks.append(CurriculumCallback(curriculum))
        if curriculum.dropped:
            log.warning("curriculum: stage(s) %s select no prompt and are skipped", ", ".join(curriculum.dropped))
    peft_config = config.lora.peft_config() if config.lora is not None else None
    rollout = EpisodeRollout(config, {d.id: d for d in dialogues}, source.db_dir, source.tables)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are using 'rollout_func'")
        model = resolve_model(config.model)  # a packaged model's name or a .gguf file: its checkpoint folder
        return MTSQLGRPOTrainer(
            model=model,
            reward_funcs=reward_functions(),
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=AutoTokenizer.from_pretrained(model),
            rollout_func=rollout,
            peft_config=peft_config,
            callbacks=callbacks,
            curriculum=curriculum,
        )


def train_rl(config: RLConfig) -> Path:
    """Train, resuming from the output folder's last checkpoint (the curriculum's state too) if there is one;
    save the final model (LoRA merged), the tokenizer, the curriculum's state and ``summary.json`` there."""
    from transformers.trainer_utils import get_last_checkpoint

    output = Path(config.output_dir)
    trainer = build_trainer(config)
    last = get_last_checkpoint(str(output)) if output.is_dir() else None
    curriculum = trainer.curriculum
    if last is not None and curriculum is not None and (Path(last) / CURRICULUM_FILE).is_file():
        curriculum.load_state_dict(json.loads((Path(last) / CURRICULUM_FILE).read_text(encoding="utf-8")))
    if trainer.accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        write_json(output / "rl_config.json", config.to_dict())
    trainer.train(resume_from_checkpoint=last)
    if config.lora is None:
        trainer.save_model(str(output))  # gathers sharded (ZeRO-3, FSDP) weights
    elif trainer.accelerator.is_main_process:
        trainer.accelerator.unwrap_model(trainer.model).merge_and_unload().save_pretrained(output)
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(output)
        args = trainer.args
        processes = trainer.accelerator.num_processes
        summary = {
            "steps": trainer.state.global_step,
            "prompts": len(trainer.train_dataset),
            "processes": processes,
            "episodes_per_step": args.per_device_train_batch_size * args.gradient_accumulation_steps * processes,
            "curriculum": None if curriculum is None else curriculum.history,
        }
        if curriculum is not None:
            write_json(output / CURRICULUM_FILE, curriculum.state_dict())
        write_json(output / "summary.json", summary)
    return output
