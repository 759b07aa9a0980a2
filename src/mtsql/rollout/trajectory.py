"""The typed trajectory record: one sampled episode, token by token, as the rollout engine writes it.

A :class:`Trajectory` is what :meth:`mtsql.rollout.engine.Episode.record` returns and what a records file holds
one per line (:meth:`Trajectory.to_dict`, read back with :meth:`Trajectory.from_dict`). It is the token-level
view of an episode; the environment's own account of the same episode (questions, tool calls, verdicts) is the
:class:`~mtsql.env.EpisodeRecord` in ``turns`` (:meth:`Trajectory.episode_record`), which the rewards score.

The JSON layout is versioned (:data:`RECORD_VERSION`); a record of another version is refused by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mtsql.env.environment import EpisodeRecord, TurnRecord
from mtsql.errors import MtsqlError

__all__ = [
    "RECORD_VERSION",
    "RunSettings",
    "Segment",
    "SegmentKind",
    "Step",
    "Trajectory",
    "TrajectoryFormatError",
    "TrajectoryStats",
]

#: Version of the record's layout, in every record.
RECORD_VERSION = 1


class TrajectoryFormatError(MtsqlError, ValueError):
    """A JSON object that is not a trajectory record of this version (a missing field, another version)."""


class SegmentKind(StrEnum):
    """Who wrote a stretch of completion tokens: the model (trained on) or the environment (masked)."""

    MODEL = "model"
    ENV = "env"


@dataclass(frozen=True, slots=True)
class Segment:
    """``completion_ids[start:end]``, written by ``kind`` while the episode was on question ``turn``."""

    turn: int
    kind: SegmentKind
    start: int
    end: int


@dataclass(slots=True)
class Step:
    """One model message and what the environment did with it (from the step's ``info``).

    ``observation`` is the environment's reply messages after the step (absent on the last step)."""

    turn: int
    step: int
    text: str
    n_tokens: int
    finish_reason: str
    action: str | None
    sql: str | None
    exec: dict[str, Any] | None
    verdict: dict[str, str] | None
    error_kind: str | None
    error: str | None
    turn_done: bool
    turn_truncated: bool
    final_sql: str | None
    observation: list[dict[str, str]] | None = None

    @classmethod
    def from_info(cls, info: dict[str, Any], text: str, finish_reason: str, n_tokens: int) -> Step:
        """The step as the environment's ``info`` describes it."""
        own = {"text": text, "finish_reason": finish_reason, "n_tokens": n_tokens}
        names = (f.name for f in dataclasses.fields(cls) if f.name != "observation")
        return cls(**{name: own[name] if name in own else info[name] for name in names})

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.observation is None:
            del out["observation"]
        return out


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What makes runs comparable; records written with different settings never share a file."""

    model: str
    backend: str
    history_mode: str
    max_steps: int
    template_version: str
    sampling: dict[str, Any]
    thinking: bool
    max_total_tokens: int | None = None
    chat_adaptation: dict[str, Any] | None = None

    #: The settings a resumed run must share with the records already in its file.
    SHARED = ("model", "backend", "history_mode", "max_steps", "template_version", "sampling", "thinking")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class TrajectoryStats:
    model_tokens: int
    env_tokens: int
    steps: int
    elapsed_s: float


@dataclass(slots=True)
class Trajectory:
    """One sample of a whole dialogue: ids, masks and logprobs exactly as generated, and what each step did.

    ``prompt_ids + completion_ids`` is what the model was conditioned on at its last step; ``completion_mask``
    is 1 on the model's tokens and 0 on the environment's; ``logprobs`` has one value per completion token
    (0.0 on the environment's). ``rewards`` is the scorer's ``EpisodeReward.to_dict()`` when the run scored.
    """

    id: str
    dialogue_id: str
    sample: int
    dataset: str
    split: str
    db_id: str
    n_turns: int
    settings: RunSettings
    finish: str
    retokenized: bool
    prompt_messages: list[dict[str, str]]
    tools: list[dict[str, Any]]
    prompt_ids: list[int]
    completion_ids: list[int]
    completion_mask: list[int]
    logprobs: list[float]
    segments: list[Segment]
    text: str
    steps: list[Step]
    turns: list[TurnRecord]
    final_sql: list[str]
    gold_sql: list[str]
    malformed: int
    stats: TrajectoryStats
    rewards: dict[str, Any] | None = None
    version: int = RECORD_VERSION

    def model_segments(self, turn: int | None = None) -> list[Segment]:
        """The model's segments, of one question or of all."""
        return [s for s in self.segments if s.kind == SegmentKind.MODEL and (turn is None or s.turn == turn)]

    def episode_record(self) -> EpisodeRecord:
        """The environment's record of this episode (what the rewards score)."""
        return EpisodeRecord(
            dialogue_id=self.dialogue_id,
            db_id=self.db_id,
            history_mode=self.settings.history_mode,  # type: ignore[arg-type]
            template_version=self.settings.template_version,
            max_steps=self.settings.max_steps,
            turns=list(self.turns),
            malformed=self.malformed,
        )

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON object, in the documented key order (settings at the top level)."""
        out: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "dialogue_id": self.dialogue_id,
            "sample": self.sample,
            "dataset": self.dataset,
            "split": self.split,
            "db_id": self.db_id,
            "n_turns": self.n_turns,
            **self.settings.to_dict(),
        }
        out.update(
            finish=self.finish,
            retokenized=self.retokenized,
            prompt_messages=self.prompt_messages,
            tools=self.tools,
            prompt_ids=self.prompt_ids,
            completion_ids=self.completion_ids,
            completion_mask=self.completion_mask,
            logprobs=self.logprobs,
            segments=[dataclasses.asdict(s) for s in self.segments],
            text=self.text,
            steps=[s.to_dict() for s in self.steps],
            turns=[dataclasses.asdict(t) for t in self.turns],
            final_sql=self.final_sql,
            gold_sql=self.gold_sql,
            malformed=self.malformed,
            rewards=self.rewards,
            stats=dataclasses.asdict(self.stats),
        )
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        """A record read back; raises :class:`TrajectoryFormatError` naming what does not fit."""
        if not isinstance(data, dict):
            raise TrajectoryFormatError(f"a trajectory record is a JSON object, not {type(data).__name__}")
        version = data.get("version")
        if version != RECORD_VERSION:
            raise TrajectoryFormatError(
                f"record {data.get('id')!r} has layout version {version!r}; this mtsql reads version {RECORD_VERSION}"
            )
        try:
            settings = RunSettings(**{f.name: data[f.name] for f in dataclasses.fields(RunSettings) if f.name in data})
            return cls(
                id=data["id"],
                dialogue_id=data["dialogue_id"],
                sample=data["sample"],
                dataset=data["dataset"],
                split=data["split"],
                db_id=data["db_id"],
                n_turns=data["n_turns"],
                settings=settings,
                finish=data["finish"],
                retokenized=data["retokenized"],
                prompt_messages=data["prompt_messages"],
                tools=data["tools"],
                prompt_ids=data["prompt_ids"],
                completion_ids=data["completion_ids"],
                completion_mask=data["completion_mask"],
                logprobs=data["logprobs"],
                segments=[Segment(s["turn"], SegmentKind(s["kind"]), s["start"], s["end"]) for s in data["segments"]],
                text=data["text"],
                steps=[Step(**step) for step in data["steps"]],
                turns=[TurnRecord.from_dict(turn) for turn in data["turns"]],
                final_sql=data["final_sql"],
                gold_sql=data["gold_sql"],
                malformed=data["malformed"],
                stats=TrajectoryStats(**data["stats"]),
                rewards=data.get("rewards"),
                version=version,
            )
        except KeyError as err:
            raise TrajectoryFormatError(f"record {data.get('id')!r} has no field {err.args[0]!r}") from None
        except (TypeError, ValueError) as err:
            raise TrajectoryFormatError(f"record {data.get('id')!r} does not fit the layout: {err}") from None
