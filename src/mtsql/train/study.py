"""A study: one real model through every training arm, each scored by the official metrics on held-out dialogues.

The arms, in order (each a model and its evaluation):

- ``zero-shot``: the model as it is, with the protocol;
- ``one-shot-sft``: the short-horizon baseline: SFT on question -> SQL rows
  (:func:`mtsql.train.data.one_shot_examples`), evaluated by asking for the SQL directly, the model's own earlier
  answers as the history;
- ``protocol-sft``: SFT on gold protocol trajectories (stage 1's warm start);
- ``self-taught``: the self-taught loop (:mod:`mtsql.train.selftaught`) started from the protocol-SFT model;
- ``grpo``: multi-turn GRPO (:mod:`mtsql.train.rl`) started from the last protocol arm before it.

Training uses a seeded sample of one split's dialogues and evaluation a seeded sample of another's (or all of
it), so every number is on dialogues no arm trained on. Protocol arms are evaluated greedily with predicted
history; the rollouts run on the llama.cpp backend when the config says so (a trained checkpoint is exported to
GGUF first, :mod:`mtsql.models.to_gguf`), the same way for every arm, including the untrained model.

Resumable at every level: an arm whose ``metrics.json`` exists is done; SFT and GRPO resume from their
checkpoints, the self-taught loop from its state, evaluation rollouts from their records file and one-shot
predictions from theirs. Layout::

    output_dir/<arm>/            models, checkpoints, records (not for committing)
    results_dir/<arm>/gold.txt   the evaluated dialogues' gold, official format (SQL<TAB>db_id, blank lines)
    results_dir/<arm>/pred.txt   the arm's predictions, official format, for the official script to re-score
    results_dir/<arm>/metrics.json   official metrics (by hardness and turn) and the protocol's own rates
    results_dir/grpo/metrics.jsonl   the GRPO run's logged rewards per step, plotted beside it
    results_dir/summary.json     every finished arm's headline numbers, with wall times
    results_dir/tables.md        the same, and EX/EM by hardness and by turn, as Markdown tables
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from mtsql.data.dialogue import DATASETS, Dialogue
from mtsql.data.schema import resolve_database_path
from mtsql.data.sources import DialogueSource
from mtsql.errors import ConfigError, MtsqlError
from mtsql.train.config import RunConfig, build
from mtsql.train.files import write_json, write_jsonl

if TYPE_CHECKING:
    from mtsql.rollout import RolloutConfig

ARMS: Final = ("zero-shot", "one-shot-sft", "protocol-sft", "self-taught", "grpo")
#: The arms a protocol arm may start from, nearest first.
_STARTS: Final = {"self-taught": ("protocol-sft",), "grpo": ("self-taught", "protocol-sft")}


class StudyError(MtsqlError, ValueError):
    """A study that cannot run as configured (a bad config, an arm whose starting arm is missing)."""


@dataclass(slots=True)
class SplitSettings:
    """Dialogues of ``dataset``'s ``split``: a seeded ``sample`` of that many, or all of them (``sample: null``)."""

    dataset: str = field(metadata={"help": "a benchmark: sparc, cosql or spider"})
    split: str = field(default="dev", metadata={"help": "its split"})
    sample: int | None = field(default=None, metadata={"help": "a seeded sample of this many dialogues (null: all)"})
    seed: int = field(default=0, metadata={"help": "the sample's seed"})

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise StudyError(f"unknown dataset {self.dataset!r}: choose one of {', '.join(DATASETS)}")
        if self.sample is not None and self.sample < 1:
            raise StudyError(f"sample must be at least 1, not {self.sample}")

    def source(self, data_dir: str) -> DialogueSource:
        from mtsql.data import load_source

        return load_source(
            dataset=self.dataset, split=self.split, data_dir=data_dir, sample=self.sample, seed=self.seed
        )


