"""The rollout engine: the environment run over a dataset with any backend, recorded token by token.

An episode is one sample of a whole dialogue. Its tokens are one growing list: the prompt (system message,
tools, first question), then alternating segments, the model's sampled ids exactly as the backend returned
them and the environment's reply rendered by :class:`~mtsql.rollout.chat.ChatFormat`. Each generation
continues the list as it stands, so what is recorded is what the model saw and produced; nothing is
re-rendered or re-tokenized. ``completion_mask`` is 1 on model tokens and 0 on environment tokens;
``logprobs`` has one value per completion token (0.0 on environment tokens).

Many episodes run at once as asyncio tasks (``concurrency``); batched backends gather their waiting
prompts into one batch, servers get concurrent requests. Records are appended to a JSONL file as episodes
finish; rerunning with the same file skips the finished ones. A records file is only appended to or refused:
a last line cut by a crash is dropped (and reported), while a file that is not a records file, a bad line
before the last, or records written with other settings stop the run with :class:`RecordsFileError`, the file
untouched. An episode whose backend fails is not written:
it is counted and retried by the next run. A dialogue whose database is missing is skipped and counted.
"""

from __future__ import annotations

import asyncio
import copy
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
from mtsql.env.environment import DialogueEnv, Policy
from mtsql.env.memory import HistoryMode
from mtsql.env.templates import DEFAULT_TEMPLATES, load_templates
from mtsql.errors import ConfigError, MtsqlError
from mtsql.rewards.config import RewardConfig
from mtsql.rewards.scorer import RewardScorer
from mtsql.rollout.chat import ChatFormat
from mtsql.rollout.trajectory import (
    RunSettings,
    Segment,
    SegmentKind,
    Step,
    Trajectory,
    TrajectoryFormatError,
    TrajectoryStats,
)
from mtsql.sql.executor import DEFAULT_TIMEOUT


@dataclass(slots=True)
class RolloutConfig:
    """How episodes are run. ``max_tokens`` caps each model segment; ``max_total_tokens`` caps a whole episode
    (prompt and completion; default: the backend's context length); ``concurrency`` is the number of episodes
    in flight; ``max_errors`` stops scheduling new episodes after that many backend failures; ``templates`` is
    the environment's text set, a built-in name or a TOML file (:func:`mtsql.env.load_templates`)."""

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
    sql_isolate: bool = True

    def __post_init__(self) -> None:
        for name in ("samples", "max_steps", "concurrency", "max_errors"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")


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
    #: The number of a last line of the output file cut by a crash, dropped before appending.
    dropped_line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


StepCallback = Callable[[Step], None]


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
        self.templates = load_templates(config.templates)  # once: a file is not re-read for every episode
        probe = self.make_env()
        # As JSON reads them back, so a resumed run compares like with like.
        self.settings = RunSettings(
            **json.loads(
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
                        # How the protocol's messages were fitted to the chat template (all "native" for Qwen3's).
                        "chat_adaptation": self.chat.adaptation.to_dict(),
                    }
                )
            )
        )
        self.tools = probe.tools

    # --- one episode ----------------------------------------------------------------------------------------

    def start(self, dialogue: Dialogue, sample: int = 0) -> Episode:
        """A new episode on ``dialogue``, its prompt rendered; ``FileNotFoundError`` when the database is missing."""
        return Episode(self, dialogue, sample)

    async def episode(self, dialogue: Dialogue, sample: int = 0, on_step: StepCallback | None = None) -> Trajectory:
        """Run one sample of ``dialogue`` to its end; returns its record. ``on_step`` sees each step's record as
        it happens. Raises :class:`BackendError` when the backend fails, ``FileNotFoundError`` when the database
        is missing."""
        episode = self.start(dialogue, sample)
        await episode.play(on_step)
        return episode.record()

    # --- a dataset ------------------------------------------------------------------------------------------

    async def arun(
        self,
        dialogues: Iterable[Dialogue],
        out: str | os.PathLike[str] | None = None,
        *,
        progress: bool = False,
        on_record: Callable[[Trajectory], None] | None = None,
    ) -> RolloutSummary:
        """Run ``config.samples`` episodes of every dialogue, appending each record to ``out`` (JSONL) as it
        finishes and skipping those already there; ``on_record`` also sees each record."""
        summary = RolloutSummary()
        start = time.perf_counter()
        generate_before = self.backend.stats.generate_time_s
        settings = self.settings.to_dict()
        done, summary.dropped_line = read_finished(out, settings) if out is not None else (set(), None)
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
                    writer.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
                    writer.flush()
                summary.written += 1
                summary.model_tokens += record.stats.model_tokens
                summary.env_tokens += record.stats.env_tokens
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
        on_record: Callable[[Trajectory], None] | None = None,
    ) -> RolloutSummary:
        """:meth:`arun` from synchronous code."""
        return asyncio.run(self.arun(dialogues, out, progress=progress, on_record=on_record))

    def make_env(self) -> DialogueEnv:
        """A fresh environment with the engine's settings (one per episode: environments hold episode state)."""
        config = self.config
        return DialogueEnv(
            self.db_dir,
            history_mode=config.history_mode,
            max_steps=config.max_steps,
            templates=self.templates,
            timeout=config.sql_timeout,
            isolate=config.sql_isolate,
        )


