"""Print an evaluation summary: rich tables, or the official script's plain-text layout for side-by-side diffs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from mtsql.eval.exact_match import PARTIAL_TYPES
from mtsql.eval.summary import TURN_BUCKETS, Summary
from mtsql.sql.hardness import HARDNESS_LEVELS

if TYPE_CHECKING:  # rich is imported only when rich output is asked for
    from rich.console import Console
    from rich.table import Table


def _columns(summary: Summary) -> list[str]:
    levels = [*HARDNESS_LEVELS, "all"]
    return [*levels, "joint_all"] if summary.include_turn_acc else levels


def _rows(summary: Summary) -> list[tuple[str, str, list[float | int]]]:
    """(section, row name, values) in the official order."""
    cols = _columns(summary)
    lv = summary.levels
    rows: list[tuple[str, str, list[float | int]]] = [("", "count", [lv[c]["count"] for c in cols])]
    if "exec" in lv["all"]:
        rows.append(("EXECUTION ACCURACY", "execution", [lv[c]["exec"] for c in cols]))
    if "exact" in lv["all"]:
        rows.append(("EXACT MATCHING ACCURACY", "exact match", [lv[c]["exact"] for c in cols]))
        for section, key in (
            ("PARTIAL MATCHING ACCURACY", "acc"),
            ("PARTIAL MATCHING RECALL", "rec"),
            ("PARTIAL MATCHING F1", "f1"),
        ):
            rows.extend((section, t, [lv[c]["partial"][t][key] for c in cols]) for t in PARTIAL_TYPES)
    return rows


def _turn_rows(summary: Summary) -> list[tuple[str, str, list[float | int]]]:
    tb = summary.turns
    rows: list[tuple[str, str, list[float | int]]] = [("", "count", [tb[t]["count"] for t in TURN_BUCKETS])]
    if "exec" in tb["turn 1"]:
        rows.append(("TURN EXECUTION ACCURACY", "execution", [tb[t]["exec"] for t in TURN_BUCKETS]))
    if "exact" in tb["turn 1"]:
        rows.append(("TURN EXACT MATCHING ACCURACY", "exact match", [tb[t]["exact"] for t in TURN_BUCKETS]))
    return rows


def print_plain(summary: Summary) -> None:
    """The official ``print_scores`` layout, so outputs can be diffed against the official script's."""

    def line(name: str, values: list) -> None:
        if name == "":
            cells = [f"{v:20}" for v in values]
        elif name == "count":
            cells = [f"{v:<20d}" for v in values]
        else:
            cells = [f"{v:<20.3f}" for v in values]
        print(f"{name:20} " + " ".join(cells))

    headers = {
        "EXECUTION ACCURACY": "=====================   EXECUTION ACCURACY     =====================",
        "EXACT MATCHING ACCURACY": "\n====================== EXACT MATCHING ACCURACY =====================",
        "PARTIAL MATCHING ACCURACY": "\n---------------------PARTIAL MATCHING ACCURACY----------------------",
        "PARTIAL MATCHING RECALL": "---------------------- PARTIAL MATCHING RECALL ----------------------",
        "PARTIAL MATCHING F1": "---------------------- PARTIAL MATCHING F1 --------------------------",
        "TURN EXECUTION ACCURACY": "=====================   TURN EXECUTION ACCURACY     =====================",
        "TURN EXACT MATCHING ACCURACY": "\n====================== TURN EXACT MATCHING ACCURACY =====================",
    }

    def block(columns: list[str], rows: list[tuple[str, str, list]]) -> None:
        line("", columns)
        section = ""
        for sec, name, values in rows:
            if sec and sec != section:
                print(headers[sec])
                section = sec
            line(name, values)

    block(_columns(summary), _rows(summary))
    if summary.include_turn_acc:
        print()
        print()
        block(list(TURN_BUCKETS), _turn_rows(summary))


def _table(title: str, columns: list[str], rows: list[tuple[str, str, list]]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("")
    for c in columns:
        table.add_column(c, justify="right")
    section = ""
    for sec, name, values in rows:
        if sec and sec != section:
            table.add_section()
            table.add_row(f"[bold]{sec.lower()}[/bold]", *[""] * len(columns))
            section = sec
        table.add_row(name, *(str(v) if name == "count" else f"{v:.3f}" for v in values))
    return table


def print_rich(summary: Summary, console: Console | None = None) -> None:
    from rich.console import Console

    console = console or Console()
    mode = "strict" if summary.strict else "official-compatible"
    console.print(_table(f"Scores by hardness ({mode} mode)", _columns(summary), _rows(summary)))
    if summary.include_turn_acc:
        console.print(_table("Scores by turn", list(TURN_BUCKETS), _turn_rows(summary)))
    for line in notes(summary):
        console.print(line, style="yellow" if line.startswith(("!", " ")) else None, markup=False, highlight=False)


def notes(summary: Summary) -> list[str]:
    """The headline scores, then what the tables do not show: skipped turns, failing golds, missing predictions."""
    all_, joint = summary.levels["all"], summary.levels["joint_all"]
    parts = []
    for key, label in (("exec", "EX"), ("exact", "EM")):
        if key in all_:
            text = f"{label} question match {all_[key]:.3f}"
            if summary.include_turn_acc:
                text += f", interaction match {joint[key]:.3f}"
            parts.append(text)
    lines = ["; ".join(parts)]
    if summary.skipped:
        reasons: dict[str, int] = {}
        for s in summary.skipped:
            reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
        lines.append(f"! {len(summary.skipped)} turn(s) skipped, not counted:")
        lines += [f"  {n} x {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    if summary.gold_errors:
        lines.append(
            f"! {len(summary.gold_errors)} gold quer(y/ies) fail on their database "
            "(the official script stops there; here they count as execution mismatches):"
        )
        lines += [
            f"  session {g['session']} turn {g['turn']} ({g['db_id']}): {g['error']}" for g in summary.gold_errors
        ]
    if summary.extra_predictions:
        lines.append(
            f"! {summary.extra_predictions} prediction(s) beyond the end of their gold session were not judged "
            "(sessions out of step? --strict refuses them)"
        )
    if summary.without_tables:
        listed = ", ".join(f"{db} ({n})" for db, n in summary.without_tables.items())
        lines.append(
            f"! {sum(summary.without_tables.values())} turn(s) on database(s) absent from tables.json: {listed}; "
            "exact match judged them without foreign keys (as the official script does, silently; --strict refuses)"
        )
    if summary.unpredicted_turns:
        lines.append(
            f"! {summary.unpredicted_turns} gold turn(s) have no prediction"
            + (" and count as wrong." if summary.strict else " and are not counted, as in the official script.")
        )
    return lines


def print_notes(summary: Summary) -> None:
    """The notes on standard error, so that standard output stays exactly the official layout."""
    print("\n".join(notes(summary)), file=sys.stderr)
