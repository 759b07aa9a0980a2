"""``mtsql data``: dataset statistics, exports and schema rendering."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtsql.cli.common import output_file, positive_seconds
from mtsql.data.dialogue import DatasetName
from mtsql.data.export import ExportFormat, Unit, export_dialogues
from mtsql.data.loaders import LoadResult, read_dataset
from mtsql.data.schema import (
    DatabaseSchema,
    find_database_dir,
    find_tables_json,
    read_tables_json,
    resolve_database_path,
    sample_values,
)
from mtsql.data.stats import DatasetStats, SchemaCache, TurnProblem, compute_stats, gold_hardness

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

data_app = typer.Typer(name="data", help="Datasets: statistics, exports and database schemas.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


DatasetArg = Annotated[DatasetName, typer.Option("--dataset", "-d", help="Which dataset.")]
SplitArg = Annotated[str, typer.Option("--split", "-s", help="Which split (train, dev; Spider also test).")]
DataDirArg = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="MTSQL_DATA_DIR",
        help="Folder with sparc/, cosql/, spider/ and database/ (or one dataset's folder).",
    ),
]
DbDirArg = Annotated[
    Path | None,
    typer.Option("--db-dir", help="Folder of <db_id>/<db_id>.sqlite [default: DATA_DIR/database]."),
]
TablesArg = Annotated[Path | None, typer.Option("--tables", help="The tables.json to use [default: the dataset's].")]


@data_app.command("stats")
def stats_command(
    dataset: DatasetArg,
    data_dir: DataDirArg,
    split: SplitArg = "dev",
    db_dir: DbDirArg = None,
    tables: TablesArg = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the statistics to this JSON file.")
    ] = None,
    check_gold: Annotated[
        bool,
        typer.Option("--check-gold/--no-check-gold", help="Execute every gold query to find broken ones."),
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", callback=positive_seconds, help="Seconds allowed to each gold query.")
    ] = 10.0,
) -> None:
    """Count dialogues and turns by hardness and turn depth, and list the turns that cannot be evaluated."""
    from rich.console import Console

    console = Console()
    name: DatasetName = dataset.value  # type: ignore[assignment]
    with _user_errors(console):
        loaded = read_dataset(name, split, data_dir)
        db_dir = db_dir or find_database_dir(name, data_dir)
        entries = read_tables_json(tables or find_tables_json(name, data_dir))
    _print_skipped_records(console, loaded)
    result = compute_stats(
        loaded.dialogues,
        dataset=name,
        split=split,
        db_dir=db_dir,
        tables=entries,
        skipped_records=len(loaded.skipped),
        check_gold=check_gold,
        timeout=timeout,
    )
    _print_stats(console, result)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(f"wrote {json_out}")


@data_app.command("export")
def export_command(
    dataset: DatasetArg,
    data_dir: DataDirArg,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="File format.")],
    out: Annotated[Path, typer.Option("--out", "-o", callback=output_file, help="Output file.")],
    split: SplitArg = "dev",
    unit: Annotated[Unit, typer.Option("--unit", help="One row per turn or per dialogue.")] = Unit.TURN,
    hardness: Annotated[
        bool, typer.Option("--hardness/--no-hardness", help="Add the official hardness of each gold query.")
    ] = False,
    db_dir: DbDirArg = None,
    tables: TablesArg = None,
) -> None:
    """Write a split as JSON lines or Parquet, one row per turn (with its history) or per dialogue."""
    from rich.console import Console

    console = Console(stderr=True)
    name: DatasetName = dataset.value  # type: ignore[assignment]
    with _user_errors(console):
        loaded = read_dataset(name, split, data_dir)
        levels = None
        if hardness:
            schemas = SchemaCache(
                db_dir or find_database_dir(name, data_dir),
                read_tables_json(tables or find_tables_json(name, data_dir)),
            )
            levels = gold_hardness(loaded.dialogues, schemas)
    _print_skipped_records(console, loaded)
    rows = export_dialogues(loaded.dialogues, out, fmt=fmt.value, unit=unit.value, hardness=levels)
    console.print(f"wrote {rows} rows ({unit.value}s of {len(loaded.dialogues)} dialogues) to {out}")


@data_app.command("schema")
def schema_command(
    database: Annotated[str, typer.Argument(help="A SQLite file, or a db_id looked up in --db-dir.")],
    db_dir: Annotated[Path | None, typer.Option("--db-dir", help="Folder of <db_id>/<db_id>.sqlite.")] = None,
    examples: Annotated[int, typer.Option("--examples", help="Example values shown per column.")] = 0,
) -> None:
    """Print a database's schema as the compact CREATE TABLE text used in prompts."""
    from rich.console import Console

    console = Console(stderr=True)
    path = Path(database)
    if not path.is_file() and db_dir is not None:
        path = resolve_database_path(db_dir, database)
    with _user_errors(console):
        schema = DatabaseSchema.from_sqlite(path)
        values = sample_values(path, schema, per_column=examples) if examples > 0 else None
    typer.echo(schema.render(values))


