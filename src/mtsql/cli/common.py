"""What several commands share: the choices, the options of model backends and data sources, and their loading.

Options are ``Annotated`` aliases so each command declares ``backend: BackendOpt = BackendChoice.transformers``
and every command spells, documents and validates them the same way.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtsql.data.dialogue import DatasetName
from mtsql.env.memory import HistoryMode
from mtsql.errors import MtsqlError

if TYPE_CHECKING:
    from mtsql.data.dialogue import Dialogue


class BackendChoice(StrEnum):
    transformers = "transformers"
    vllm = "vllm"
    llamacpp = "llamacpp"
    openai = "openai"


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Checkpoint folder, hub id, a model of 'mtsql models list', a .gguf file, or a served model's name.",
    ),
]
BackendOpt = Annotated[BackendChoice, typer.Option("--backend", help="Where the model runs.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="transformers: auto, cpu, cuda, cuda:1...")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Sampling seed of local backends.")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="openai: the server's /v1 URL.")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", help="openai: the key (default $OPENAI_API_KEY).")]
TokenizerOpt = Annotated[
    str | None, typer.Option("--tokenizer", help="openai: the model's tokenizer (default: --model).")
]
BackendOptionsOpt = Annotated[
    list[str] | None,
    typer.Option("--backend-option", help="KEY=VALUE passed to the backend (VALUE read as JSON if it parses)."),
]
TemplatesOpt = Annotated[
    str | None,
    typer.Option(
        "--templates",
        help="The environment's texts: a built-in set or a TOML file (default: built-in; see 'mtsql templates').",
    ),
]
ThinkingOpt = Annotated[bool, typer.Option("--thinking/--no-thinking", help="Qwen3's enable_thinking.")]
ChatTemplateOpt = Annotated[
    Path | None, typer.Option("--chat-template", help="A Jinja chat template replacing the tokenizer's.")
]
HistoryOpt = Annotated[HistoryMode, typer.Option("--history", help="Memory of earlier turns: own answers or gold SQL.")]
DatasetOpt = Annotated[DatasetName | None, typer.Option("--dataset", "-d", help="A benchmark to run on.")]
SplitOpt = Annotated[str, typer.Option("--split", "-s", help="Split of the dataset.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="MTSQL_DATA_DIR", help="Folder with sparc/, cosql/, spider/, database/."),
]
ExampleOpt = Annotated[
    str | None, typer.Option("--example", help="A bundled example (e.g. 'festival') instead of --dataset.")
]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N dialogues.")]


def output_file(value: Path | None) -> Path | None:
    """A callback for options naming a file to write: refused at once when it is a directory, its folder made
    when missing, so a long command never fails at its very end."""
    if value is None:
        return None
    if value.is_dir():
        raise typer.BadParameter(f"{value} is a directory: give a file")
    try:
        value.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise typer.BadParameter(f"cannot make the folder {value.parent}: {err.strerror or err}") from None
    if value.parent.is_dir() and not os.access(value.parent, os.W_OK):
        raise typer.BadParameter(f"cannot write into {value.parent}")
    return value


def positive_seconds(value: float) -> float:
    """A ``--timeout`` callback: a finite number of seconds above 0 (``inf`` would mean no limit at all)."""
    import math

    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"must be a finite number of seconds above 0, not {value}")
    return value


def checked_templates(command: str, templates: str | None) -> str:
    """The ``--templates`` value (the default set when not given), loaded now so that a bad file stops the command
    with exit code 2 before any model is loaded."""
    from mtsql.env.templates import DEFAULT_TEMPLATES, TemplateError, load_templates

    name = templates or DEFAULT_TEMPLATES
    try:
        load_templates(name)
    except TemplateError as err:
        typer.echo(f"mtsql {command}: --templates: {err}", err=True)
        raise typer.Exit(2) from None
    return name


def quiet_hub() -> None:
    """No loading bars from transformers: the command's own output is the one to read."""
    try:
        from transformers.utils import logging
    except ImportError:
        return
    logging.disable_progress_bar()


def load_dialogue_set(
    dataset: DatasetName | None, split: str, data_dir: Path | None, example: str | None, limit: int | None = None
) -> tuple[list[Dialogue], Path, Path | None]:
    """The dialogues of ``--dataset`` or ``--example`` (the first ``limit``), their database folder and
    tables.json (None when the data has none: rewards then read foreign keys from the SQLite files)."""
    from mtsql.data import load_source

    if (dataset is None) == (example is None):
        raise typer.BadParameter("give exactly one of --dataset and --example", param_hint="--dataset")
    if dataset is not None and data_dir is None:
        raise typer.BadParameter("required with --dataset (or set MTSQL_DATA_DIR)", param_hint="--data-dir")
    try:
        source = load_source(
            dataset=dataset.value if dataset else None, split=split, data_dir=data_dir, example=example, limit=limit
        )
    except (MtsqlError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint="--example" if example else "--data-dir") from err
    return source.dialogues, source.db_dir, source.tables


def backend_options(
    backend: BackendChoice,
    *,
    device: str,
    seed: int,
    base_url: str | None,
    api_key: str | None,
    tokenizer: str | None,
    pairs: list[str] | None,
) -> dict[str, Any]:
    """The constructor options of ``backend`` from the common flags and ``--backend-option KEY=VALUE`` pairs."""
    if backend is BackendChoice.openai:
        options: dict[str, Any] = {"base_url": base_url, "api_key": api_key, "tokenizer": tokenizer}
    elif backend is BackendChoice.transformers:
        options = {"device": device, "seed": seed}
    else:
        options = {"seed": seed}
    options = {key: value for key, value in options.items() if value is not None}
    options.update(key_value_options(pairs, param_hint="--backend-option"))
    return options


def key_value_options(pairs: list[str] | None, *, param_hint: str) -> dict[str, Any]:
    """Keyword arguments from ``KEY=VALUE`` pairs (VALUE read as JSON if it parses, else as text; ``-`` in KEY read
    as ``_``), so every command passes options to a backend the same way."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=param_hint)
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    return options
