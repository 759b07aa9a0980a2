"""Stage 1's fine-tuning: TRL's SFTTrainer on pre-tokenized trajectories, the loss on the model's own tokens.

The rows come from :func:`mtsql.train.data.sft_example` (``input_ids`` and ``assistant_masks``), so the tokens
trained on are the tokens of the rollouts, and the loss mask is their ``completion_mask``. A run is described by
a YAML file (:class:`SFTRunConfig`): the model, the data files, the output folder, optional LoRA (peft), and a
``training`` section passed to ``trl.SFTConfig`` as is, so every option of TRL and transformers' Trainer
(precision, DeepSpeed/FSDP through accelerate, schedulers, logging) is available without mtsql wrapping it.
A run resumes from the last checkpoint in its output folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: Defaults for a small run; anything in the YAML's ``training`` section overrides them.
TRAINING_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 1,
    "learning_rate": 1e-5,
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "lr_scheduler_type": "constant",
    "logging_steps": 10,
    "save_strategy": "steps",
    "save_steps": 500,
    "save_total_limit": 2,
    "report_to": "none",
    "seed": 0,
}


@dataclass(slots=True)
class LoraSettings:
    """peft's LoRA: rank, alpha, dropout and the modules adapted (``all-linear`` by default)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"

    def peft_config(self) -> Any:
        """peft's ``LoraConfig`` of these settings, for a causal LM (SFT and GRPO alike)."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=self.target_modules,
            task_type="CAUSAL_LM",
        )  # fmt: skip


@dataclass(slots=True)
class SFTRunConfig:
    """One SFT run. ``data`` are JSONL files of SFT rows; ``max_length`` truncates longer rows (counted)."""

    model: str
    data: list[str]
    output_dir: str
    max_length: int | None = None
    lora: LoraSettings | None = None
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> SFTRunConfig:
        """Read a run's YAML file. Paths in it are relative to the file's folder (``model`` only when it exists
        there, since it may be a hub id), so a run's file means the same from any working directory."""
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        unknown = set(values) - {"model", "data", "output_dir", "max_length", "lora", "training"}
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("model", "data", "output_dir"):
            if key not in values:
                raise ValueError(f"{path}: '{key}' is required")
        base = Path(path).resolve().parent
        data = values["data"] if isinstance(values["data"], list) else [values["data"]]
        lora = values.get("lora")
        return cls(
            model=resolve_config_path(values["model"], base),
            data=[str(base / str(item)) for item in data],
            output_dir=str(base / str(values["output_dir"])),
            max_length=values.get("max_length"),
            lora=LoraSettings(**lora) if isinstance(lora, dict) else (LoraSettings() if lora is True else None),
            training=dict(values.get("training") or {}),
        )


def resolve_config_path(value: str, base: Path) -> str:
    """``value`` relative to the config file's folder when it exists there; anything else (a hub id) as written."""
    candidate = base / str(value)
    return str(candidate) if not os.path.isabs(str(value)) and candidate.exists() else str(value)


#: The columns of the two kinds of rows: pre-tokenized trajectories, and the one-shot baseline's messages.
ROW_KINDS: dict[str, tuple[str, ...]] = {
    "trajectory": ("input_ids", "assistant_masks"),
    "one-shot": ("prompt", "completion"),
}


def load_rows(paths: list[str]) -> Any:
    """The SFT rows of ``paths`` as a ``datasets.Dataset``: trajectories (``input_ids``, ``assistant_masks``)
    or one-shot rows (``prompt``, ``completion`` messages, which TRL renders and trains on the completion of);
    all files of one kind."""
    from datasets import concatenate_datasets, load_dataset

    parts, kinds = [], set()
    for path in paths:
        part = load_dataset("json", data_files=str(path), split="train")
        kind = next((k for k, columns in ROW_KINDS.items() if set(columns) <= set(part.column_names)), None)
        if kind is None:
            raise ValueError(f"{path}: not SFT rows (columns {part.column_names}): build them with sft build-data")
        kinds.add(kind)
        parts.append(part.select_columns(list(ROW_KINDS[kind])))
    if not parts:
        raise ValueError("no data files")
    if len(kinds) > 1:
        raise ValueError("the data files mix trajectories and one-shot rows: train them separately")
    return concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def build_trainer(config: SFTRunConfig, train_dataset: Any | None = None) -> Any:
    """TRL's SFTTrainer for ``config`` (the rows of ``config.data`` unless ``train_dataset`` is given)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from mtsql.models.packaged import resolve_model

    path = resolve_model(config.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
    dataset = train_dataset if train_dataset is not None else load_rows(config.data)
    args = SFTConfig(
        output_dir=config.output_dir,
        max_length=config.max_length,
        # TRL defaults to bf16, which a CPU run cannot use.
        **{**TRAINING_DEFAULTS, **({} if torch.cuda.is_available() else {"bf16": False}), **config.training},
    )
    peft_config = config.lora.peft_config() if config.lora is not None else None
    return SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )


def train_sft(config: SFTRunConfig) -> Path:
    """Train, resuming from the output folder's last checkpoint if there is one; save the final model (merged
    with its LoRA adapter when LoRA is used, so it loads as a plain checkpoint) and the tokenizer there."""
    from transformers.trainer_utils import get_last_checkpoint

    trainer = build_trainer(config)
    output = Path(config.output_dir)
    last = get_last_checkpoint(str(output)) if output.is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    model = trainer.model
    if config.lora is not None:
        model = model.merge_and_unload()
    model.save_pretrained(output)
    trainer.processing_class.save_pretrained(output)
    return output
