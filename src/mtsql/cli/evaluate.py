"""``mtsql evaluate``: the official SParC/CoSQL/Spider evaluation, faster, with per-turn and JSON output."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from mtsql.cli.common import output_file, positive_seconds
from mtsql.data.loaders import read_gold_file, read_prediction_file
from mtsql.errors import MtsqlError


def evaluate(
    gold: Annotated[
        Path | None, typer.Option("--gold", help="Gold file: 'SQL<TAB>db_id' a line, sessions split by blank lines.")
    ] = None,
    pred: Annotated[
        Path | None, typer.Option("--pred", help="Predictions: one SQL a line, same sessions as the gold file.")
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="Folder with <db_id>/<db_id>.sqlite (and any other .sqlite files).")
    ] = None,
    table: Annotated[
        Path | None, typer.Option("--table", help="tables.json (foreign keys), needed for exact set match.")
    ] = None,
    etype: Annotated[
        str, typer.Option("--etype", help="all, exec (execution match) or match (exact set match).")
    ] = "all",
    keep_distinct: Annotated[
        bool, typer.Option("--keep-distinct", "--keep_distinct", help="Keep DISTINCT for execution match.")
    ] = False,
    plug_value: Annotated[
        bool,
        typer.Option(
            "--plug-value",
            "--plug_value",
            help="Execution match also accepts a prediction that matches with the gold's values plugged into its "
            "value slots (for models that do not predict values).",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", callback=positive_seconds, help="Time limit per query execution, in seconds.")
    ] = 60.0,
    isolate: Annotated[
        bool,
        typer.Option(
            "--isolate/--no-isolate",
            help="Run each query in a worker process killed at the time limit (a hard limit, also for one slow "
            "built-in function; --no-isolate is a little faster on trusted predictions).",
        ),
    ] = True,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (0: one per core).")] = 0,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fix the official script's quirks (see docs/evaluation.md).")
    ] = False,
    per_turn: Annotated[
        Path | None,
        typer.Option("--per-turn", callback=output_file, help="Write one JSON object per turn to this JSONL file."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", callback=output_file, help="Write the whole summary as JSON to this file.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write accuracy_by_hardness.png and accuracy_by_turn.png here (matplotlib)."),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="Tables: 'rich', 'plain' (the official script's layout, for diffs and logs) or 'auto' "
            "(rich on a terminal, plain otherwise).",
        ),
    ] = "auto",
    example: Annotated[
        str | None,
        typer.Option("--example", help="Evaluate a bundled example (e.g. 'festival') instead of --gold/--pred/--db."),
    ] = None,
    trajectories: Annotated[
        Path | None,
        typer.Option("--trajectories", help="Score the final SQL of mtsql rollout episodes (JSONL) instead of --pred."),
    ] = None,
    sample: Annotated[
        int, typer.Option("--sample", min=0, help="With --trajectories: which sample of each dialogue.")
    ] = 0,
) -> None:
    """Score predictions with the official verdicts: hardness, exact set match, execution match, per turn."""
    from mtsql.eval.evaluator import EvalOptions, databases_without_tables, evaluate_turns, extra_predictions
    from mtsql.eval.exact_match import load_foreign_key_maps
    from mtsql.eval.exec_match import PLUG_VALUE_LIMIT
    from mtsql.eval.report import print_notes, print_plain, print_rich
    from mtsql.eval.summary import summarize

    if example is not None:
        from mtsql.examples import load_example

        try:
            bundled = load_example(example)
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="--example") from err
        gold, db, table = gold or bundled.gold, db or bundled.db_dir, table or bundled.tables
        if trajectories is None:
            pred = pred or bundled.predictions
    if pred is not None and trajectories is not None:
        raise typer.BadParameter("give --pred or --trajectories, not both", param_hint="--trajectories")
    for value, name in ((gold, "--gold"), (pred or trajectories, "--pred"), (db, "--db")):
        if value is None:
            raise typer.BadParameter("required (or give --example)", param_hint=name)
    assert gold is not None and db is not None
    if output_format not in ("auto", "rich", "plain"):
        raise typer.BadParameter("must be one of: auto, rich, plain", param_hint="--format")
    if etype not in ("all", "exec", "match"):
        raise typer.BadParameter("must be one of: all, exec, match", param_hint="--etype")
    if etype != "exec" and table is None:
        raise typer.BadParameter("exact set match needs the tables.json file", param_hint="--table")
    if not db.is_dir():
        raise typer.BadParameter(f"{db} is not a folder", param_hint="--db")
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise typer.BadParameter("needs matplotlib: pip install matplotlib", param_hint="--plot") from None
    start = time.perf_counter()
    try:
        gold_sessions = read_gold_file(gold)
        if trajectories is not None:
            pred_sessions = _trajectory_predictions(trajectories, gold_sessions, sample)
        else:
            assert pred is not None
            pred_sessions = read_prediction_file(pred)
    except (MtsqlError, FileNotFoundError, KeyError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    options = EvalOptions(
        db_dir=db, tables=table, etype=etype, keep_distinct=keep_distinct, timeout=timeout, strict=strict,
        plug_value=plug_value, workers=workers, isolate=isolate,
    )  # fmt: skip
    try:
        kmaps = load_foreign_key_maps(table) if table else {}  # read once: the summary's notes use them too
        results = evaluate_turns(gold_sessions, pred_sessions, options, kmaps=kmaps)
    except (ValueError, FileNotFoundError) as err:  # sessions that do not pair up, a broken tables.json
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    without_tables = databases_without_tables(gold_sessions, kmaps) if table and etype != "exec" else {}
    summary = summarize(
        results, etype, strict=strict, gold_turns_per_session=[len(s) for s in gold_sessions],  # type: ignore[arg-type]
        without_tables=without_tables, extra_predictions=extra_predictions(gold_sessions, pred_sessions),
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if per_turn is not None:
        with per_turn.open("w", encoding="utf-8") as f:
            for session in results:
                for r in session:
                    f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
    if plot is not None:
        from mtsql.eval.plots import plot_accuracy

        plot_accuracy(summary.to_json(), plot)
    if json_out is not None:
        data = summary.to_json()
        data["files"] = {
            "gold": str(gold),
            "pred": str(pred) if pred is not None else None,
            "trajectories": str(trajectories) if trajectories is not None else None,
            "db": str(db),
            "table": str(table) if table else None,
        }
        data["settings"] = {
            "keep_distinct": keep_distinct,
            "plug_value": plug_value,
            "timeout": timeout,
            "isolate": isolate,
        }
        data["seconds"] = round(elapsed, 3)
        json_out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if output_format == "plain" or (output_format == "auto" and not sys.stdout.isatty()):
        print_plain(summary)
        print_notes(summary)
    else:
        print_rich(summary)
    sys.stdout.flush()
    limited = summary.exec_status.get("plug_value_limit", 0)
    if limited:
        typer.echo(
            f"! {limited} turn(s) reached the --plug_value limit of {PLUG_VALUE_LIMIT} plugged predictions without "
            "a match and count as wrong (the official script tries them all; see their 'error' in --per-turn)",
            err=True,
        )


def _trajectory_predictions(path: Path, gold: list, sample: int) -> list[list[str]]:
    """The final SQL of the episodes of ``path`` in the gold file's session order; what is missing is reported."""
    from mtsql.rollout import read_episodes
    from mtsql.rollout.export import predictions_from_episodes

    found = predictions_from_episodes(read_episodes(path, one_run=True), gold, sample=sample)
    modes = ", ".join(found.history_modes) or "none"
    typer.echo(f"trajectories: {path} (sample {sample}, history: {modes})", err=True)
    if found.missing_sessions or found.unreached_turns:
        typer.echo(
            f"note: {found.missing_sessions} gold session(s) have no episode and {found.unreached_turns} turn(s) "
            "were never reached (context full): scored as empty predictions",
            err=True,
        )
    return found.sessions


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
