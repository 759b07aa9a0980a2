"""The self-taught rounds: sampling, selection and fine-tuning, each a resumable stage recorded in ``state.json``
(see :mod:`mtsql.train.selftaught` for the folder's layout)."""

from __future__ import annotations

import gc
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtsql.data.dialogue import Dialogue
from mtsql.data.schema import resolve_database_path
from mtsql.errors import MtsqlError
from mtsql.train.data import sft_example
from mtsql.train.files import write_atomically, write_jsonl
from mtsql.train.selftaught.config import SelfTaughtConfig
from mtsql.train.selftaught.report import rounds_table
from mtsql.train.selftaught.selection import Embedder, MiniLMEmbedder, remaining, select_trajectories

if TYPE_CHECKING:
    from rich.console import Console

#: Settings that may change when a run is resumed (they do not change what is sampled, kept or trained).
_RESUMABLE_CHANGES = frozenset({"rounds", "concurrency", "embedding_device"})


class SelfTaughtError(MtsqlError, RuntimeError):
    """A run that cannot go on: episodes failed (rerun to retry them), or its folder holds another run."""


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
        source = config.load_source()
        dialogues, self.db_dir, self.tables = source.dialogues, source.db_dir, source.tables
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
            if record.finish != "done":
                continue  # longer than max_total_tokens
            row = sft_example(record)
            row.update(dialogue_id=record.dialogue_id, rule="gold", round=index, length=sum(row["assistant_masks"]))
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
    :mod:`mtsql.train.selftaught`. ``progress`` shows the rollouts' progress bars; the per-round lines and table go to
    ``console`` (default: standard output). Raises :class:`SelfTaughtError` when episodes failed (rerun to
    retry) or the output folder holds a run with other settings, ``ValueError`` for a bad configuration."""
    if not isinstance(config, SelfTaughtConfig):
        config = SelfTaughtConfig.from_yaml(config)
    return SelfTaught(config, console=console, progress=progress).run()


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
