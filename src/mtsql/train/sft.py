"""Stage 1's fine-tuning: TRL's SFTTrainer on pre-tokenized trajectories, the loss on the model's own tokens.

The rows come from :func:`mtsql.train.data.sft_example` (``input_ids`` and ``assistant_masks``), so the tokens
trained on are the tokens of the rollouts, and the loss mask is their ``completion_mask``. A run is described by
a YAML file (:class:`SFTRunConfig`): the model, the data files, the output folder, optional LoRA (peft), and a
``training`` section passed to ``trl.SFTConfig`` as is, so every option of TRL and transformers' Trainer
(precision, DeepSpeed/FSDP through accelerate, schedulers, logging) is available without mtsql wrapping it.
A run resumes from the last checkpoint in its output folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtsql.errors import InputError
from mtsql.train.config import LoraSettings, RunConfig

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


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(slots=True)
class SFTRunConfig(RunConfig):
    """One SFT run, read from YAML by :meth:`~mtsql.train.config.RunConfig.from_yaml`: paths in the file are
    relative to its folder (``model`` only when it exists there, since it may be a hub id), so a run's file means
    the same from any working directory."""

    model: str = field(metadata={"help": "a checkpoint folder, a packaged model's name or a hub id", "path": "model"})
    data: list[str] = field(
        metadata={"help": "JSONL files of SFT rows (one file or a list)", "path": "file", "convert": _as_list}
    )
    output_dir: str = field(metadata={"help": "checkpoints and the final model", "path": "file"})
    max_length: int | None = field(default=None, metadata={"help": "truncate longer rows (counted)"})
    lora: LoraSettings | None = field(default=None, metadata={"help": "peft LoRA: true, a mapping, or none"})
    training: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "trl.SFTConfig keyword arguments, passed as is"}
    )


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
            raise InputError(f"{path}: not SFT rows (columns {part.column_names}): build them with sft build-data")
        kinds.add(kind)
        parts.append(part.select_columns(list(ROW_KINDS[kind])))
    if not parts:
        raise InputError("no data files")
    if len(kinds) > 1:
        raise InputError("the data files mix trajectories and one-shot rows: train them separately")
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
