"""``mtsql rollout``: run the agent over a dataset with any backend and record every episode token by token."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from mtsql.data.dialogue import Dialogue
    from mtsql.rollout import RolloutSummary


class BackendChoice(StrEnum):
    transformers = "transformers"
    vllm = "vllm"
    openai = "openai"


class DatasetChoice(StrEnum):
    sparc = "sparc"
    cosql = "cosql"
    spider = "spider"


class HistoryChoice(StrEnum):
    predicted = "predicted"
    oracle = "oracle"


def register(app: typer.Typer) -> None:
    app.command(name="rollout")(rollout_command)


def rollout_command(
    model: Annotated[str, typer.Option("--model", "-m", help="Checkpoint folder, hub id, or a served model's name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file of episodes (appended; a rerun resumes).")],
    backend: Annotated[
        BackendChoice, typer.Option("--backend", help="Where the model runs.")
    ] = BackendChoice.transformers,
    dataset: Annotated[DatasetChoice | None, typer.Option("--dataset", "-d", help="Benchmark to run on.")] = None,
    split: Annotated[str, typer.Option("--split", "-s", help="Split of the dataset.")] = "dev",
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="MTSQL_DATA_DIR", help="Folder with sparc/, cosql/, spider/, database/."),
    ] = None,
    example: Annotated[
        str | None, typer.Option("--example", help="Run on a bundled example (e.g. 'festival') instead of --dataset.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N dialogues.")] = None,
    samples: Annotated[int, typer.Option("--samples", "-n", min=1, help="Episodes per dialogue.")] = 1,
    history: Annotated[
        HistoryChoice, typer.Option("--history", help="Memory of earlier turns: own answers or gold SQL.")
    ] = HistoryChoice.predicted,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 is greedy.")] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", min=0, help="0: no top-k.")] = 0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Tokens per assistant message.")] = 512,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Assistant messages per question.")] = 4,
    max_total_tokens: Annotated[
        int | None, typer.Option("--max-total-tokens", min=1, help="Tokens per episode (default: the context).")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Episodes in flight.")] = 32,
    thinking: Annotated[bool, typer.Option("--thinking/--no-thinking", help="Qwen3's enable_thinking.")] = True,
    chat_template: Annotated[
        Path | None, typer.Option("--chat-template", help="A Jinja chat template replacing the tokenizer's.")
    ] = None,
    rewards: Annotated[bool, typer.Option("--rewards/--no-rewards", help="Score each episode.")] = True,
    device: Annotated[str, typer.Option("--device", help="transformers: auto, cpu, cuda, cuda:1...")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed of local backends.")] = 0,
    base_url: Annotated[str | None, typer.Option("--base-url", help="openai: the server's /v1 URL.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="openai: the key (default $OPENAI_API_KEY).")] = None,
    tokenizer: Annotated[
        str | None, typer.Option("--tokenizer", help="openai: the model's tokenizer (default: --model).")
    ] = None,
    backend_options: Annotated[
        list[str] | None,
        typer.Option("--backend-option", help="KEY=VALUE passed to the backend (VALUE read as JSON if it parses)."),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Run the agent on every dialogue (SAMPLES episodes each) and append one JSON record per episode to OUT.

    Each record holds prompt_ids, completion_ids, completion_mask (1: model token, 0: environment token),
    logprobs, the segments, the text, each step's action and verdict, the final SQL per turn and the reward
    components. Rerunning with the same OUT skips the episodes already there. Exit code 1 when episodes failed
    (rerun to retry them), 2 for bad arguments or settings that differ from OUT's.
    """
    from mtsql.backends import BackendError, load_backend
    from mtsql.rewards import RewardConfig
    from mtsql.rollout import ChatTemplateError, RolloutConfig, RolloutEngine

    _quiet_hub()
    dialogues, db_dir, tables = _dialogues(dataset, split, data_dir, example)
    if limit is not None:
        dialogues = dialogues[:limit]
    options = _backend_options(backend, device, seed, base_url, api_key, tokenizer, backend_options or [])
    config = RolloutConfig(
        samples=samples,
        max_steps=max_steps,
        history_mode=history.value,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        max_total_tokens=max_total_tokens,
        concurrency=concurrency,
        enable_thinking=thinking,
    )
    try:
        engine = RolloutEngine(
            load_backend(backend.value, model, **options),
            db_dir,
            config,
            tables=tables,
            rewards=RewardConfig() if rewards else None,
            chat_template=chat_template.read_text(encoding="utf-8") if chat_template else None,
        )
    except (ImportError, OSError, ValueError, ChatTemplateError, BackendError) as err:
        typer.echo(f"mtsql rollout: cannot load {model!r} with the {backend.value} backend: {err}", err=True)
        raise typer.Exit(2) from None
    try:
        summary = engine.run(dialogues, out, progress=progress and sys.stderr.isatty())
    except ValueError as err:  # the output file holds episodes of other settings
        typer.echo(f"mtsql rollout: {err}", err=True)
        raise typer.Exit(2) from None
    _report(summary, out, engine.settings["history_mode"])
    if summary.failed:
        raise typer.Exit(1)