@dataclass(slots=True)
class EvalSettings:
    """How protocol arms are evaluated (greedy, predicted history): per message ``max_tokens``, per question
    ``max_steps``; ``backend`` and ``backend_options`` of :func:`mtsql.backends.load_backend` (with
    ``llamacpp``, a trained checkpoint is exported to GGUF like the study's model); ``one_shot_max_tokens`` for
    the one-shot arm's SQL."""

    backend: str = field(default="llamacpp", metadata={"help": "the evaluation backend (load_backend's name)"})
    backend_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the backend's options"})
    max_tokens: int = field(default=256, metadata={"help": "tokens per assistant message"})
    max_steps: int = field(default=4, metadata={"help": "assistant messages per question"})
    thinking: bool = field(default=True, metadata={"help": "Qwen3's thinking switch"})
    concurrency: int = field(default=2, metadata={"help": "episodes in flight"})
    one_shot_max_tokens: int = field(default=160, metadata={"help": "tokens of the one-shot arm's SQL"})

    def rollout_config(self) -> RolloutConfig:
        """The rollout engine's settings for a protocol arm's evaluation: greedy, predicted history."""
        from mtsql.train.config import SamplingSettings

        sampling = SamplingSettings(
            temperature=0.0, max_tokens=self.max_tokens, max_steps=self.max_steps, thinking=self.thinking
        )
        return sampling.rollout_config(concurrency=self.concurrency, history_mode="predicted")


@dataclass(slots=True)
class StudyConfig(RunConfig):
    """A study (see the module docstring). ``model``: a packaged model's name, a GGUF file or a checkpoint;
    ``sft`` and ``one_shot`` are ``trl.SFTConfig`` settings (``training``) and ``max_length``; ``self_taught`` and
    ``grpo`` hold the fields of :class:`~mtsql.train.selftaught.SelfTaughtConfig` and
    :class:`~mtsql.train.rl.RLConfig` that the study does not set itself (model, folders, data). Read from YAML
    by the runs' one mechanism (:mod:`mtsql.train.config`); folders are relative to the file."""

    name: str = field(metadata={"help": "the study's name (its results folder's too)"})
    model: str = field(metadata={"help": "a packaged model's name, a GGUF file or a checkpoint", "path": "model"})
    output_dir: str = field(metadata={"help": "where models and rollouts go (not committed)", "path": "file"})
    results_dir: str = field(metadata={"help": "where the results go (committed)", "path": "file"})
    train: SplitSettings = field(metadata={"help": "the dialogues trained on"})
    eval: SplitSettings = field(metadata={"help": "the held-out dialogues evaluated on"})
    data_dir: str | None = field(
        default=None, metadata={"help": "the benchmarks' folder (default: $MTSQL_DATA_DIR)", "path": "file"}
    )
    arms: list[str] = field(default_factory=lambda: list(ARMS), metadata={"help": "the arms to run"})
    evaluation: EvalSettings = field(default_factory=EvalSettings, metadata={"help": "how arms are evaluated"})
    sft: dict[str, Any] = field(default_factory=dict, metadata={"help": "protocol SFT: training, max_length"})
    one_shot: dict[str, Any] = field(default_factory=dict, metadata={"help": "one-shot SFT: training, max_length"})
    self_taught: dict[str, Any] = field(default_factory=dict, metadata={"help": "SelfTaughtConfig fields"})
    grpo: dict[str, Any] = field(default_factory=dict, metadata={"help": "RLConfig fields"})

    def __post_init__(self) -> None:
        unknown = [arm for arm in self.arms if arm not in ARMS]
        if unknown:
            raise StudyError(f"unknown arm(s) {', '.join(unknown)}: the arms are {', '.join(ARMS)}")
        self.arms = [arm for arm in ARMS if arm in self.arms]  # always in the pipeline's order
        for arm, starts in _STARTS.items():
            if arm in self.arms and not any(start in self.arms for start in starts):
                raise StudyError(f"the {arm} arm starts from {' or '.join(starts)}: add it to the arms")
        for name in ("sft", "one_shot"):
            extra = set(getattr(self, name)) - {"training", "max_length"}
            if extra:
                raise StudyError(f"{name}: unknown key(s) {', '.join(sorted(extra))} (training, max_length)")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], **overrides: Any) -> StudyConfig:
        """Read a study's YAML file; ``overrides`` replace top-level keys (the CLI's ``--arms``,
        ``--output-dir``...); ``data_dir`` defaults to ``$MTSQL_DATA_DIR`` (relative to the working folder)."""
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if isinstance(values, dict):
            values.update({key: value for key, value in overrides.items() if value is not None})
            if not values.get("data_dir") and os.environ.get("MTSQL_DATA_DIR"):
                values["data_dir"] = str(Path(os.environ["MTSQL_DATA_DIR"]).resolve())
        try:
            return build(cls, values, base=Path(path).resolve().parent, source=str(path))
        except ConfigError as err:
            raise StudyError(str(err)) from None


