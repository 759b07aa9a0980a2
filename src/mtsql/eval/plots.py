"""Accuracy plots of an evaluation summary: by Spider hardness and by turn, execution and exact set match side by
side (matplotlib, imported here only: the core install does not need it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

from mtsql.sql.hardness import HARDNESS_LEVELS

_METRICS: Final = (("exec", "execution match (EX)"), ("exact", "exact set match (EM)"))
_LEVELS: Final = (*HARDNESS_LEVELS, "all")


def accuracy_groups(summary: dict[str, Any]) -> dict[str, tuple[str, list[str], dict[str, list[float]]]]:
    """What :func:`plot_accuracy` draws: per file stem, a title, the group labels (with their number of questions)
    and the percentages of each metric the evaluation computed. Groups without questions are left out."""
    sources = {
        "accuracy_by_hardness": ("by Spider hardness", [(name, summary["levels"][name]) for name in _LEVELS]),
        "accuracy_by_turn": ("by turn", list(summary["turns"].items())),
    }
    groups = {}
    for stem, (title, entries) in sources.items():
        entries = [(name, scores) for name, scores in entries if scores["count"]]
        labels = [f"{name}\n({scores['count']})" for name, scores in entries]
        values = {
            label: [100 * scores[key] for _, scores in entries]
            for key, label in _METRICS
            if entries and all(key in scores for _, scores in entries)
        }
        groups[stem] = (title, labels, values)
    return groups


def plot_accuracy(summary: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``accuracy_by_hardness.png`` and ``accuracy_by_turn.png`` of ``summary`` (the ``--json`` summary of
    ``mtsql evaluate``) into ``out_dir``; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, (title, labels, values) in accuracy_groups(summary).items():
        figure, axes = plt.subplots(figsize=(1.3 * len(labels) + 2.5, 3.8))
        width = 0.8 / max(len(values), 1)
        for i, (label, percentages) in enumerate(values.items()):
            positions = [j + (i - (len(values) - 1) / 2) * width for j in range(len(labels))]
            axes.bar_label(axes.bar(positions, percentages, width, label=label), fmt="%.1f", fontsize="small")
        axes.set_xticks(range(len(labels)), labels)
        axes.set_ylim(0, 110)
        axes.set_ylabel("% of questions")
        axes.set_title(f"accuracy {title} ({summary.get('mode', 'official')} evaluation)")
        if values:
            axes.legend(fontsize="small", loc="upper right")
        axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        figure.savefig(out / f"{stem}.png", dpi=110)
        plt.close(figure)
        written.append(out / f"{stem}.png")
    return written
