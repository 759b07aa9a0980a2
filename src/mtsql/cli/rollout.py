"""``mtsql rollout``: run the agent over a dataset with any backend and record every episode token by token."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtsql.cli.common import (
    ApiKeyOpt,
    BackendChoice,
    BackendOpt,
    BackendOptionsOpt,
    BaseUrlOpt,
    ChatTemplateOpt,
    DataDirOpt,
    DatasetOpt,
    DeviceOpt,
    ExampleOpt,
    HistoryOpt,
    LimitOpt,
    ModelOpt,
    SeedOpt,
    SplitOpt,
    TemplatesOpt,
    ThinkingOpt,
    TokenizerOpt,
    checked_templates,
    load_dialogue_set,
    output_file,
    quiet_hub,
)
from mtsql.cli.common import backend_options as backend_options_of
from mtsql.env.memory import HistoryMode
from mtsql.errors import MtsqlError

if TYPE_CHECKING:
    from mtsql.rollout import RolloutSummary


def register(app: typer.Typer) -> None:
    app.command(name="rollout")(rollout_command)


def rollout_command(
    model: ModelOpt,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", callback=output_file, help="JSONL file of episodes (appended; a rerun resumes)."),
    ],
    backend: BackendOpt = BackendChoice.transformers,
    dataset: DatasetOpt = None,
    split: SplitOpt = "dev",
    data_dir: DataDirOpt = None,
    example: ExampleOpt = None,
    limit: LimitOpt = None,
    samples: Annotated[int, typer.Option("--samples", "-n", min=1, help="Episodes per dialogue.")] = 1,
    history: HistoryOpt = HistoryMode.PREDICTED,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 is greedy.")] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", min=0, help="0: no top-k.")] = 0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Tokens per assistant message.")] = 512,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Assistant messages per question.")] = 4,
    max_total_tokens: Annotated[
        int | None, typer.Option("--max-total-tokens", min=1, help="Tokens per episode (default: the context).")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Episodes in flight.")] = 32,
    thinking: ThinkingOpt = True,
    chat_template: ChatTemplateOpt = None,
    templates: TemplatesOpt = None,
    rewards: Annotated[bool, typer.Option("--rewards/--no-rewards", help="Score each episode.")] = True,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    tokenizer: TokenizerOpt = None,
    backend_options: BackendOptionsOpt = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Run the agent on every dialogue (SAMPLES episodes each) and append one JSON record per episode to OUT.

    Each record holds prompt_ids, completion_ids, completion_mask (1: model token, 0: environment token),
    logprobs, the segments, the text, each step's action and verdict, the final SQL per turn and the reward
    components. Rerunning with the same OUT skips the episodes already there. Exit code 1 when episodes failed
    (rerun to retry them), 2 for bad arguments or settings that differ from OUT's.
    """
    from mtsql.backends import load_backend
    from mtsql.rewards import RewardConfig
    from mtsql.rollout import RecordsFileError, RolloutConfig, RolloutEngine, read_finished

    quiet_hub()
    try:  # before any model loads: a file that is not a records file is refused, untouched
        read_finished(out, None)
    except RecordsFileError as err:
        typer.echo(f"mtsql rollout: --out: {err}", err=True)
        raise typer.Exit(2) from None
    templates = checked_templates("rollout", templates)
    dialogues, db_dir, tables = load_dialogue_set(dataset, split, data_dir, example, limit)
    options = backend_options_of(
        backend, device=device, seed=seed, base_url=base_url, api_key=api_key, tokenizer=tokenizer,
        pairs=backend_options,
    )  # fmt: skip
    if backend is BackendChoice.llamacpp:
        # One llama.cpp context (with its KV cache) per episode in flight: more episodes than contexts would evict
        # each other's cached prefixes, and on a CPU more episodes at once add no throughput.
        options.setdefault("slots", min(concurrency, 4))
        concurrency = min(concurrency, int(options["slots"]))
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
        templates=templates,
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
    except (MtsqlError, ImportError, OSError, TypeError, ValueError) as err:
        typer.echo(f"mtsql rollout: cannot load {model!r} with the {backend.value} backend: {err}", err=True)
        raise typer.Exit(2) from None
    try:
        summary = engine.run(dialogues, out, progress=progress and sys.stderr.isatty())
    except ValueError as err:  # RecordsFileError: not a records file of this run (left untouched)
        typer.echo(f"mtsql rollout: {err}", err=True)
        raise typer.Exit(2) from None
    _report(summary, out, engine.settings.history_mode)
    if summary.failed:
        raise typer.Exit(1)


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
    if summary.dropped_line is not None:
        table.add_row("[yellow]last line cut by a crash, dropped[/yellow]", f"line {summary.dropped_line}")
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
        if any(record.rewards for record in records):
            table.add_row("EX of final SQL", f"{metrics['ex']:.1%}")
            table.add_row("EM of final SQL", f"{metrics['em']:.1%}")
            table.add_row("mean reward", f"{metrics['reward']:.3f}")
    Console(stderr=False).print(table)
    for error in summary.errors[:5]:
        typer.echo(f"failed: {error}", err=True)