class Episode:
    """One episode in progress: its environment and its token ids so far (see the module docstring).

    :meth:`play` runs it to its end (or, with ``one_question``, to the end of the current question);
    :meth:`add_question` continues a finished episode with a new question, as a chat session does.
    """

    def __init__(self, engine: RolloutEngine, dialogue: Dialogue, sample: int) -> None:
        self.engine = engine
        self.sample = sample
        self.env = engine.make_env()
        self.observation, self.info = self.env.reset(dialogue)
        #: The system and first-question messages the prompt was rendered from (exports rebuild the chat from them).
        self.prompt_messages = [dict(message) for message in self.observation]
        self.prompt_ids = engine.chat.prompt_ids(self.observation, engine.tools)
        self.completion_ids: list[int] = []
        self.completion_mask: list[int] = []
        self.logprobs: list[float] = []
        self.segments: list[Segment] = []
        self.steps: list[Step] = []
        self.retokenized = False
        self.finish = "done"
        self.done = False
        self._closed = True
        self._start = time.perf_counter()

    async def play(
        self, on_step: StepCallback | None = None, *, one_question: bool = False, policy: Policy | None = None
    ) -> None:
        """Generate and step until the episode ends (or the current question does, with ``one_question``).

        With ``policy`` (``policy(observation, info) -> text``, e.g. :class:`~mtsql.env.GoldPolicy`) the model's
        messages are written by it instead of the backend (teacher forcing, for gold trajectories): each is
        tokenized and closed with the template's closing token, with logprobs 0.0.
        """
        engine = self.engine
        while not self.done:
            used = len(self.prompt_ids) + len(self.completion_ids)
            room = None if engine.max_total_tokens is None else engine.max_total_tokens - used
            if room is not None and room < 1:
                self._out_of_context()
                break
            params = engine.params
            if room is not None and room < params.max_tokens:
                params = SamplingParams(**{**params.to_dict(), "max_tokens": room})
            info = self.info
            turn = info["turn"] + 1 if info.get("turn_done") else info["turn"]
            if policy is None:
                generation = await engine.backend.generate(self.prompt_ids + self.completion_ids, params)
            else:
                generation = engine.chat.forced(policy(self.observation, info))
            ids = generation.token_ids
            self.retokenized |= generation.retokenized
            self._append(turn, SegmentKind.MODEL, ids, generation.logprobs)
            self._closed = engine.chat.is_closed(ids)
            text = engine.chat.model_text(ids)
            observation, _, terminated, _, self.info = self.env.step(text)
            self.observation = observation
            step = Step.from_info(self.info, text, generation.finish_reason, len(ids))
            self.steps.append(step)
            if terminated:
                self.done = True
            else:
                step.observation = [dict(message) for message in observation]
                env_ids = engine.chat.observation_ids(observation, closed=self._closed)
                if room is not None and len(ids) + len(env_ids) > room:
                    self._out_of_context()
                else:
                    self._append(self.info["turn"], SegmentKind.ENV, env_ids, [0.0] * len(env_ids))
            if on_step is not None:
                on_step(step)
            if one_question and self.info["turn_done"]:
                break

    def _out_of_context(self) -> None:
        self.finish, self.done = "context", True
        self.env.stop()

    def add_question(self, question: str) -> None:
        """Continue the finished episode with ``question`` (its gold SQL unknown); raises when the context is full."""
        if not self.done or self.finish != "done":
            raise RuntimeError("add_question() continues an episode that ended normally")
        self.observation = observation = self.env.add_question(question)
        env_ids = self.engine.chat.observation_ids(observation, closed=self._closed)
        limit = self.engine.max_total_tokens
        if limit is not None and len(self.prompt_ids) + len(self.completion_ids) + len(env_ids) >= limit:
            raise RuntimeError(f"the conversation has filled the model's context ({limit} tokens)")
        self._append(self.info["turn"] + 1, SegmentKind.ENV, env_ids, [0.0] * len(env_ids))
        self.info = {**self.info, "turn": self.info["turn"] + 1, "turn_done": False}
        self.done = False

    def record(self) -> Trajectory:
        """The episode's trajectory record (see the module docstring), with its rewards when the engine scores."""
        record = self.env.record
        dialogue = self.env.dialogue
        assert record is not None and dialogue is not None
        scorer = self.engine.scorer
        model_tokens = sum(self.completion_mask)
        return Trajectory(
            id=episode_id(dialogue.id, self.sample),
            dialogue_id=dialogue.id,
            sample=self.sample,
            dataset=dialogue.dataset,
            split=dialogue.split,
            db_id=dialogue.db_id,
            n_turns=len(dialogue.turns),
            settings=self.engine.settings,
            finish=self.finish,
            retokenized=self.retokenized,
            prompt_messages=self.prompt_messages,
            tools=self.engine.tools,
            prompt_ids=list(self.prompt_ids),
            completion_ids=list(self.completion_ids),
            completion_mask=list(self.completion_mask),
            logprobs=list(self.logprobs),
            segments=list(self.segments),
            text=self.engine.chat.tokenizer.decode(self.completion_ids, skip_special_tokens=False),
            steps=list(self.steps),
            turns=copy.deepcopy(record.turns),
            final_sql=[turn.final_sql for turn in record.turns],
            gold_sql=[turn.query for turn in dialogue.turns],
            malformed=record.malformed,
            rewards=None if scorer is None else scorer.episode(record).to_dict(),
            stats=TrajectoryStats(
                model_tokens=model_tokens,
                env_tokens=len(self.completion_mask) - model_tokens,
                steps=len(self.steps),
                elapsed_s=round(time.perf_counter() - self._start, 4),
            ),
        )

    def _append(self, turn: int, kind: SegmentKind, ids: list[int], logprobs: list[float]) -> None:
        start = len(self.completion_ids)
        self.segments.append(Segment(turn, kind, start, start + len(ids)))
        self.completion_ids += ids
        self.completion_mask += [int(kind == SegmentKind.MODEL)] * len(ids)
        self.logprobs += logprobs


