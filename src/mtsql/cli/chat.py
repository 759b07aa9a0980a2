"""``mtsql chat``: an interactive multi-turn session with the agent on any SQLite database."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtsql.cli.common import (
    ApiKeyOpt,
    BackendChoice,
    BackendOpt,
    BackendOptionsOpt,
    BaseUrlOpt,
    ChatTemplateOpt,
    DeviceOpt,
    ModelOpt,
    SeedOpt,
    TemplatesOpt,
    ThinkingOpt,
    TokenizerOpt,
    backend_options,
    checked_templates,
    quiet_hub,
)
from mtsql.cli.render import escape, show_result, show_step
from mtsql.errors import MtsqlError

if TYPE_CHECKING:
    from rich.console import Console

    from mtsql.rollout.engine import Episode


def register(app: typer.Typer) -> None:
    app.command(name="chat")(chat_command)


def chat_command(
    db: Annotated[Path, typer.Option("--db", help="The SQLite database to talk about (opened read-only).")],
    model: ModelOpt,
    backend: BackendOpt = BackendChoice.transformers,
    question: Annotated[
        list[str] | None,
        typer.Option("--question", "-q", help="Ask these questions in order, then stop (no prompt)."),
    ] = None,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 is greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 1.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Tokens per assistant message.")] = 1024,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Assistant messages per question.")] = 4,
    thinking: ThinkingOpt = True,
    chat_template: ChatTemplateOpt = None,
    templates: TemplatesOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    tokenizer: TokenizerOpt = None,
    option: BackendOptionsOpt = None,
    save: Annotated[
        Path | None, typer.Option("--save", help="Append the session's episode record (token ids included) here.")
    ] = None,
) -> None:
    """Ask questions about DB one after another; each is answered by the agent's loop, shown step by step:
    its thinking, the SQL it executes with the result as a table, its verdicts, and the final SQL.

    Later questions may refer to earlier ones: the dialogue memory holds the agent's own final SQL (predicted
    history). An empty line, "exit" or Ctrl-D ends the session. Exit code 2 for a missing database or a model
    that cannot be loaded.
    """
    from rich.console import Console

    from mtsql.backends import load_backend
    from mtsql.data.dialogue import Dialogue, Turn
    from mtsql.rollout import RolloutConfig, RolloutEngine

    console = Console(highlight=False)
    if not db.is_file():
        typer.echo(f"mtsql chat: no database file at {db}", err=True)
        raise typer.Exit(2)
    with open(db, "rb") as file:  # before the model loads: a file that is not a database is known at once
        head = file.read(16)
        if head and head != b"SQLite format 3\x00":  # (an empty file is an empty database to SQLite)
            typer.echo(f"mtsql chat: {db} is not a SQLite database", err=True)
            raise typer.Exit(2)
    quiet_hub()
    templates = checked_templates("chat", templates)
    options = backend_options(
        backend, device=device, seed=seed, base_url=base_url, api_key=api_key, tokenizer=tokenizer, pairs=option
    )
    config = RolloutConfig(
        max_steps=max_steps,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        enable_thinking=thinking,
        templates=templates,
    )
    db_id = re.sub(r"\W", "_", db.stem) or "db"  # the dialogue's name for the database (any file serves)
    try:
        engine = RolloutEngine(
            load_backend(backend.value, model, **options),
            db,
            config,
            chat_template=chat_template.read_text(encoding="utf-8") if chat_template else None,
        )
    except (MtsqlError, ImportError, OSError, TypeError, ValueError) as err:
        typer.echo(f"mtsql chat: cannot load {model!r} with the {backend.value} backend: {err}", err=True)
        raise typer.Exit(2) from None
    console.print(
        f"[bold]mtsql chat[/bold] on {db} with {model} ({backend.value}), predicted history, "
        f"{max_steps} steps a question. Empty line or Ctrl-D to quit."
    )
    questions = iter(question) if question else None
    episode: Episode | None = None
    with asyncio.Runner() as runner:
        while (text := _next_question(console, questions)) is not None:
            try:
                if episode is None:
                    dialogue = Dialogue("chat/0", "sparc", "chat", 0, db_id, (Turn(0, text, ""),))
                    episode = engine.start(dialogue)
                else:
                    episode.add_question(text)
                runner.run(episode.play(lambda step: show_step(console, step, db), one_question=True))
            except (MtsqlError, RuntimeError) as err:
                console.print(f"[red]{err}[/red]")
                break
            _show_final(console, db, episode)
        runner.run(engine.backend.aclose())
    if save is not None and episode is not None:
        with save.open("a", encoding="utf-8") as file:
            file.write(json.dumps(episode.record().to_dict(), ensure_ascii=False) + "\n")
        console.print(f"session saved to {save}")


def _next_question(console: Console, questions: Any) -> str | None:
    """The next question: from --question when given, else typed; None ends the session."""
    if questions is not None:
        text = next(questions, None)
        if text is not None:
            console.print(f"[bold cyan]question>[/bold cyan] {text}")
        return text
    try:
        text = console.input("[bold cyan]question>[/bold cyan] ").strip()
    except (EOFError, KeyboardInterrupt):
        console.print()
        return None
    return None if text.lower() in ("", "exit", "quit") else text


def _show_final(console: Console, db: Path, episode: Episode) -> None:
    record = episode.env.record
    assert record is not None
    turn = record.turns[-1]
    how = "answered" if turn.answered else "budget used up; last executed SQL taken"
    console.print(f"[bold green]final SQL[/bold green] ({how}): [bold]{escape(turn.final_sql or '(none)')}[/bold]")
    if turn.final_sql:
        show_result(console, db, turn.final_sql)
