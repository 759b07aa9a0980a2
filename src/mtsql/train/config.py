"""One way to read the training runs' YAML files (SFT, self-taught, GRPO) into their config dataclasses.

In the style of TRL's config dataclasses, each field carries ``metadata={"help": "..."}``. A run's config derives
from :class:`RunConfig`, which reads a file (:meth:`RunConfig.from_yaml`) or a mapping
(:meth:`RunConfig.from_dict`) through :func:`build`:

- a key that is not a field is refused, naming its section and the allowed keys; a field without a default is
  required;
- a field whose type is a dataclass (or a ``list`` of one) is a section, built the same way from its mapping
  (``null`` gives its defaults); an optional section (``lora: LoraSettings | None``) takes ``true`` (its
  defaults), a mapping, or ``false``/``null``/absent (none);
- a ``dict`` field (``training``, passed to TRL's ``SFTConfig``/``GRPOConfig`` as is; ``backend_options``) stays a
  plain mapping (``null`` gives ``{}``); a ``float`` field takes an integer as that float;
- ``metadata["path"]`` makes a relative path relative to the YAML file's folder: ``"file"`` always, ``"model"``
  only when it exists there (otherwise it is a hub id, :func:`resolve_config_path`), ``"templates"`` only when
  it names a file (a built-in set's name stays); ``metadata["convert"]`` normalises the written value first.

:class:`SamplingSettings` are the runs' sampling settings, and :meth:`SamplingSettings.rollout_config` the one way
from them to the rollout engine's :class:`~mtsql.rollout.RolloutConfig`.

Errors of the file's shape are ``ValueError``\\ s prefixed by the file's path; each config's ``__post_init__``
checks the values themselves.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import yaml

from mtsql.data.dialogue import DATASETS
from mtsql.env.templates import templates_relative_to
from mtsql.errors import ConfigError

if TYPE_CHECKING:
    from mtsql.data.sources import DialogueSource
    from mtsql.rewards.config import RewardConfig
    from mtsql.rollout.engine import RolloutConfig

T = TypeVar("T")


def resolve_config_path(value: str, base: Path) -> str:
    """``value`` relative to the config file's folder when it exists there; anything else (a hub id) as written."""
    candidate = base / str(value)
    return str(candidate) if not os.path.isabs(str(value)) and candidate.exists() else str(value)


def _resolve_path(kind: str, value: Any, base: Path) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [_resolve_path(kind, item, base) for item in value]
    if kind == "file":
        return os.path.normpath(base / str(value))
    if kind == "model":
        return resolve_config_path(str(value), base)
    if kind == "templates":
        return templates_relative_to(str(value), base)
    raise ConfigError(f"unknown path kind {kind!r}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dataclass_in(hint: Any) -> tuple[type | None, bool, bool]:
    """``(dataclass, optional, is_list)`` of a field's type: a section, an optional one, a list of them."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            return None, optional, False
        hint = args[0]
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (None,)
        return (item, optional, True) if dataclasses.is_dataclass(item) else (None, optional, False)
    return (
        (hint, optional, False)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint)
        else (None, optional, False)
    )


def _is(hint: Any, kind: type) -> bool:
    """Whether ``hint`` is ``kind`` (or ``kind | None``, or ``kind[...]``)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is(arg, kind) for arg in typing.get_args(hint) if arg is not type(None))
    return hint is kind or typing.get_origin(hint) is kind