def episode_id(dialogue_id: str, sample: int) -> str:
    """The id of one sample of a dialogue, unique in a rollout file."""
    return f"{dialogue_id}#{sample}"


class RecordsFileError(MtsqlError, ValueError):
    """An output file that is not a records file this run may append to; nothing in it was changed."""


#: How every record line starts (``json.dumps`` of a record, ``id`` first): a cut last line must start so too.
_RECORD_START = b'{"id": '


def _scan(path: str | os.PathLike[str]) -> tuple[list[tuple[int, bytes, Any]], int | None]:
    """Each line of a records file with its number and its JSON value (None when it does not parse), and the
    number of a last line cut by a crash, which is left out: the one line that may be, as it begins as a record
    does and does not parse (or has no newline). Every reader and the appending run apply this one rule."""
    with open(path, "rb") as file:
        lines = file.readlines()
    scanned = []
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line) if line.endswith(b"\n") else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            value = None
        if value is None and number == len(lines) and line.startswith(_RECORD_START):
            return scanned, number
        scanned.append((number, line, value))
    return scanned, None


def read_records(path: str | os.PathLike[str], *, one_run: bool = False) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, JSON object)`` for every record of a records file. A last line cut by a crash (or still
    being written) is left out; any other line that is not a JSON object, or text that is not UTF-8, raises
    :class:`RecordsFileError` naming its line, so a reader never stops early in silence. ``one_run``: episodes
    written with different settings (:attr:`RunSettings.SHARED`, as ``mtsql rollout`` keeps them apart) are
    refused too."""
    records: list[tuple[int, dict[str, Any]]] = []
    first: tuple[int, dict[str, Any]] | None = None
    for number, line, record in _scan(path)[0]:
        if not isinstance(record, dict):
            what = "not UTF-8" if not _is_utf8(line) else "not a JSON record"
            raise RecordsFileError(f"{path}, line {number}: {what}")
        if one_run and all(key in record for key in RunSettings.SHARED):  # an episode (other objects are the reader's)
            if first is None:
                first = (number, record)
            for key in RunSettings.SHARED:
                if record[key] != first[1][key]:
                    raise RecordsFileError(
                        f"{path} mixes runs: line {number} has {key}={record[key]!r}, line {first[0]} has "
                        f"{first[1][key]!r}; read each run's file on its own"
                    )
        records.append((number, record))
    return records


def read_episodes(path: str | os.PathLike[str], *, one_run: bool = False) -> list[Trajectory]:
    """Every trajectory of a records file (:func:`read_records`); a line that is not a trajectory record of this
    layout raises :class:`RecordsFileError` naming it."""
    trajectories = []
    for number, record in read_records(path, one_run=one_run):
        try:
            trajectories.append(Trajectory.from_dict(record))
        except TrajectoryFormatError as err:
            raise RecordsFileError(f"{path}, line {number}: {err}") from None
    return trajectories


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_finished(path: str | os.PathLike[str], settings: dict[str, Any] | None) -> tuple[set[str], int | None]:
    """The ids of the episodes already in ``path``, a records file that this run appends to, and the number of
    the cut last line dropped from it, if one was (``settings`` None: only check the file, change nothing).

    A records file is only ever appended to or refused: the cut last line of :func:`_scan` is cut off; anything
    else that is not an episode record (another kind of file, a bad line before the last) raises
    :class:`RecordsFileError` naming the line, and so does a record written with other settings
    (``RunSettings.SHARED``); the file is then left as it was.
    """
    if not os.path.exists(path):
        return set(), None
    if os.path.isdir(path):
        raise RecordsFileError(f"{path} is a directory: give a file for the records")
    scanned, dropped = _scan(path)
    ids: set[str] = set()
    good = 0
    for number, line, record in scanned:
        if record is None:
            follows = "" if dropped is None and number == scanned[-1][0] else " (and lines follow it)"
            raise RecordsFileError(
                f"{path}, line {number}: not an episode record{follows}; "
                "nothing was changed: give another --out, or repair the file"
            )
        if not isinstance(record, dict) or "id" not in record or "prompt_ids" not in record:
            raise RecordsFileError(f"{path}, line {number}: not an episode record; nothing was changed")
        for key in RunSettings.SHARED if settings is not None else ():
            if record.get(key) != settings.get(key):
                raise RecordsFileError(
                    f"{path} holds episodes with {key}={record.get(key)!r}, this run has {settings.get(key)!r}: "
                    "write to another file"
                )
        ids.add(record["id"])
        good += len(line)
    if dropped is not None and settings is not None:
        with open(path, "r+b") as file:
            file.truncate(good)
    return ids, dropped


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
