"""Entry point of the ``mtsql`` console command.

Each command group lives in its own module and adds itself through ``register(app)``, so this file only
lists them. Imports stay cheap: heavy dependencies are imported inside the commands that need them.
"""

from __future__ import annotations

import typer

from mtsql import __version__
from mtsql.cli import chat, config, data, demo, evaluate, models, rl, rollout, serve, sft, sql, study, templates, view

app = typer.Typer(
    name="mtsql",
    help="Long-horizon multi-turn text-to-SQL: evaluation, safe SQL environment, agents and training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (evaluate, data, sql, models, serve, rollout, chat, view, sft, rl, demo, study, templates, config):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mtsql {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """mtsql command line."""
