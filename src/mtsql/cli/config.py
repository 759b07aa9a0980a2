"""``mtsql config``: every setting of a run's YAML file, its default and what it does (from the field help the
files are read with, so the list cannot drift from what is accepted)."""

from __future__ import annotations

import importlib
from enum import StrEnum
from typing import Annotated

import typer


class RunKind(StrEnum):
    sft = "sft"
    self_taught = "self-taught"
    rl = "rl"
    study = "study"


#: Each run's config class, as ``module:name`` (imported only when listed).
RUN_CONFIGS: dict[RunKind, str] = {
    RunKind.sft: "mtsql.train.sft:SFTRunConfig",
    RunKind.self_taught: "mtsql.train.selftaught:SelfTaughtConfig",
    RunKind.rl: "mtsql.train.rl.config:RLConfig",
    RunKind.study: "mtsql.train.study:StudyConfig",
}


def register(app: typer.Typer) -> None:
    app.command(name="config")(config_command)


def config_command(
    kind: Annotated[RunKind, typer.Argument(help="Which run's file: sft, self-taught, rl or study.")],
) -> None:
    """List the keys of a run's YAML file (sections as section.key), their defaults and their meaning."""
    from rich.console import Console
    from rich.table import Table

    from mtsql.train.config import describe

    module, name = RUN_CONFIGS[kind].split(":")
    config_class = getattr(importlib.import_module(module), name)
    table = Table("key", "default", "meaning", title=f"mtsql {kind.value} run file ({config_class.__name__})")
    for key, default, meaning in describe(config_class):
        table.add_row(key, default, meaning)
    Console(highlight=False).print(table)
