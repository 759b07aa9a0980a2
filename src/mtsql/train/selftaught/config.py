"""A self-taught run described by one YAML file (:class:`SelfTaughtConfig`)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mtsql.data.dialogue import DATASETS
from mtsql.env.memory import HISTORY_MODES, HistoryMode
from mtsql.env.templates import DEFAULT_TEMPLATES, load_templates, templates_relative_to
from mtsql.train.sft import LoraSettings, resolve_config_path

if TYPE_CHECKING:
    from mtsql.rollout.engine import RolloutConfig


@dataclass(slots=True)
class SelfTaughtConfig:
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
    shortcut is never kept either way)."""

    model: str
    output_dir: str
    example: str | None = None
    dataset: str | None = None
    split: str = "train"
    data_dir: str | None = None
    limit: int | None = None
    sample: int | None = None
    sample_seed: int = 0
    backend: str = "transformers"
    backend_options: dict[str, Any] = field(default_factory=dict)
    rounds: int = 3
    samples: int = 20
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 512
    max_steps: int = 4
    max_total_tokens: int | None = None
    concurrency: int = 32
    history_mode: HistoryMode = "predicted"
    thinking: bool = True
    templates: str = DEFAULT_TEMPLATES
    keep_easy: int = 2
    keep_hard: int = 3
    easy_hardness: list[str] = field(default_factory=lambda: ["easy"])
    embedding_device: str = "cpu"
    gold_round0: bool = False
    empty_gold: str = "keep"
    max_length: int | None = None
    lora: LoraSettings | None = None
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.example is None) == (self.dataset is None):
            raise ValueError("give exactly one of 'example' and 'dataset'")
        if self.dataset is not None:
            if self.dataset not in DATASETS:
                raise ValueError(f"unknown dataset {self.dataset!r}: choose one of {', '.join(DATASETS)}")
            if self.data_dir is None:
                raise ValueError("'data_dir' is required with 'dataset'")
        if self.history_mode not in HISTORY_MODES:
            raise ValueError(f"history_mode must be one of {', '.join(HISTORY_MODES)}, not {self.history_mode!r}")
        for name in ("rounds", "samples", "keep_easy", "keep_hard", "max_tokens", "max_steps", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be at least 1, not {self.limit}")
        if self.empty_gold not in ("keep", "drop"):
            raise ValueError(f"empty_gold must be keep or drop, not {self.empty_gold!r}")
        load_templates(self.templates)  # a bad file fails here, not after the first round's sampling

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> SelfTaughtConfig:
        """Read a run's YAML file (keys: the fields). ``output_dir``, ``data_dir`` and a ``templates`` file are
        relative to the file; so is ``model`` when it exists there (anything else is a hub id)."""
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("model", "output_dir"):
            if key not in values:
                raise ValueError(f"{path}: '{key}' is required")
        base = Path(path).resolve().parent
        values["model"] = resolve_config_path(values["model"], base)
        for key in ("output_dir", "data_dir"):
            if values.get(key) is not None:
                values[key] = str(base / str(values[key]))
        if "templates" in values:
            values["templates"] = templates_relative_to(str(values["templates"]), base)
        lora = values.get("lora")
        values["lora"] = LoraSettings(**lora) if isinstance(lora, dict) else (LoraSettings() if lora is True else None)
        for key in ("backend_options", "training"):
            values[key] = dict(values.get(key) or {})
        return cls(**values)

    def rollout_config(self) -> RolloutConfig:
        """The rollout engine's settings for a round."""
        from mtsql.rollout.engine import RolloutConfig

        return RolloutConfig(
            samples=self.samples,
            max_steps=self.max_steps,
            history_mode=self.history_mode,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_total_tokens=self.max_total_tokens,
            concurrency=self.concurrency,
            enable_thinking=self.thinking,
            templates=self.templates,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