def _quiet_hub() -> None:
    """No loading bars from transformers: the rollout's own progress bar is the one to read."""
    try:
        from transformers.utils import logging
    except ImportError:
        return
    logging.disable_progress_bar()


def _dialogues(
    dataset: DatasetChoice | None, split: str, data_dir: Path | None, example: str | None
) -> tuple[list[Dialogue], Path, Path | None]:
    """The dialogues to run, their database folder and tables.json."""
    from mtsql.data import DatasetNotFoundError, find_database_dir, find_tables_json, load_dialogues, read_dataset_file

    if (dataset is None) == (example is None):
        raise typer.BadParameter("give exactly one of --dataset and --example", param_hint="--dataset")
    if example is not None:
        from mtsql.examples import load_example

        try:
            bundled = load_example(example)
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="--example") from err
        return list(read_dataset_file(bundled.dialogues, "sparc", "example").dialogues), bundled.db_dir, bundled.tables
    assert dataset is not None
    if data_dir is None:
        raise typer.BadParameter("required with --dataset (or set MTSQL_DATA_DIR)", param_hint="--data-dir")
    try:
        dialogues = load_dialogues(dataset.value, split, data_dir)
        db_dir = find_database_dir(dataset.value, data_dir)
    except (DatasetNotFoundError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint="--data-dir") from err
    try:
        tables: Path | None = find_tables_json(dataset.value, data_dir)
    except DatasetNotFoundError:
        tables = None  # rewards then read foreign keys from the SQLite files
    return dialogues, db_dir, tables


def _backend_options(
    backend: BackendChoice,
    device: str,
    seed: int,
    base_url: str | None,
    api_key: str | None,
    tokenizer: str | None,
    pairs: list[str],
) -> dict[str, Any]:
    if backend is BackendChoice.openai:
        options: dict[str, Any] = {"base_url": base_url, "api_key": api_key, "tokenizer": tokenizer}
    elif backend is BackendChoice.transformers:
        options = {"device": device, "seed": seed}
    else:
        options = {"seed": seed}
    options = {key: value for key, value in options.items() if value is not None}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--backend-option")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    return options


def _report(summary: RolloutSummary, out: Path, history_mode: str) -> None:
    """One table: what was written and how fast, and the written episodes' scores."""
    from rich.console import Console
    from rich.table import Table

    from mtsql.rollout import read_episodes
    from mtsql.rollout.metrics import episode_metrics

    records = read_episodes(out) if out.exists() else []
    table = Table(title=f"rollout → {out} (history: {history_mode})", show_header=False)
    table.add_row("episodes written now", f"{summary.written:,}")
    table.add_row("episodes already there (resumed)", f"{summary.resumed:,}")
    if summary.failed:
        table.add_row("[red]episodes failed (rerun to retry)[/red]", f"{summary.failed:,}")
    if summary.skipped_dialogues:
        missing = ", ".join(summary.missing_databases)
        table.add_row("dialogues skipped (database missing)", f"{summary.skipped_dialogues:,} ({missing})")
    if summary.written and summary.wall_s > 0:
        table.add_row("episodes/s", f"{summary.written / summary.wall_s:.2f}")
        table.add_row("generated tokens/s", f"{summary.model_tokens / summary.wall_s:,.0f}")
    if records:
        metrics = episode_metrics(records)
        table.add_row("episodes in file", f"{len(records):,} ({metrics['questions']:,} questions)")
        table.add_row("format-valid messages", f"{metrics['format_valid']:.1%}")
        table.add_row("questions answered with <answer_sql>", f"{metrics['answered']:.1%}")
        if any(record.get("rewards") for record in records):
            table.add_row("EX of final SQL", f"{metrics['ex']:.1%}")
            table.add_row("EM of final SQL", f"{metrics['em']:.1%}")
            table.add_row("mean reward", f"{metrics['reward']:.3f}")
    Console(stderr=False).print(table)
    for error in summary.errors[:5]:
        typer.echo(f"failed: {error}", err=True)