@dataclass(slots=True)
class ArmResult:
    """One arm's headline numbers (fractions), its model and its wall times in seconds."""

    arm: str
    model: str
    ex: float
    em: float
    interaction_ex: float
    interaction_em: float
    questions: int
    dialogues: int
    format_valid: float | None
    answered: float | None
    tokens_per_question: float
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Study:
    """A study's folders and arms; :meth:`run` runs the arms not finished yet, in order."""

    def __init__(self, config: StudyConfig, log: Callable[[str], None] = print, progress: bool = False) -> None:
        self.config = config
        self.log = log
        self.progress = progress
        self.out = Path(config.output_dir)
        self.results = Path(config.results_dir)
        if config.data_dir is None:
            raise StudyError("data_dir is required (in the config, --data-dir or $MTSQL_DATA_DIR)")
        self.train_source = config.train.source(config.data_dir)
        self.eval_source = source = config.eval.source(config.data_dir)
        self.eval_dialogues = [d for d in source.dialogues if resolve_database_path(source.db_dir, d.db_id).is_file()]
        self.skipped_eval = len(source.dialogues) - len(self.eval_dialogues)

    def run(self) -> list[ArmResult]:
        """Run every arm not finished yet; returns every arm's result (finished earlier or now)."""
        from mtsql.models.packaged import resolve_model

        self.base_model = resolve_model(self.config.model)
        self.out.mkdir(parents=True, exist_ok=True)
        self.results.mkdir(parents=True, exist_ok=True)
        (self.out / "study.json").write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        results = []
        for arm in self.config.arms:
            done = self.results / arm / "metrics.json"
            if done.is_file():
                result = ArmResult(**json.loads(done.read_text(encoding="utf-8"))["result"])
                self.log(f"{arm}: finished earlier (EX {result.ex:.1%}, EM {result.em:.1%})")
            else:
                result = self.run_arm(arm)
            results.append(result)
            summary = self.summary(results)
            write_json(self.results / "summary.json", summary)
            (self.results / "tables.md").write_text(tables_markdown(summary, self.results), encoding="utf-8")
        return results

    def summary(self, results: list[ArmResult]) -> dict[str, Any]:
        config = self.config
        return {
            "study": config.name,
            "model": config.model,
            "train": dataclasses.asdict(config.train) | {"dialogues": len(self.train_source.dialogues)},
            "eval": dataclasses.asdict(config.eval)
            | {"dialogues": len(self.eval_dialogues), "skipped_missing_database": self.skipped_eval},
            "history": "predicted",
            "arms": [result.to_dict() for result in results],
        }

    def run_arm(self, arm: str) -> ArmResult:
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        self.log(f"{arm}: starting")
        folder = self.out / arm
        folder.mkdir(parents=True, exist_ok=True)
        if arm == "zero-shot":
            model = self.base_model
        elif arm == "one-shot-sft":
            model = self._sft(folder, kind="one-shot")
        elif arm == "protocol-sft":
            model = self._sft(folder, kind="gold")
        elif arm == "self-taught":
            model = self._self_taught(folder)
        else:
            model = self._grpo(folder)
        seconds["train"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        same = self._evaluated_as(arm, model)
        if arm == "one-shot-sft":
            predictions, protocol = self._one_shot_predictions(model, folder / "predictions.jsonl")
        elif same is not None:  # e.g. a self-taught round that kept nothing: greedy evaluation would repeat itself
            self.log(f"  {arm}: the same model as the {same} arm; its evaluation is reused")
            predictions, protocol = self._protocol_predictions(
                self._trained(same), self.out / same / "eval-rollouts.jsonl"
            )
        else:
            predictions, protocol = self._protocol_predictions(model, folder / "eval-rollouts.jsonl")
        seconds["evaluate"] = round(time.perf_counter() - start, 1)
        result = self._score(arm, model, predictions, protocol, seconds)
        self.log(
            f"{arm}: EX {result.ex:.1%}, EM {result.em:.1%} ({seconds['train']:.0f} s + {seconds['evaluate']:.0f} s)"
        )
        return result

    # --- training ---------------------------------------------------------------------------------------------

    def _sft(self, folder: Path, *, kind: str) -> str:
        from mtsql.train.sft import SFTRunConfig, train_sft

        model_dir = folder / "model"
        if (model_dir / "config.json").is_file() and any(model_dir.glob("*.safetensors")):
            return str(model_dir)
        rows_file = folder / "train-rows.jsonl"
        if not rows_file.is_file():
            rows = self._one_shot_rows() if kind == "one-shot" else self._gold_rows()
            write_jsonl(rows_file, rows)
            self.log(f"  {len(rows)} {kind} training rows from {len(self.train_source.dialogues)} dialogues")
        settings = self.config.one_shot if kind == "one-shot" else self.config.sft
        run = SFTRunConfig.from_dict(
            {**settings, "model": self.base_model, "data": [str(rows_file)], "output_dir": str(model_dir)}
        )
        return str(train_sft(run))

    def _one_shot_rows(self) -> list[dict[str, Any]]:
        from mtsql.train.data import one_shot_examples

        return one_shot_examples(self.train_source.dialogues, str(self.train_source.db_dir))

    def _gold_rows(self) -> list[dict[str, Any]]:
        from mtsql.backends import TokenizerOnly
        from mtsql.rollout import RolloutEngine
        from mtsql.train.config import SamplingSettings
        from mtsql.train.gold import gold_rows

        evaluation = self.config.evaluation
        sampling = SamplingSettings(temperature=0.0, max_steps=evaluation.max_steps, thinking=evaluation.thinking)
        engine = RolloutEngine(
            TokenizerOnly(self.base_model),
            self.train_source.db_dir,
            sampling.rollout_config(),
            tables=self.train_source.tables,
        )
        return gold_rows(engine, self.train_source.dialogues)

    def _trained(self, arm: str) -> str:
        """Where a protocol arm's model is (``final``: a link to the model the arm's run ended with)."""
        return str(self.out / arm / ("model" if arm == "protocol-sft" else "final"))

    def _start_of(self, arm: str) -> str:
        for start in _STARTS[arm]:
            if start in self.config.arms:
                return self._trained(start)
        raise StudyError(f"the {arm} arm has no starting arm")

    def _evaluated_as(self, arm: str, model: str) -> str | None:
        """The earlier protocol arm already evaluated with the same model, if any."""
        for earlier in ("protocol-sft", "self-taught"):
            if earlier == arm:
                return None
            path = Path(self._trained(earlier))
            done = (self.out / earlier / "eval-rollouts.jsonl").is_file()
            if done and path.exists() and path.resolve() == Path(model).resolve():
                return earlier
        return None

    def _train_data(self) -> dict[str, Any]:
        """The training dialogues in the terms of the self-taught and RL configs (which a section may override)."""
        train = self.config.train
        return {
            "dataset": train.dataset,
            "split": train.split,
            "data_dir": self.config.data_dir,
            "sample": train.sample,
            "sample_seed": train.seed,
        }

    def _self_taught(self, folder: Path) -> str:
        from mtsql.train.selftaught import SelfTaughtConfig, run_self_taught

        config = self.config
        options = dict(config.evaluation.backend_options)
        if config.evaluation.backend == "llamacpp":
            options.setdefault("gguf_like", config.model)
        settings = {
            "backend": config.evaluation.backend,
            "backend_options": options,
            "rounds": 1,
            "max_steps": config.evaluation.max_steps,
            "thinking": config.evaluation.thinking,
            **config.self_taught,
        }
        run = SelfTaughtConfig.from_dict(
            {
                **self._train_data(),
                **settings,
                "model": self._start_of("self-taught"),
                "output_dir": str(folder / "run"),
            }
        )
        result = run_self_taught(run, progress=self.progress)
        return _link_final(folder, result.final_model)

    def _grpo(self, folder: Path) -> str:
        from mtsql.train.rl import RLConfig
        from mtsql.train.rl.trainer import train_rl

        config = self.config
        settings = {**config.grpo, "data": self._train_data() | dict(config.grpo.get("data") or {})}
        settings["sampling"] = {
            "max_steps": config.evaluation.max_steps,
            "thinking": config.evaluation.thinking,
            **dict(config.grpo.get("sampling") or {}),
        }
        run = RLConfig.from_dict(
            {**settings, "model": self._start_of("grpo"), "output_dir": str(folder / "run")}, base=Path("/")
        )
        model = _link_final(folder, str(train_rl(run)))
        self._keep_reward_curve(folder / "run" / "metrics.jsonl")
        return model

    def _keep_reward_curve(self, metrics: Path) -> None:
        """The GRPO run's logged metrics (reward per component, lengths) and their plots, kept with the results."""
        from mtsql.train.rl.metrics import plot_metrics

        kept = self.results / "grpo"
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(metrics, kept / "metrics.jsonl")
        plot_metrics(kept / "metrics.jsonl", kept / "plots")

    # --- evaluation -------------------------------------------------------------------------------------------

    def _backend(self, model: str) -> Any:
        from mtsql.backends import load_backend

        evaluation = self.config.evaluation
        options = dict(evaluation.backend_options)
        if evaluation.backend == "llamacpp":
            options.setdefault("slots", evaluation.concurrency)
            if os.path.isdir(model):
                options.setdefault("gguf_like", self.config.model)
        elif evaluation.backend == "transformers":
            options.setdefault("device", "auto")
        return load_backend(evaluation.backend, model, **options)

    def _protocol_predictions(self, model: str, records_file: Path) -> tuple[list[list[str]], dict[str, float]]:
        from mtsql.data.loaders import gold_sessions
        from mtsql.rewards import RewardConfig
        from mtsql.rollout import RolloutEngine, read_episodes
        from mtsql.rollout.export import predictions_from_episodes
        from mtsql.rollout.metrics import episode_metrics

        rollout = self.config.evaluation.rollout_config()
        engine = RolloutEngine(
            self._backend(model),
            self.eval_source.db_dir,
            rollout,
            tables=self.eval_source.tables,
            rewards=RewardConfig(),
        )
        summary = engine.run(self.eval_dialogues, records_file, progress=self.progress)
        if summary.failed:
            raise StudyError(f"{summary.failed} evaluation episodes failed ({'; '.join(summary.errors[:3])}): rerun")
        records = read_episodes(records_file, one_run=True)
        predicted = predictions_from_episodes(records, gold_sessions(self.eval_dialogues))
        metrics = episode_metrics(records)
        protocol = {
            "format_valid": metrics["format_valid"],
            "answered": metrics["answered"],
            "model_tokens": sum(r.stats.model_tokens for r in records),
            "unreached_questions": predicted.unreached_turns,
        }
        return predicted.sessions, protocol

    def _one_shot_predictions(self, model: str, path: Path) -> tuple[list[list[str]], dict[str, float]]:
        """Each question's SQL asked for directly, the model's own earlier SQL as history; one line per
        dialogue appended to ``path`` as it finishes (a rerun skips those)."""
        from mtsql.backends.base import SamplingParams
        from mtsql.data.schema import DatabaseSchema
        from mtsql.env.protocol import clean_sql
        from mtsql.train.data import one_shot_messages

        done: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash: that dialogue runs again
                done[row["dialogue_id"]] = row
        todo = [d for d in self.eval_dialogues if d.id not in done]
        if todo:
            backend = self._backend(model)
            tokenizer = backend.tokenizer
            params = SamplingParams(max_tokens=self.config.evaluation.one_shot_max_tokens, temperature=0.0)
            schemas: dict[str, str] = {}

            async def dialogue_sql(dialogue: Dialogue) -> dict[str, Any]:
                if dialogue.db_id not in schemas:
                    schemas[dialogue.db_id] = DatabaseSchema.from_sqlite(
                        resolve_database_path(self.eval_source.db_dir, dialogue.db_id)
                    ).render()
                history: list[tuple[str, str]] = []
                tokens = 0
                for turn in dialogue.turns:
                    messages = one_shot_messages(dialogue.db_id, schemas[dialogue.db_id], history, turn.utterance)
                    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                    generation = await backend.generate(tokenizer.encode(text, add_special_tokens=False), params)
                    tokens += len(generation.token_ids)
                    reply = tokenizer.decode(generation.token_ids, skip_special_tokens=True)
                    history.append((turn.utterance, clean_sql(reply)))
                return {"dialogue_id": dialogue.id, "sql": [sql for _, sql in history], "tokens": tokens}

            async def run_all() -> None:
                with path.open("a", encoding="utf-8") as out:
                    for dialogue in todo:  # sequential: the backend batches nothing useful on a CPU
                        row = await dialogue_sql(dialogue)
                        out.write(json.dumps(row) + "\n")
                        out.flush()
                        done[row["dialogue_id"]] = row
                await backend.aclose()

            asyncio.run(run_all())
        from mtsql.data.loaders import sql_line

        sessions = [[sql_line(sql) for sql in done[d.id]["sql"]] for d in self.eval_dialogues]
        return sessions, {"model_tokens": sum(done[d.id]["tokens"] for d in self.eval_dialogues)}

    def _score(
        self, arm: str, model: str, predictions: list[list[str]], protocol: dict[str, Any], seconds: dict[str, float]
    ) -> ArmResult:
        from mtsql.data.loaders import gold_sessions, write_gold_file, write_prediction_file
        from mtsql.eval.evaluator import EvalOptions, evaluate_turns
        from mtsql.eval.plots import plot_accuracy
        from mtsql.eval.summary import summarize

        gold = gold_sessions(self.eval_dialogues)
        folder = self.results / arm
        folder.mkdir(parents=True, exist_ok=True)
        write_gold_file(folder / "gold.txt", gold)
        write_prediction_file(folder / "pred.txt", predictions)
        options = EvalOptions(db_dir=self.eval_source.db_dir, tables=self.eval_source.tables, etype="all")
        official = summarize(evaluate_turns(gold, predictions, options), "all").to_json()
        plot_accuracy(official, folder / "plots")
        questions = sum(len(session) for session in gold)
        overall = official["question_match"]
        result = ArmResult(
            arm=arm,
            model=model,
            ex=overall["exec"],
            em=overall["exact"],
            interaction_ex=official["interaction_match"]["exec"],
            interaction_em=official["interaction_match"]["exact"],
            questions=questions,
            dialogues=len(gold),
            format_valid=protocol.get("format_valid"),
            answered=protocol.get("answered"),
            tokens_per_question=round(protocol["model_tokens"] / questions, 1) if questions else 0.0,
            seconds=seconds,
        )
        write_json(folder / "metrics.json", {"result": result.to_dict(), "protocol": protocol, "official": official})
        return result


def tables_markdown(summary: dict[str, Any], results: Path) -> str:
    """The study's tables in Markdown: headline numbers per arm, then EX/EM by hardness and by turn (from each
    arm's ``metrics.json``), for ``docs/results.md``."""
    arms = summary["arms"]
    train, evaluation = summary["train"], summary["eval"]
    lines = [
        f"Study `{summary['study']}`: {summary['model']}, trained on {train['dialogues']} {train['dataset']} "
        f"{train['split']} dialogues, evaluated on {evaluation['dialogues']} held-out {evaluation['dataset']} "
        f"{evaluation['split']} dialogues ({arms[0]['questions']} questions; "
        f"{evaluation['skipped_missing_database']} sampled dialogues left out, database missing), predicted history, "
        "official metrics.",
        "",
        "| arm | EX | EM | interaction EX | interaction EM | format-valid | answered | tokens/question | train s "
        "| eval s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    for arm in arms:
        cells = [
            arm["ex"],
            arm["em"],
            arm["interaction_ex"],
            arm["interaction_em"],
            arm["format_valid"],
            arm["answered"],
        ]
        seconds = arm["seconds"]
        numbers = f"{arm['tokens_per_question']:.0f} | {seconds['train']:.0f} | {seconds['evaluate']:.0f}"
        lines.append(f"| {arm['arm']} | " + " | ".join(pct(v) for v in cells) + f" | {numbers} |")
    officials = {
        arm["arm"]: json.loads((results / arm["arm"] / "metrics.json").read_text(encoding="utf-8"))["official"]
        for arm in arms
    }
    for title, key in (("hardness", "levels"), ("turn", "turns")):
        first = next(iter(officials.values()))[key]
        groups = [g for g in first if g not in ("all", "joint_all") and first[g]["count"]]
        lines += ["", f"EX / EM by {title} (questions: "
                  + ", ".join(f"{g} {first[g]['count']}" for g in groups) + ")", ""]  # fmt: skip
        lines.append("| arm | " + " | ".join(groups) + " |")
        lines.append("|---|" + "---|" * len(groups))
        for arm, official in officials.items():
            row = [f"{pct(official[key][g]['exec'])} / {pct(official[key][g]['exact'])}" for g in groups]
            lines.append(f"| {arm} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def run_study(config: StudyConfig, log: Callable[[str], None] = print, progress: bool = False) -> list[ArmResult]:
    """Run (or continue) the study of ``config``; see the module docstring."""
    return Study(config, log=log, progress=progress).run()


def _link_final(folder: Path, model: str) -> str:
    """Record where an arm's trained model is (``<arm>/final``, a symlink), so a later arm finds it by name."""
    link = folder / "final"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(model).resolve(), target_is_directory=True)
    return str(link)
