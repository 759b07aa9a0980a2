"""The reward settings: one weight per component and the few choices that define the process reward.

Defaults are the original MTSQL-R1 weights (outcome EX + EM, then 0.1 exec-verify + 0.1 coherence + 0.8
clause F1). A config is frozen so it can key caches and be recorded with a run; load one from a mapping or
from a section of a YAML file so training configs carry it (see ``docs/rewards.md``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mtsql.errors import ConfigError

#: The reward components, in the order they are reported.
COMPONENTS: Final = ("exec", "exact", "exec_verify", "coherence", "clause_f1", "format")


@dataclass(frozen=True, slots=True)
class RewardConfig:
    """Weights of the components and the definition of a right verdict; see ``docs/rewards.md``.

    ``empty_no_pass_credit`` is the credit for ``no_pass`` on an execution that returned no rows;
    ``empty_gold_aware`` makes ``pass`` the right verdict instead when the gold query returns no rows either;
    ``empty_gold_weight`` scales the outcome (EX, EM) of a question whose gold returns no rows, where any empty
    result execution-matches (1.0 pays it as the official metric counts it; 0 pays nothing for it).
    ``format_weight`` (our addition, 0.1 by default) pays for a protocol-compliant question: without it a
    violation that changes nothing else (ending without ``<answer_sql>``, a repeated verdict, a refused memory
    check) ties with the honest trajectory; ``format_weight: 0`` gives the original's weights exactly.
    ``isolate`` runs the scorer's queries in a worker process killed when it overruns ``timeout`` (a hard limit
    even for one slow built-in function, for a small cost a query).
    A SQL under a memory check is *coherent* when it execution-matches the gold (if ``coherence_exec_match``)
    or its clause F1 against the gold is at least ``coherence_f1_threshold``. ``timeout``, ``keep_distinct``
    and ``strict`` are the execution-match options of ``mtsql evaluate`` (same defaults, so the outcome equals
    its verdicts).
    """

    exec_weight: float = field(default=1.0, metadata={"help": "weight of execution match (EX) of the final SQL"})
    exact_weight: float = field(default=1.0, metadata={"help": "weight of exact set match (EM) of the final SQL"})
    exec_verify_weight: float = field(default=0.1, metadata={"help": "weight of the exec_verify judgements' credit"})
    coherence_weight: float = field(
        default=0.1, metadata={"help": "weight of the memory_verify (coherence) judgements' credit"}
    )
    clause_f1_weight: float = field(
        default=0.8, metadata={"help": "weight of the mean clause F1 of every SQL proposed"}
    )
    format_weight: float = field(
        default=0.1, metadata={"help": "weight of a protocol-compliant question (0: the original's weights)"}
    )
    empty_no_pass_credit: float = field(
        default=0.2, metadata={"help": "credit for no_pass on an empty result (0 to 1)"}
    )
    empty_gold_aware: bool = field(
        default=True, metadata={"help": "pass is right on an empty result when the gold returns no rows either"}
    )
    empty_gold_weight: float = field(
        default=1.0, metadata={"help": "scale of the outcome where the gold returns no rows (0 to 1)"}
    )
    coherence_f1_threshold: float = field(
        default=1.0, metadata={"help": "clause F1 from which a checked SQL counts as coherent (0 to 1)"}
    )
    coherence_exec_match: bool = field(
        default=True, metadata={"help": "a checked SQL that execution-matches the gold counts as coherent"}
    )
    timeout: float = field(default=60.0, metadata={"help": "seconds allowed to each query the scorer runs"})
    keep_distinct: bool = field(default=False, metadata={"help": "the official --keep_distinct"})
    strict: bool = field(default=False, metadata={"help": "fix the official evaluator's quirks (docs/evaluation.md)"})
    isolate: bool = field(
        default=True, metadata={"help": "run the scorer's queries in a worker process killed at the time limit"}
    )

    def __post_init__(self) -> None:
        for name in ("empty_no_pass_credit", "coherence_f1_threshold", "empty_gold_weight"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, not {value}")
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be positive, not {self.timeout}")

    def weight(self, component: str) -> float:
        """The weight of one of :data:`COMPONENTS`."""
        if component not in COMPONENTS:
            raise KeyError(f"unknown reward component {component!r}; the components are {', '.join(COMPONENTS)}")
        return float(getattr(self, f"{component}_weight"))

    def total(self, components: Mapping[str, float]) -> float:
        """The weighted sum of component values (each of :data:`COMPONENTS` must be present)."""
        return sum(self.weight(name) * components[name] for name in COMPONENTS)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RewardConfig:
        """A config from a mapping of field names; unknown names are an error (a typo must not be ignored)."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown reward setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], section: str | None = "rewards") -> RewardConfig:
        """A config from a YAML file: the mapping under ``section``, or the whole file when ``section`` is None.

        A file without that section gives the defaults.
        """
        import yaml

        with open(path, encoding="utf-8") as file:
            data = yaml.safe_load(file) or {}
        if section is not None and isinstance(data, Mapping):
            data = data.get(section) or {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: the reward settings must be a mapping, found {type(data).__name__}")
        return cls.from_dict(data)