def build(cls: type[T], values: Any, *, base: Path | None = None, section: str = "", source: str = "") -> T:
    """A ``cls`` (a dataclass) from ``values`` (a mapping of its fields), as the module docstring describes.
    ``base``: the folder relative paths are taken from (default: the working directory); ``section``: where
    ``values`` sit in the file (for errors); ``source``: the file (prefixes the errors)."""
    base = base or Path.cwd()
    where = _at(source)
    if not isinstance(values, Mapping):
        at = f"{section}: expected a mapping" if section else "expected a mapping at the top level"
        raise ConfigError(f"{where}{at}, not {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(str(key) for key in values if key not in fields)
    if unknown:
        keys = f"{section} key(s)" if section else "key(s)"
        raise ConfigError(f"{where}unknown {keys} {', '.join(unknown)}; allowed: {', '.join(fields)}")
    missing = [
        f"'{name}'"
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in values
    ]
    if missing:
        are = "is required" if len(missing) == 1 else "are required"
        raise ConfigError(f"{where}{section + ': ' if section else ''}{', '.join(missing)} {are}")
    hints = _hints(cls)
    built = {}
    for name, value in values.items():
        key = f"{section}.{name}" if section else str(name)
        built[name] = _field_value(fields[name], hints.get(name), value, base=base, section=key, source=source)
    return cls(**built)


def _at(source: str) -> str:
    return f"{source}: " if source else ""


def _field_value(f: dataclasses.Field, hint: Any, value: Any, *, base: Path, section: str, source: str) -> Any:
    convert = f.metadata.get("convert")
    if convert is not None:
        value = convert(value)
    section_class, optional, is_list = _dataclass_in(hint)
    if section_class is not None and is_list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{_at(source)}{section}: expected a list, not {type(value).__name__}")
        return [
            build(section_class, item, base=base, section=f"{section}[{index}]", source=source)
            for index, item in enumerate(value)
        ]
    if section_class is not None:
        if optional and (value is None or value is False):
            return None
        return build(section_class, {} if value is None or value is True else value, base=base, section=section,
                     source=source)  # fmt: skip
    if _is(hint, dict):
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{source + ': ' if source else ''}{section}: expected a mapping, not {type(value).__name__}"
            )
        return dict(value)
    if "path" in f.metadata:
        return _resolve_path(f.metadata["path"], value, base)
    if _is(hint, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class RunConfig:
    """A run's config read from YAML (a mixin for a dataclass; see the module docstring)."""

    __slots__ = ()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, base: Path | None = None) -> Self:
        """A config from a mapping; relative paths are taken from ``base`` (default: the working directory)."""
        return build(cls, values, base=base)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Self:
        """Read a run's YAML file (keys: the fields; sections: mappings of their settings). Paths in it are
        relative to the file's folder, so a run's file means the same from any working directory."""
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return build(cls, values, base=Path(path).resolve().parent, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(slots=True, kw_only=True)
class DialogueSourceSettings:
    """Where a run's dialogues come from: a bundled ``example`` or a benchmark (``dataset``, ``split``,
    ``data_dir``), its first ``limit`` dialogues or a ``sample`` of that many drawn with ``sample_seed``. A base of
    the runs' configs (its fields sit among theirs, as the files write them)."""

    example: str | None = field(default=None, metadata={"help": "a bundled example's name (or dataset)"})
    dataset: str | None = field(default=None, metadata={"help": "a benchmark: sparc, cosql... (or example)"})
    split: str = field(default="train", metadata={"help": "the benchmark's split"})
    data_dir: str | None = field(default=None, metadata={"help": "the benchmark's folder", "path": "file"})
    limit: int | None = field(default=None, metadata={"help": "only the first this many dialogues"})
    sample: int | None = field(default=None, metadata={"help": "a seeded sample of this many dialogues"})
    sample_seed: int = field(default=0, metadata={"help": "the sample's seed"})

    def check_source(self, where: str = "") -> None:
        """Refuse a source that cannot be loaded; ``where`` prefixes the message (``"data: "``)."""
        if (self.example is None) == (self.dataset is None):
            raise ConfigError(f"{where}give exactly one of 'example' and 'dataset'")
        if self.dataset is not None:
            if self.dataset not in DATASETS:
                raise ConfigError(f"{where}unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
            if self.data_dir is None:
                raise ConfigError(f"{where}'data_dir' is required with 'dataset'")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"{where}limit must be at least 1, not {self.limit}")

    def load_source(self) -> DialogueSource:
        """The dialogues, their database folder and ``tables.json``."""
        from mtsql.data import load_source

        return load_source(
            dataset=self.dataset,
            split=self.split,
            data_dir=self.data_dir,
            example=self.example,
            limit=self.limit,
            sample=self.sample,
            seed=self.sample_seed,
        )


@dataclass(slots=True)
class LoraSettings:
    """peft's LoRA: rank, alpha, dropout and the modules adapted (``all-linear`` by default). In a run's file,
    ``lora: true`` takes these defaults and a mapping sets some of them."""

    r: int = field(default=16, metadata={"help": "LoRA rank"})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha (peft's lora_alpha)"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch"})
    target_modules: str | list[str] = field(
        default="all-linear", metadata={"help": "the modules adapted: names, or 'all-linear'"}
    )

    def peft_config(self) -> Any:
        """peft's ``LoraConfig`` of these settings, for a causal LM (SFT and GRPO alike)."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=self.target_modules,
            task_type="CAUSAL_LM",
        )  # fmt: skip


@dataclass(slots=True)
class SamplingSettings:
    """How a training run samples episodes: per assistant message ``max_tokens``, per question ``max_steps``
    messages, per episode ``max_total_tokens`` (prompt and completion), and Qwen3's ``thinking`` switch. The
    defaults are the rollout engine's. :meth:`rollout_config` is the one way from a run's settings to the
    engine's :class:`~mtsql.rollout.RolloutConfig`."""

    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling's p"})
    top_k: int = field(default=0, metadata={"help": "top-k sampling (0: off)"})
    max_tokens: int = field(default=512, metadata={"help": "tokens per assistant message"})
    max_steps: int = field(default=4, metadata={"help": "assistant messages per question"})
    max_total_tokens: int | None = field(default=None, metadata={"help": "tokens per episode (prompt included)"})
    thinking: bool = field(default=True, metadata={"help": "Qwen3's thinking switch"})

    def rollout_config(self, *, rewards: RewardConfig | None = None, **engine: Any) -> RolloutConfig:
        """The rollout engine's settings: these (``thinking`` is its ``enable_thinking``), the engine's own
        ``engine`` settings (``samples``, ``history_mode``, ``concurrency``, ``templates``...; its defaults
        otherwise), and with ``rewards`` the reward scorer's SQL time limit and isolation for the environment's
        queries too."""
        from mtsql.rollout.engine import RolloutConfig

        if rewards is not None:
            engine.update(sql_timeout=rewards.timeout, sql_isolate=rewards.isolate)
        return RolloutConfig(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_tokens=self.max_tokens,
            max_steps=self.max_steps,
            max_total_tokens=self.max_total_tokens,
            enable_thinking=self.thinking,
            **engine,
        )


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(key, default, help)`` of every setting of a config dataclass, sections flattened as ``section.key``: what
    ``mtsql config`` prints, from the same field help the YAML files are read with."""
    rows = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        section, _, _ = _dataclass_in(hints.get(f.name))
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            default = "(required)"
        elif section is not None:
            default = "(section)"
        else:
            default = repr(f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
        rows.append((prefix + f.name, default, str(f.metadata.get("help", ""))))
        if section is not None:
            rows += describe(section, f"{prefix}{f.name}.")
    return rows
