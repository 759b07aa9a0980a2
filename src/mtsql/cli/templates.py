"""``mtsql templates``: the environment's text sets, to list, copy and check before a run uses one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

templates_app = typer.Typer(
    name="templates",
    help="The environment's versioned texts (prompts, tool replies): list, show, check.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(templates_app, name="templates")


@templates_app.command("list")
def list_command() -> None:
    """The built-in template sets, with their descriptions."""
    import tomllib

    from mtsql.env.templates import available_templates, builtin_template_text

    for name in available_templates():
        description = tomllib.loads(builtin_template_text(name)).get("description", "")
        typer.echo(f"{name}\t{description}")


@templates_app.command("show")
def show_command(
    name: Annotated[str | None, typer.Argument(help="A built-in set (default: the default set).")] = None,
) -> None:
    """Print a built-in set's TOML file: redirect it to a file, change the texts and the version, and give the
    file to --templates (rollout, chat, sft build-data) or to `templates:` in a self-taught or RL config."""
    from mtsql.env.templates import DEFAULT_TEMPLATES, TemplateError, builtin_template_text

    try:
        typer.echo(builtin_template_text(name or DEFAULT_TEMPLATES), nl=False)
    except TemplateError as err:
        typer.echo(f"mtsql templates show: {err}", err=True)
        raise typer.Exit(2) from None


@templates_app.command("check")
def check_command(
    file: Annotated[Path, typer.Argument(help="A template file (TOML).")],
) -> None:
    """Load FILE as the environment would and say what is wrong with it (exit code 1), or print its version and
    the fields each template uses."""
    from mtsql.env.templates import TemplateError, load_templates

    try:
        loaded = load_templates(file)
    except TemplateError as err:
        typer.echo(f"mtsql templates check: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{file}: version {loaded.version}, {len(loaded.templates)} templates")
    for name, template in loaded.templates.items():
        fields = ", ".join(template.get_identifiers()) or "-"
        typer.echo(f"  {name}: {fields}")
