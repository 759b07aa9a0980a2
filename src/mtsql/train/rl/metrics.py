"""Run metrics: reading ``OUT/metrics.jsonl`` (one JSON line per log, written by the trainer's
``MetricsCallback``) and plotting the reward components and the response length over the steps (matplotlib, no
torch needed).

The trainer logs per step (``logging_steps``): ``reward`` (the weighted total), ``rewards/<component>/mean`` and
``/std`` for each reward component, ``completions/mean_length`` (model tokens only: tool replies are masked),
``episode/*`` (steps, masked tool-reply tokens, answered questions, malformed messages, episodes that filled the
context, ``rollout_s`` the rollout function's seconds), ``curriculum/stage``, TRL's ``kl``, ``entropy``,
``clip_ratio/*``, the loss and the learning rate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtsql.rewards.config import COMPONENTS


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The lines of a metrics file (a last line cut by a crash is left out)."""
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return lines


#: What :func:`plot_metrics` draws, one figure each: file stem, title, the logged keys.
PLOTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("reward", "total reward (weighted)", ("reward",)),
    *((f"reward_{name}", f"reward component: {name}", (f"rewards/{name}/mean",)) for name in COMPONENTS),
    ("response_length", "response length (model tokens)", ("completions/mean_length",)),
    ("curriculum", "curriculum stage", ("curriculum/stage",)),
    ("time", "seconds per step: all, and generating the episodes", ("step_time", "episode/rollout_s")),
)


def plot_metrics(path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Draw each of :data:`PLOTS` found in the metrics file ``path`` as ``out_dir/<stem>.png``, plus
    ``overview.png`` with all of them; returns the files written. Raises ``ValueError`` when the file has none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = read_metrics(path)
    found = [(stem, title, series) for stem, title, keys in PLOTS if (series := _series(lines, keys))]
    if not found:
        raise ValueError(f"{path}: no reward or length metrics to plot")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, title, series in found:
        figure, axes = plt.subplots(figsize=(6, 3.5))
        _draw(axes, title, series)
        figure.tight_layout()
        figure.savefig(out / f"{stem}.png", dpi=110)
        plt.close(figure)
        written.append(out / f"{stem}.png")
    columns = 3
    rows = -(-len(found) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(5 * columns, 3.2 * rows), squeeze=False)
    for axes, (_, title, series) in zip(grid.flat, found, strict=False):
        _draw(axes, title, series)
    for axes in list(grid.flat)[len(found) :]:
        axes.set_visible(False)
    figure.tight_layout()
    figure.savefig(out / "overview.png", dpi=100)
    plt.close(figure)
    written.append(out / "overview.png")
    return written


def _series(lines: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, tuple[list[int], list[float]]]:
    series = {}
    for key in keys:
        points = [(line["step"], float(line[key])) for line in lines if line.get(key) is not None]
        if points:
            series[key] = ([step for step, _ in points], [value for _, value in points])
    return series


def _draw(axes: Any, title: str, series: dict[str, tuple[list[int], list[float]]]) -> None:
    for key, (steps, values) in series.items():
        axes.plot(steps, values, marker="." if len(steps) < 50 else None, label=key)
    if len(series) > 1:
        axes.legend(fontsize="small")
    axes.set_title(title)
    axes.set_xlabel("step")
    axes.grid(alpha=0.3)
