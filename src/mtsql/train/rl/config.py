"""A GRPO run described by one YAML file: the model, the prompts, the episodes, the rewards, the curriculum,
where generation runs, and a ``training`` section passed to ``trl.GRPOConfig`` as is.

What mtsql owns is checked here and kept out of ``training``: the sampling settings are the rollout engine's
and become GRPOConfig's ``temperature``/``top_p``/``top_k`` (the loss must score tokens under the distribution
they were sampled from), the reward weights are :class:`~mtsql.rewards.RewardConfig`'s and become
``reward_weights``, ``num_generations`` is G, and ``generation.backend: vllm`` sets ``use_vllm``. Everything else
of TRL and transformers' Trainer (learning rate, batch sizes, KL ``beta``, loss type, precision, DeepSpeed/FSDP
through accelerate, ``vllm_mode``, logging) stays available without mtsql wrapping it. Paths in the file are
relative to its folder (``model`` only when it exists there, since it may be a hub id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from mtsql.env.memory import HistoryMode, check_history_mode
from mtsql.env.templates import DEFAULT_TEMPLATES, load_templates
from mtsql.errors import ConfigError
from mtsql.rewards.config import COMPONENTS, RewardConfig
from mtsql.sql.hardness import HARDNESS_LEVELS
from mtsql.train.config import DialogueSourceSettings, LoraSettings, RunConfig, SamplingSettings
from mtsql.train.rl.curriculum import CurriculumSettings

if TYPE_CHECKING:
    from mtsql.rollout.engine import RolloutConfig


class EpisodeKind(StrEnum):
    """What one GRPO completion is: one question (after everything before it) or a whole dialogue."""

    QUESTION = "question"
    DIALOGUE = "dialogue"


class ContextKind(StrEnum):
    """What precedes a question episode: the gold trajectory of the earlier questions, or the policy's own."""

    GOLD = "gold"
    SAMPLED = "sampled"


class GenerationBackend(StrEnum):
    """Who generates the rollouts: the trainer's own model, or vLLM."""

    TRAINER = "trainer"
    VLLM = "vllm"


EPISODE_KINDS: Final = tuple(kind.value for kind in EpisodeKind)
CONTEXT_KINDS: Final = tuple(kind.value for kind in ContextKind)
GENERATION_BACKENDS: Final = tuple(backend.value for backend in GenerationBackend)

#: Defaults of the ``training`` section (the original's learning rate; a log line and a metrics line per step).
TRAINING_DEFAULTS: Final[dict[str, Any]] = {
    "learning_rate": 1e-6,
    "lr_scheduler_type": "constant",
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 50,
    "save_total_limit": 2,
    "report_to": "none",
    "seed": 0,
}
#: GRPOConfig fields that the run's own sections set; writing them under ``training`` is an error.
_OWNED: Final = {
    "num_generations": "num_generations",
    "temperature": "sampling.temperature",
    "top_p": "sampling.top_p",
    "top_k": "sampling.top_k",
    "reward_weights": "rewards.*_weight",
    "use_vllm": "generation.backend",
    "output_dir": "output_dir",
}


def _or_none(value: Any) -> Any:
    """An empty ``curriculum:`` section means none."""
    return value or None


@dataclass(slots=True)
class DataSettings(DialogueSourceSettings):
    """The training prompts: the dialogues of :class:`~mtsql.train.config.DialogueSourceSettings`, only the
    questions whose gold hardness is in ``hardness``. ``empty_gold``: ``keep`` the questions whose gold returns no
    rows (as the original did) or ``drop`` them (any empty result execution-matches there);
    ``rewards.empty_gold_weight`` down-weights their outcome instead."""

    hardness: list[str] = field(
        default_factory=lambda: list(HARDNESS_LEVELS), metadata={"help": "the gold hardness levels trained on"}
    )
    empty_gold: str = field(default="keep", metadata={"help": "keep or drop questions whose gold returns no rows"})

    def __post_init__(self) -> None:
        self.check_source("data: ")
        if self.empty_gold not in ("keep", "drop"):
            raise ConfigError(f"data: empty_gold must be keep or drop, not {self.empty_gold!r}")
        unknown = sorted(set(self.hardness) - set(HARDNESS_LEVELS))
        if unknown:
            raise ConfigError(f"data: unknown hardness level(s) {unknown}; the levels are {', '.join(HARDNESS_LEVELS)}")


