"""Showing an agent's steps in a terminal, shared by ``mtsql chat`` (live) and ``mtsql view`` (from records)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from rich.console import Console

    from mtsql.rollout.trajectory import Step

_THINK: Final = re.compile(r"<think>(.*?)</think>", re.DOTALL)
SHOWN_ROWS: Final = 10


def show_step(console: Console, step: Step, db: Path | None) -> None:
    """One assistant message (a record's step): its thinking, its verdict, its action and what came back. With a
    database the SQL's result is shown as a table (run again, read-only); without, the record's summary of it."""
    console.rule(f"question {step.turn + 1}, step {step.step}", style="dim")
    for thought in _THINK.findall(step.text):
        if thought.strip():
            console.print(f"[dim italic]{escape(thought.strip())}[/dim italic]")
    verdict = step.verdict
    if verdict is not None:
        colour = "green" if verdict["value"] == "pass" else "yellow"
        console.print(f"{verdict['tag']}: [{colour}]{verdict['value']}[/{colour}]")
    if step.error_kind is not None:
        console.print(f"[red]malformed ({step.error_kind}):[/red] {escape(step.error or '')}")
        console.print(f"[dim]{escape(' '.join(step.text.split())[-300:])}[/dim]")
    elif step.action == "exec_sql":
        console.print(f"exec_sql: [bold]{escape(step.sql or '')}[/bold]")
        if db is not None:
            show_result(console, db, step.sql or "")
        elif step.exec is not None:
            console.print(f"[dim]{escape(exec_summary(step.exec))}[/dim]")
    elif step.action == "memory_retrieve":
        console.print("memory_retrieve: checking coherence with the earlier questions")


def exec_summary(summary: dict[str, Any]) -> str:
    """An ``exec_sql`` call's recorded outcome in one line: the error, or the rows and columns."""
    if not summary["ok"]:
        return f"error ({summary['error_kind']}): {summary['error']}"
    rows = f"{summary['n_rows']}{'+' if summary['truncated'] else ''} row{'' if summary['n_rows'] == 1 else 's'}"
    return f"{rows} (columns: {', '.join(summary['columns'])})"


def show_result(console: Console, db: Path, sql: str) -> None:
    """The SQL's result on ``db`` as a table (the first rows), or its error."""
    from rich.table import Table

    from mtsql.sql.executor import execute_isolated

    result = execute_isolated(db, sql, max_rows=SHOWN_ROWS)  # model-written SQL: the hard time limit
    if not result.ok:
        console.print(f"[red]error:[/red] {escape(result.error or '')}")
        return
    table = Table(*[escape(c) for c in result.columns], show_lines=False)
    for row in result.rows:
        table.add_row(*[escape(repr(v) if isinstance(v, bytes) else str(v)) for v in row])
    console.print(table)
    if result.truncated:
        console.print(f"[dim](first {SHOWN_ROWS} rows)[/dim]")


def escape(text: str) -> str:
    """Model-written text shown literally: square brackets are rich markup otherwise."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)
