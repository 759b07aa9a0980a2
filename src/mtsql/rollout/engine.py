"""The rollout engine: the environment run over a dataset with any backend, recorded token by token.

An episode is one sample of a whole dialogue. Its tokens are one growing list: the prompt (system message,
tools, first question), then alternating segments, the model's sampled ids exactly as the backend returned
them and the environment's reply rendered by :class:`~mtsql.rollout.chat.ChatFormat`. Each generation
continues the list as it stands, so what is recorded is what the model saw and produced; nothing is
re-rendered or re-tokenized. ``completion_mask`` is 1 on model tokens and 0 on environment tokens;
``logprobs`` has one value per completion token (0.0 on environment tokens).

Many episodes run at once as asyncio tasks (``concurrency``); batched backends gather their waiting
prompts into one batch, servers get concurrent requests. Records are appended to a JSONL file as episodes
finish; rerunning with the same file skips the finished ones (a line cut by a crash is dropped), and a file
written with other settings is refused rather than mixed. An episode whose backend fails is not written:
it is counted and retried by the next run. A dialogue whose database is missing is skipped and counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mtsql.backends.base import Backend, BackendError, SamplingParams
from mtsql.data.dialogue import Dialogue
from mtsql.data.schema import resolve_database_path
from mtsql.env.environment import DialogueEnv
from mtsql.env.memory import HistoryMode
from mtsql.env.templates import DEFAULT_TEMPLATES
from mtsql.rewards.config import RewardConfig
from mtsql.rewards.scorer import RewardScorer
from mtsql.rollout.chat import ChatFormat
from mtsql.sql.executor import DEFAULT_TIMEOUT

#: Version of the episode record's layout, in every record.
RECORD_VERSION = 1
#: Settings that must be equal for records to share a file (a resumed run must not mix them).
_SHARED_SETTINGS = ("model", "backend", "history_mode", "max_steps", "template_version", "sampling", "thinking")


@dataclass(slots=True)
class RolloutConfig:
    """How episodes are run. ``max_tokens`` caps each model segment; ``max_total_tokens`` caps a whole episode
    (prompt and completion; default: the backend's context length); ``concurrency`` is the number of episodes
    in flight; ``max_errors`` stops scheduling new episodes after that many backend failures."""

    samples: int = 1
    max_steps: int = 4
    history_mode: HistoryMode = "predicted"
    max_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_total_tokens: int | None = None
    concurrency: int = 32
    enable_thinking: bool = True
    templates: str = DEFAULT_TEMPLATES
    sql_timeout: float = DEFAULT_TIMEOUT
    max_errors: int = 10

    def __post_init__(self) -> None:
        for name in ("samples", "max_steps", "concurrency", "max_errors"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")


@dataclass(slots=True)
class RolloutSummary:
    """What a run did: episodes written now, found already written, failed (to retry), and dialogues skipped
    for a missing database; the backend's time and the run's wall time give the engine's overhead."""

    written: int = 0
    resumed: int = 0
    failed: int = 0
    skipped_dialogues: int = 0
    missing_databases: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    model_tokens: int = 0
    env_tokens: int = 0
    wall_s: float = 0.0
    generate_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


StepCallback = Callable[[dict[str, Any]], None]


class RolloutEngine:
    """Runs :class:`~mtsql.env.DialogueEnv` episodes with ``backend``; see the module docstring.

    ``db_dir`` holds ``<db_id>/<db_id>.sqlite``; ``tables`` (a ``tables.json``) gives the rewards' exact match
    the official foreign-key map; ``rewards`` weighs the components (``None``: no rewards are computed).
    """

    def __init__(
        self,
        backend: Backend,
        db_dir: str | os.PathLike[str],
        config: RolloutConfig | None = None,
        *,
        tables: str | os.PathLike[str] | None = None,
        rewards: RewardConfig | None = None,
        chat_template: str | None = None,
    ) -> None:
        self.backend = backend
        self.db_dir = Path(db_dir)
        self.config = config = config or RolloutConfig()
        self.chat = ChatFormat(backend.tokenizer, chat_template=chat_template, enable_thinking=config.enable_thinking)
        self.params = SamplingParams(
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=config.top_k,
            stop_token_ids=self.chat.stop_ids,
        )
        limits = [n for n in (config.max_total_tokens, backend.max_model_len) if n]
        self.max_total_tokens = min(limits) if limits else None
        self.scorer: RewardScorer | None = None
        if rewards is not None:
            from mtsql.eval.exact_match import load_foreign_key_maps

            kmaps = load_foreign_key_maps(tables) if tables else None
            self.scorer = RewardScorer(self.db_dir, rewards, kmaps=kmaps)
        probe = self._env()
        # As JSON reads them back, so a resumed run compares like with like.
        self.settings: dict[str, Any] = json.loads(
            json.dumps(
                {
                    "model": backend.model,
                    "backend": backend.name,
                    "history_mode": config.history_mode,
                    "max_steps": config.max_steps,
                    "template_version": probe.templates.version,
                    "sampling": {k: v for k, v in self.params.to_dict().items() if k != "seed"},
                    "thinking": config.enable_thinking,
                    "max_total_tokens": self.max_total_tokens,
                }
            )
        )
        self._tools = probe.tools

    # --- one episode ----------------------------------------------------------------------------------------

    async def episode(self, dialogue: Dialogue, sample: int = 0, on_step: StepCallback | None = None) -> dict[str, Any]:
        """Run one sample of ``dialogue`` to its end; returns its record. ``on_step`` sees each step's record as
        it happens. Raises :class:`BackendError` when the backend fails, ``FileNotFoundError`` when the database
        is missing."""
        start = time.perf_counter()
        env = self._env()
        observation, info = env.reset(dialogue)
        prompt_ids = self.chat.prompt_ids(observation, self._tools)
        completion: list[int] = []
        mask: list[int] = []
        logprobs: list[float] = []
        segments: list[dict[str, Any]] = []
        steps: list[dict[str, Any]] = []
        retokenized = False
        finish = "done"
        terminated = False
        while not terminated:
            room = None if self.max_total_tokens is None else self.max_total_tokens - len(prompt_ids) - len(completion)
            if room is not None and room < 1:
                finish = "context"
                break
            params = self.params
            if room is not None and room < params.max_tokens:
                params = SamplingParams(**{**params.to_dict(), "max_tokens": room})
            turn = info["turn"] if "step" not in info or not info["turn_done"] else info["turn"] + 1
            generation = await self.backend.generate(prompt_ids + completion, params)
            retokenized |= generation.retokenized
            segments.append(_segment(turn, "model", len(completion), len(generation.token_ids)))
            completion += generation.token_ids
            mask += [1] * len(generation.token_ids)
            logprobs += generation.logprobs
            text = self.chat.model_text(generation.token_ids)
            observation, _, terminated, _, info = env.step(text)
            step = _step_record(info, text, generation.finish_reason, len(generation.token_ids))
            steps.append(step)
            if not terminated:
                env_ids = self.chat.observation_ids(observation, closed=self.chat.is_closed(generation.token_ids))
                step["observation"] = [dict(message) for message in observation]
                if room is not None and len(generation.token_ids) + len(env_ids) > room:
                    finish = "context"
                    terminated = True
                else:
                    segments.append(_segment(info["turn"], "env", len(completion), len(env_ids)))
                    completion += env_ids
                    mask += [0] * len(env_ids)
                    logprobs += [0.0] * len(env_ids)
            if on_step is not None:
                on_step(step)
        record = env.record
        assert record is not None
        turns = record.to_dict()["turns"]
        rewards = None
        if self.scorer is not None:
            rewards = self.scorer.episode(record).to_dict()
        model_tokens = sum(mask)
        return {
            "id": episode_id(dialogue.id, sample),
            "version": RECORD_VERSION,
            "dialogue_id": dialogue.id,
            "sample": sample,
            "dataset": dialogue.dataset,
            "split": dialogue.split,
            "db_id": dialogue.db_id,
            "n_turns": len(dialogue.turns),
            **self.settings,
            "finish": finish,
            "retokenized": retokenized,
            "prompt_ids": prompt_ids,
            "completion_ids": completion,
            "completion_mask": mask,
            "logprobs": logprobs,
            "segments": segments,
            "text": self.chat.tokenizer.decode(completion, skip_special_tokens=False),
            "steps": steps,
            "turns": turns,
            "final_sql": [turn["final_sql"] for turn in turns],
            "gold_sql": [turn.query for turn in dialogue.turns],
            "malformed": record.malformed,
            "rewards": rewards,
            "stats": {
                "model_tokens": model_tokens,
                "env_tokens": len(mask) - model_tokens,
                "steps": len(steps),
                "elapsed_s": round(time.perf_counter() - start, 4),
            },
        }

    # --- a dataset ------------------------------------------------------------------------------------------

    async def arun(
        self,
        dialogues: Iterable[Dialogue],
        out: str | os.PathLike[str] | None = None,
        *,
        progress: bool = False,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> RolloutSummary:
        """Run ``config.samples`` episodes of every dialogue, appending each record to ``out`` (JSONL) as it
        finishes and skipping those already there; ``on_record`` also sees each record."""
        summary = RolloutSummary()
        start = time.perf_counter()
        generate_before = self.backend.stats.generate_time_s
        done = read_finished(out, self.settings) if out is not None else set()
        jobs: list[tuple[Dialogue, int]] = []
        missing: set[str] = set()
        for dialogue in dialogues:
            if not resolve_database_path(self.db_dir, dialogue.db_id).is_file():
                missing.add(dialogue.db_id)
                summary.skipped_dialogues += 1
                continue
            for sample in range(self.config.samples):
                if episode_id(dialogue.id, sample) in done:
                    summary.resumed += 1
                else:
                    jobs.append((dialogue, sample))
        summary.missing_databases = sorted(missing)
        writer = open(out, "a", encoding="utf-8") if out is not None else None  # noqa: SIM115 - closed below
        bar = _Progress(len(jobs), summary) if progress and jobs else None
        queue = iter(jobs)

        async def worker() -> None:
            for dialogue, sample in queue:
                if summary.failed >= self.config.max_errors:
                    return
                try:
                    record = await self.episode(dialogue, sample)
                except BackendError as err:
                    summary.failed += 1
                    summary.errors.append(f"{episode_id(dialogue.id, sample)}: {err}")
                    continue
                if writer is not None:
                    writer.write(json.dumps(record, ensure_ascii=False) + "\n")
                    writer.flush()
                summary.written += 1
                summary.model_tokens += record["stats"]["model_tokens"]
                summary.env_tokens += record["stats"]["env_tokens"]
                if on_record is not None:
                    on_record(record)
                if bar is not None:
                    bar.advance()

        try:
            if bar is not None:
                bar.start()
            await asyncio.gather(*(worker() for _ in range(min(self.config.concurrency, len(jobs)))))
        finally:
            if bar is not None:
                bar.stop()
            if writer is not None:
                writer.close()
            await self.backend.aclose()
        summary.wall_s = time.perf_counter() - start
        summary.generate_s = self.backend.stats.generate_time_s - generate_before
        return summary

    def run(
        self,
        dialogues: Iterable[Dialogue],
        out: str | os.PathLike[str] | None = None,
        *,
        progress: bool = False,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> RolloutSummary:
        """:meth:`arun` from synchronous code."""
        return asyncio.run(self.arun(dialogues, out, progress=progress, on_record=on_record))

    def _env(self) -> DialogueEnv:
        config = self.config
        return DialogueEnv(
            self.db_dir,
            history_mode=config.history_mode,
            max_steps=config.max_steps,
            templates=config.templates,
            timeout=config.sql_timeout,
        )


def episode_id(dialogue_id: str, sample: int) -> str:
    """The id of one sample of a dialogue, unique in a rollout file."""
    return f"{dialogue_id}#{sample}"


def read_episodes(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete record of a rollout file (a last line cut by a crash is left out)."""
    records = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            if not line.endswith("\n"):
                break
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def read_finished(path: str | os.PathLike[str], settings: dict[str, Any]) -> set[str]:
    """The ids of the episodes already in ``path``, after cutting off a last line left incomplete by a crash.

    Raises ``ValueError`` when a record was written with other settings (``_SHARED_SETTINGS``).
    """
    if not os.path.exists(path):
        return set()
    ids: set[str] = set()
    good = 0
    with open(path, "rb") as file:
        for line in file:
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            if not line.endswith(b"\n"):
                break
            for key in _SHARED_SETTINGS:
                if record.get(key) != settings.get(key):
                    raise ValueError(
                        f"{path} holds episodes with {key}={record.get(key)!r}, this run has {settings.get(key)!r}: "
                        "write to another file"
                    )
            ids.add(record["id"])
            good += len(line)
    if good != os.path.getsize(path):
        with open(path, "r+b") as file:
            file.truncate(good)
    return ids


def _segment(turn: int, kind: str, start: int, length: int) -> dict[str, Any]:
    return {"turn": turn, "kind": kind, "start": start, "end": start + length}


def _step_record(info: dict[str, Any], text: str, finish_reason: str, n_tokens: int) -> dict[str, Any]:
    """What a step did, from the environment's ``info``: the model's text, the action and its outcome."""
    return {
        "turn": info["turn"],
        "step": info["step"],
        "text": text,
        "n_tokens": n_tokens,
        "finish_reason": finish_reason,
        "action": info["action"],
        "sql": info["sql"],
        "exec": info["exec"],
        "verdict": info["verdict"],
        "error_kind": info["error_kind"],
        "error": info["error"],
        "turn_done": info["turn_done"],
        "turn_truncated": info["turn_truncated"],
        "final_sql": info["final_sql"],
    }


class _Progress:
    """A rich progress bar: episodes done, episodes/s, generated tokens/s, time left."""

    def __init__(self, total: int, summary: RolloutSummary) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._summary = summary
        self._start = time.perf_counter()
        self._progress = Progress(
            TextColumn("rollout"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._progress.add_task("rollout", total=total, rate="")

    def start(self) -> None:
        self._progress.start()

    def advance(self) -> None:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        summary = self._summary
        rate = f"{summary.written / elapsed:.2f} ep/s, {summary.model_tokens / elapsed:,.0f} tok/s"
        self._progress.update(self._task, advance=1, rate=rate)

    def stop(self) -> None:
        self._progress.stop()
