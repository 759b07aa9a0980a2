"""``mtsql rl``: stage 2, end-to-end multi-turn GRPO (TRL's GRPOTrainer with the rollout engine), and its plots."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from mtsql.cli.common import quiet_hub

rl_app = typer.Typer(
    name="rl",
    help="Stage 2: multi-turn GRPO with TRL (curriculum, process reward), and its plots.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(rl_app, name="rl")


@rl_app.command("train")
def train_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="The run's YAML file (see configs/rl-*.yaml).")],
) -> None:
    """Train with GRPO over multi-turn episodes of the rollout engine (environment tokens masked out of the loss),
    one reward function per component, and the configured curriculum. Resumes from the output folder's last
    checkpoint; writes metrics.jsonl there as it goes and the final model at the end. Multi-GPU and multi-node:
    start it with ``accelerate launch --config_file configs/accelerate/... -m mtsql rl train --config ...``."""
    from mtsql.train.rl.config import RLConfig

    quiet_hub()
    logging.getLogger("mtsql").setLevel(logging.INFO)
    logging.basicConfig(format="%(message)s")
    try:
        run = RLConfig.from_yaml(config)
    except (OSError, ValueError, TypeError) as err:
        typer.echo(f"mtsql rl train: {err}", err=True)
        raise typer.Exit(2) from None
    from mtsql.train.rl.trainer import train_rl

    try:
        output = train_rl(run)
    except ValueError as err:
        typer.echo(f"mtsql rl train: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"model saved to {output}")


@rl_app.command("plot")
def plot_command(
    metrics: Annotated[Path, typer.Option("--metrics", "-m", help="A run's metrics.jsonl.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNG files.")],
) -> None:
    """Plot the total reward, each reward component, the response length (model tokens), the curriculum stage and
    the seconds per step (and generating the episodes) over the steps: one PNG each and overview.png."""
    from mtsql.train.rl.metrics import plot_metrics

    try:
        files = plot_metrics(metrics, out)
    except (OSError, ValueError) as err:
        typer.echo(f"mtsql rl plot: {err}", err=True)
        raise typer.Exit(2) from None
    for path in files:
        typer.echo(str(path))