@contextmanager
def _user_errors(console: Console) -> Iterator[None]:
    """Turn a missing or malformed input into a one-line message and exit status 2, not a traceback."""
    try:
        yield
    except (FileNotFoundError, ValueError, sqlite3.Error) as error:
        console.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(code=2) from None


def _print_skipped_records(console: Console, loaded: LoadResult) -> None:
    if loaded.skipped:
        console.print(f"[yellow]skipped {len(loaded.skipped)} broken records:[/yellow]", highlight=False)
        for error in loaded.skipped[:10]:
            console.print(f"  {error}", highlight=False)
        if len(loaded.skipped) > 10:
            console.print(f"  ... and {len(loaded.skipped) - 10} more", highlight=False)


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def _print_stats(console: Console, stats: DatasetStats) -> None:
    from rich.table import Table

    name = f"{stats.dataset} {stats.split}"
    overview = Table(show_header=False)
    overview.add_row("dialogues", str(stats.dialogues))
    overview.add_row("turns", str(stats.turns))
    overview.add_row("broken records skipped", str(stats.skipped_records))
    usable = str(stats.usable_turns) + ("" if stats.checked_execution else " (gold not executed)")
    overview.add_row("turns usable for evaluation", usable)
    if stats.checked_execution:
        overview.add_row("turns whose gold returns no rows (EX pays any empty result)", str(stats.empty_gold_turns))
    overview.add_row("seconds", f"{stats.seconds:.2f}")
    _print_table(console, name, overview)

    for heading, counts in (("hardness", stats.by_hardness), ("turn depth", stats.by_depth)):
        table = Table(heading, "turns", "share")
        table.columns[1].justify = table.columns[2].justify = "right"
        for level, count in counts.items():
            table.add_row(level, str(count), _percent(count, stats.turns))
        table.add_row("all", str(stats.turns), _percent(stats.turns, stats.turns), style="bold")
        _print_table(console, f"{name}: turns by {heading}", table)

    if stats.missing_databases:
        table = Table("db_id", "turns")
        table.columns[1].justify = "right"
        for db_id, count in stats.missing_databases.items():
            table.add_row(db_id, str(count))
        _print_table(console, f"{name}: turns skipped, database file missing", table)
    _print_problems(console, f"{name}: gold queries that fail to execute", stats.exec_failures)
    _print_problems(console, f"{name}: gold queries that do not parse", stats.parse_failures)


def _print_problems(console: Console, title: str, problems: tuple[TurnProblem, ...]) -> None:
    from rich.table import Table

    if not problems:
        return
    table = Table("db_id", "dialogue", "turn", "error", "query")
    for column in table.columns:
        column.overflow = "fold"
    for problem in problems:
        # Turns are numbered from 1 here, as in the depth table; the JSON keeps the 0-based ``turn_index``.
        table.add_row(problem.db_id, problem.dialogue_id, str(problem.turn_index + 1), problem.error, problem.query)
    _print_table(console, title, table)


def _print_table(console: Console, title: str, table: Table) -> None:
    """A heading on its own line (a table title would wrap to the table's width), then the table."""
    console.print(f"\n[bold]{title}[/bold]", highlight=False)
    console.print(table)
