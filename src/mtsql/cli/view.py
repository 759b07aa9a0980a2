"""``mtsql view``: read what the agent did, from episode records (``mtsql rollout``, ``mtsql chat --save``, gold
and self-taught trajectories: one JSON record per line)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtsql.cli.render import escape, show_result, show_step

if TYPE_CHECKING:
    from rich.console import Console

    from mtsql.rollout.trajectory import Trajectory


def register(app: typer.Typer) -> None:
    app.command(name="view")(view_command)


def view_command(
    records: Annotated[Path, typer.Argument(help="JSONL file of episode records.")],
    episode: Annotated[
        list[str] | None, typer.Option("--episode", "-e", help="Only these episode ids (repeatable).")
    ] = None,
    wrong: Annotated[
        bool, typer.Option("--wrong", help="Only episodes with a question whose final SQL misses EX or EM.")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Show at most N episodes.")] = None,
    db_dir: Annotated[
        Path | None,
        typer.Option("--db-dir", help="Database folder: show the results of the SQL as tables (run read-only)."),
    ] = None,
    example: Annotated[
        str | None, typer.Option("--example", help="A bundled example's databases, instead of --db-dir.")
    ] = None,
) -> None:
    """Show episodes step by step: each question, the agent's thinking, the SQL it executed and what came back,
    its verdicts, its final SQL beside the gold SQL, and the reward components (when the records were scored).

    Without --db-dir the SQL results are the records' own summaries (rows and columns, or the error). A last line
    cut by a crash is left out; a bad line elsewhere, or records of different runs in one file, stop the command
    naming the line; records without the fields of an episode are skipped and counted. Exit code 1 when no
    episode matches, 2 for a missing or bad file or bad options.
    """
    from rich.console import Console

    from mtsql.rollout.engine import RecordsFileError, read_records
    from mtsql.rollout.trajectory import Trajectory, TrajectoryFormatError

    if db_dir is not None and example is not None:
        typer.echo("mtsql view: give --db-dir or --example, not both", err=True)
        raise typer.Exit(2)
    if not records.is_file():
        typer.echo(f"mtsql view: no file {records}", err=True)
        raise typer.Exit(2)
    if example is not None:
        from mtsql.examples import load_example

        try:
            db_dir = load_example(example).db_dir
        except ValueError as err:
            typer.echo(f"mtsql view: {err}", err=True)
            raise typer.Exit(2) from None
    console = Console(highlight=False)
    try:
        read = read_records(records, one_run=True)
    except RecordsFileError as err:
        typer.echo(f"mtsql view: {err}", err=True)
        raise typer.Exit(2) from None
    valid = []
    for _, record in read:
        try:
            valid.append(Trajectory.from_dict(record))
        except TrajectoryFormatError:
            continue
    chosen = [r for r in valid if (not episode or r.id in episode) and (not wrong or _missed(r))]
    for trajectory in chosen[:limit]:
        _show_episode(console, trajectory, db_dir)
    skipped = len(read) - len(valid)
    console.print(
        f"[bold]{min(len(chosen), limit or len(chosen))}[/bold] of {len(valid)} episodes shown"
        + (f"; {skipped} records without an episode's fields skipped" if skipped else "")
    )
    if not chosen:
        raise typer.Exit(1)


def _missed(record: Trajectory) -> bool:
    questions = (record.rewards or {}).get("questions") or []
    return any(q.get("exec", 0) < 1 or q.get("exact", 0) < 1 for q in questions if not q.get("skipped"))


def _show_episode(console: Console, record: Trajectory, db_dir: Path | None) -> None:
    from mtsql.data.schema import resolve_database_path

    rewards = record.rewards or {}
    header = f"{record.id} on {record.db_id}, {record.settings.history_mode} history"
    if record.settings.model:
        header += f", model {record.settings.model}"
    if "total" in rewards:
        header += f", reward {rewards['total']:.3f}"
    console.rule(style="bold")
    console.print(f"[bold]{escape(header)}[/bold]")
    db = None
    if db_dir is not None:
        db = resolve_database_path(db_dir, record.db_id)
        if not db.is_file():
            console.print(f"[yellow]no database {record.db_id} in {db_dir}: results from the record[/yellow]")
            db = None
    scores = {q["turn"]: q for q in rewards.get("questions", [])}
    for turn in record.turns:
        index = turn.index
        score = scores.get(index, {})
        hardness = f" ({score['hardness']})" if score.get("hardness") else ""
        console.print(f"\n[bold cyan]question {index + 1}{hardness}:[/bold cyan] {escape(turn.question)}")
        for step in record.steps:
            if step.turn == index:
                show_step(console, step, db)
        how = "answered" if turn.answered else "budget used up; last executed SQL taken"
        final = turn.final_sql or "(none)"
        console.print(f"[bold green]final SQL[/bold green] ({how}): [bold]{escape(final)}[/bold]")
        if db is not None and turn.final_sql:
            show_result(console, db, turn.final_sql)
        if turn.gold_sql:
            console.print(f"gold SQL: {escape(turn.gold_sql)}")
        if score:
            console.print(_verdicts(score))
    if record.finish == "context":
        console.print("[yellow]the episode ran out of context before its last question[/yellow]")


def _verdicts(score: dict[str, Any]) -> str:
    if score.get("skipped"):
        return "[dim]not scored (the gold SQL does not run)[/dim]"
    marks = " ".join(
        f"{name} [{'green' if score[name] >= 1 else 'red'}]{score[name]:g}[/]"
        for name in ("exec", "exact")
        if name in score
    )
    process = ", ".join(
        f"{name} {score[name]:.2f}" for name in ("exec_verify", "coherence", "clause_f1") if name in score
    )
    return f"{marks}; {process}; total {score.get('total', 0):.3f}"
