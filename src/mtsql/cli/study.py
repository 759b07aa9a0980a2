"""``mtsql study``: one real model through every training arm, scored on held-out dialogues."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mtsql.cli.common import DataDirOpt, quiet_hub
from mtsql.errors import MtsqlError


def register(app: typer.Typer) -> None:
    app.command(name="study")(study_command)


def study_command(
    config: Annotated[Path, typer.Option("--config", "-c", exists=True, dir_okay=False, help="The study's YAML file.")],
    arms: Annotated[
        str | None,
        typer.Option(
            "--arms", help="Comma-separated arms to run (default: the config's), e.g. zero-shot,protocol-sft."
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Folder for models and records (default: the config's).")
    ] = None,
    results_dir: Annotated[
        Path | None,
        typer.Option("--results-dir", help="Folder for gold/pred files and metrics (default: the config's)."),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Run a study's arms (zero-shot, one-shot-sft, protocol-sft, self-taught, grpo): train each on the config's
    training dialogues, evaluate it on held-out ones with the official metrics, and write each arm's gold.txt,
    pred.txt and metrics.json as it finishes. A rerun continues: finished arms are kept, an interrupted one
    resumes from its checkpoints and records. Exit code 2 for a bad config."""
    import sys

    from rich.console import Console
    from rich.table import Table

    from mtsql.train.study import StudyConfig, run_study

    quiet_hub()
    console = Console(highlight=False)
    overrides = {
        "arms": [arm.strip() for arm in arms.split(",") if arm.strip()] if arms else None,
        "data_dir": str(data_dir.resolve()) if data_dir else None,
        "output_dir": str(output_dir.resolve()) if output_dir else None,
        "results_dir": str(results_dir.resolve()) if results_dir else None,
    }
    try:
        study = StudyConfig.from_yaml(config, **overrides)
    except (MtsqlError, ValueError, OSError) as err:
        typer.echo(f"mtsql study: {err}", err=True)
        raise typer.Exit(2) from None
    try:
        results = run_study(study, log=lambda text: console.print(text), progress=progress and sys.stderr.isatty())
    except (MtsqlError, ValueError, TypeError, OSError) as err:  # a refused setting, a model not found, failed episodes
        typer.echo(f"mtsql study: {type(err).__name__}: {err} (finished work is kept; a rerun continues)", err=True)
        raise typer.Exit(1) from None
    table = Table(
        title=f"study {study.name}: {study.model}, eval {study.eval.dataset} {study.eval.split} (predicted history)"
    )
    for column in (
        "arm",
        "EX",
        "EM",
        "interaction EX",
        "interaction EM",
        "format-valid",
        "answered",
        "tokens/question",
    ):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for result in results:
        table.add_row(
            result.arm,
            f"{result.ex:.1%}",
            f"{result.em:.1%}",
            f"{result.interaction_ex:.1%}",
            f"{result.interaction_em:.1%}",
            "-" if result.format_valid is None else f"{result.format_valid:.1%}",
            "-" if result.answered is None else f"{result.answered:.1%}",
            f"{result.tokens_per_question:.0f}",
        )
    console.print(table)
    console.print(f"gold/pred files and metrics in {study.results_dir}")