@dataclass(slots=True)
class GRPOSamplingSettings(SamplingSettings):
    """How episodes are sampled (:class:`~mtsql.train.config.SamplingSettings`); the temperature, top-p and top-k
    are GRPOConfig's too, and the temperature must be positive."""

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ConfigError("sampling: temperature must be positive (GRPO needs distinct samples)")
        for name in ("max_tokens", "max_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"sampling: {name} must be at least 1")


@dataclass(slots=True)
class GenerationSettings:
    """Where episodes are generated: ``trainer`` (the trainer's live model through transformers' ``generate``,
    batches of at most ``max_batch_size`` prompts) or ``vllm`` (TRL's vLLM, ``training.vllm_mode`` colocate or
    server; a server serves the model as ``server_model``, default the model's path); ``concurrency`` episodes
    are in flight per process."""

    backend: GenerationBackend = field(default="trainer", metadata={"help": "trainer or vllm"})
    max_batch_size: int = field(default=64, metadata={"help": "prompts per generate call (trainer)"})
    concurrency: int = field(default=256, metadata={"help": "episodes in flight per process"})
    server_model: str | None = field(default=None, metadata={"help": "the model's name on a vLLM server"})

    def __post_init__(self) -> None:
        if self.backend not in GENERATION_BACKENDS:
            raise ConfigError(f"generation: backend must be one of {', '.join(GENERATION_BACKENDS)}")
        if self.max_batch_size < 1 or self.concurrency < 1:
            raise ConfigError("generation: max_batch_size and concurrency must be at least 1")


@dataclass(slots=True)
class RLConfig(RunConfig):
    """One GRPO run (see the module docstring and ``docs/rl.md``).

    ``episode``: ``question`` (one question's loop, the earlier questions as context: ``context: gold`` plays them
    with the gold protocol, the same for all G samples; ``sampled`` lets the policy play them too) or ``dialogue``
    (the whole dialogue, its reward the mean over its questions). ``history_mode``: what the dialogue memory holds
    (``oracle``, the original's training setting, or ``predicted``). ``templates``: the environment's text set, a
    built-in name or a TOML file (relative to the YAML file).

    Read from YAML by :meth:`~mtsql.train.config.RunConfig.from_yaml` (keys: the fields; sections: mappings of
    their settings) or from a mapping by :meth:`~mtsql.train.config.RunConfig.from_dict`.
    """

    model: str = field(metadata={"help": "the policy: a checkpoint folder or a hub id", "path": "model"})
    output_dir: str = field(metadata={"help": "checkpoints, metrics and the final model", "path": "file"})
    data: DataSettings = field(metadata={"help": "the training prompts"})
    episode: EpisodeKind = field(default="question", metadata={"help": "question or dialogue"})
    context: ContextKind = field(default="gold", metadata={"help": "earlier questions played by gold or sampled"})
    history_mode: HistoryMode = field(default="oracle", metadata={"help": "what the dialogue memory holds"})
    templates: str = field(
        default=DEFAULT_TEMPLATES, metadata={"help": "the environment's texts: a built-in set or a TOML file",
                                             "path": "templates"}
    )  # fmt: skip
    num_generations: int = field(default=5, metadata={"help": "G: samples per prompt"})
    sampling: GRPOSamplingSettings = field(
        default_factory=GRPOSamplingSettings, metadata={"help": "how episodes are sampled"}
    )
    rewards: RewardConfig = field(default_factory=RewardConfig, metadata={"help": "reward weights and options"})
    curriculum: CurriculumSettings | None = field(
        default=None, metadata={"help": "stages by difficulty (none: every prompt throughout)", "convert": _or_none}
    )
    generation: GenerationSettings = field(
        default_factory=GenerationSettings, metadata={"help": "where episodes are generated"}
    )
    lora: LoraSettings | None = field(default=None, metadata={"help": "peft LoRA: true, a mapping, or none"})
    training: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "trl.GRPOConfig keyword arguments, passed as is"}
    )

    def __post_init__(self) -> None:
        if self.episode not in EPISODE_KINDS:
            raise ConfigError(f"episode must be one of {', '.join(EPISODE_KINDS)}, not {self.episode!r}")
        if self.context not in CONTEXT_KINDS:
            raise ConfigError(f"context must be one of {', '.join(CONTEXT_KINDS)}, not {self.context!r}")
        check_history_mode(self.history_mode)
        if self.num_generations < 2:
            raise ConfigError("num_generations must be at least 2: GRPO compares samples of the same prompt")
        load_templates(self.templates)  # a bad file fails before the model is loaded
        owned = sorted(set(self.training) & set(_OWNED))
        if owned:
            where = ", ".join(f"{key} (set {_OWNED[key]})" for key in owned)
            raise ConfigError(f"training: {where} instead")

    def rollout_config(self) -> RolloutConfig:
        """The rollout engine's settings for the run's episodes (the SQL time limit and isolation are the rewards')."""
        return self.sampling.rollout_config(
            history_mode=self.history_mode,
            concurrency=self.generation.concurrency,
            templates=self.templates,
            rewards=self.rewards,
        )

    def grpo_settings(self, *, cuda: bool) -> dict[str, Any]:
        """The keyword arguments of ``trl.GRPOConfig``: the defaults, the ``training`` section, and what the run's
        own sections decide (bf16 is TRL's default, which a run without CUDA cannot use)."""
        settings = {**TRAINING_DEFAULTS, **({} if cuda else {"bf16": False}), **self.training}
        settings.update(
            output_dir=self.output_dir,
            num_generations=self.num_generations,
            temperature=self.sampling.temperature,
            top_p=self.sampling.top_p,
            top_k=self.sampling.top_k,
            reward_weights=[self.rewards.weight(name) for name in COMPONENTS],
            use_vllm=self.generation.backend == "vllm",
        )
        if settings["use_vllm"] and self.sampling.max_total_tokens is not None:
            settings.setdefault("vllm_max_model_length", self.sampling.max_total_tokens)
        return settings
