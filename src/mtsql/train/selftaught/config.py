"""A self-taught run described by one YAML file (:class:`SelfTaughtConfig`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mtsql.env.memory import HistoryMode, check_history_mode
from mtsql.env.templates import DEFAULT_TEMPLATES, load_templates
from mtsql.errors import ConfigError
from mtsql.train.config import DialogueSourceSettings, LoraSettings, RunConfig, SamplingSettings

if TYPE_CHECKING:
    from mtsql.rollout.engine import RolloutConfig


@dataclass(slots=True)
class SelfTaughtConfig(DialogueSourceSettings, RunConfig):
    """A self-taught run (see :mod:`mtsql.train.selftaught`). The pool is a bundled ``example`` or a benchmark
    (``dataset``, ``split``, ``data_dir``), optionally its first ``limit`` dialogues or a ``sample`` of that many
    drawn with ``sample_seed``; ``backend`` and
    ``backend_options`` are those of :func:`mtsql.backends.load_backend` (a backend that loads the checkpoint
    itself, since each round samples from a new one); the sampling settings are :class:`RolloutConfig`'s;
    ``templates`` the environment's text set (a built-in name or a TOML file);
    ``max_length``, ``lora`` and ``training`` are each round's :class:`~mtsql.train.sft.SFTRunConfig` settings
    (``training`` goes to ``trl.SFTConfig`` as is); ``gold_round0`` adds gold trajectories to round 0's data
    (an extension: the original starts from sampled trajectories only); ``empty_gold``: ``keep`` or ``drop`` the
    questions whose gold returns no rows (a kept trajectory must also be an exact match, so an empty-result
    shortcut is never kept either way).

    Read from YAML by :meth:`~mtsql.train.config.RunConfig.from_yaml` (keys: the fields): ``output_dir``,
    ``data_dir`` and a ``templates`` file are relative to the file; so is ``model`` when it exists there (anything
    else is a hub id)."""

    model: str = field(metadata={"help": "round 0's model: a checkpoint folder or a hub id", "path": "model"})
    output_dir: str = field(metadata={"help": "the run's folder (state, rounds, models)", "path": "file"})
    backend: str = field(default="transformers", metadata={"help": "the sampling backend (load_backend's name)"})
    backend_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the backend's options"})
    rounds: int = field(default=3, metadata={"help": "rounds of sample, select, fine-tune"})
    samples: int = field(default=20, metadata={"help": "episodes per dialogue each round"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling's p"})
    top_k: int = field(default=0, metadata={"help": "top-k sampling (0: off)"})
    max_tokens: int = field(default=512, metadata={"help": "tokens per assistant message"})
    max_steps: int = field(default=4, metadata={"help": "assistant messages per question"})
    max_total_tokens: int | None = field(default=None, metadata={"help": "tokens per episode (prompt included)"})
    concurrency: int = field(default=32, metadata={"help": "episodes in flight"})
    history_mode: HistoryMode = field(default="predicted", metadata={"help": "what the dialogue memory holds"})
    thinking: bool = field(default=True, metadata={"help": "Qwen3's thinking switch"})
    templates: str = field(
        default=DEFAULT_TEMPLATES, metadata={"help": "the environment's texts: a built-in set or a TOML file",
                                             "path": "templates"}
    )  # fmt: skip
    keep_easy: int = field(default=2, metadata={"help": "shortest correct trajectories kept per easy question"})
    keep_hard: int = field(default=3, metadata={"help": "diverse longest ones kept per other question"})
    easy_hardness: list[str] = field(
        default_factory=lambda: ["easy"], metadata={"help": "the hardness levels counted as easy"}
    )
    embedding_device: str = field(default="cpu", metadata={"help": "where MiniLM embeds for clustering"})
    gold_round0: bool = field(default=False, metadata={"help": "add gold trajectories to round 0's data"})
    empty_gold: str = field(default="keep", metadata={"help": "keep or drop questions whose gold returns no rows"})
    max_length: int | None = field(default=None, metadata={"help": "SFT: truncate longer rows"})
    lora: LoraSettings | None = field(default=None, metadata={"help": "SFT: peft LoRA (true, a mapping, or none)"})
    training: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "SFT: trl.SFTConfig keyword arguments, passed as is"}
    )

    def __post_init__(self) -> None:
        self.check_source()
        check_history_mode(self.history_mode)
        for name in ("rounds", "samples", "keep_easy", "keep_hard", "max_tokens", "max_steps", "concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.empty_gold not in ("keep", "drop"):
            raise ConfigError(f"empty_gold must be keep or drop, not {self.empty_gold!r}")
        load_templates(self.templates)  # a bad file fails here, not after the first round's sampling

    def sampling(self) -> SamplingSettings:
        """The run's sampling settings (its fields of the same names)."""
        return SamplingSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SamplingSettings)})

    def rollout_config(self) -> RolloutConfig:
        """The rollout engine's settings for a round."""
        return self.sampling().rollout_config(
            samples=self.samples, history_mode=self.history_mode, concurrency=self.concurrency, templates=self.templates
        )
