"""What a self-taught run prints: the per-round table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mtsql.sql.hardness import HARDNESS_LEVELS

if TYPE_CHECKING:
    from rich.table import Table


def rounds_table(rounds: Sequence[dict[str, Any]]) -> Table:
    """The per-round table: pool, solved share, rows kept per difficulty, mean kept length, what is left."""
    from rich.table import Table

    table = Table(title="self-taught rounds")
    headers = ["round", "dialogues", "questions", "solved", "solved %", *HARDNESS_LEVELS, "all-solved", "kept"]
    for header in [*headers, "gold", "mean len", "left", "SFT"]:
        table.add_column(header, justify="left" if header == "SFT" else "right")
    for stats in rounds:
        kept = stats["kept_by_difficulty"]
        table.add_row(
            str(stats["round"]),
            f"{stats['dialogues']:,}",
            f"{stats['questions']:,}",
            f"{stats['solved']:,}",
            f"{stats['solved_pct']:.1f}",
            *(f"{kept.get(level, 0):,}" for level in HARDNESS_LEVELS),
            f"{kept['all_solved']:,}",
            f"{stats['kept']:,}",
            f"{stats['gold_rows']:,}",
            f"{stats['mean_length']:.1f}",
            f"{stats['questions_left']:,}",
            "trained" if stats["trained"] else "skipped (no rows)",
        )
    return table
