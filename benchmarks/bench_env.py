"""Throughput and overhead of the environment, replaying gold trajectories of a whole dev set.

Run from the repository root (data from ``MTSQL_DATA_DIR``, default ``../shared/data``)::

    .venv/bin/python benchmarks/bench_env.py [--data-dir ../shared/data] [--dataset sparc] [--passes 3]
        [--workers 2] [--history-mode predicted] [--profile 15] [--limit N] [--in-process]

SQL runs as the environment runs it by default, in a worker process killed at the time limit
(``DialogueEnv(isolate=True)``); ``--in-process`` measures ``isolate=False``, the difference is the worker's cost.

Every dialogue whose database exists (the others are skipped and counted) is run through
:class:`mtsql.env.DialogueEnv` by :class:`mtsql.env.GoldPolicy`: ``exec_sql`` the gold SQL, ``exec_verify``,
``memory_retrieve`` and ``memory_verify`` from the second question on, ``answer_sql``. It reports:

- ``exec_sql`` calls per second, single process and with ``--workers`` processes (started together behind a
  barrier; the aggregate is all calls over the slowest worker's wall time). Times include the policy, which
  only formats strings.
- The environment's own overhead as a share of the time spent executing SQL: ``(time in reset() and step()
  - time inside the executor's execute() calls) / time inside execute()``, from ``DialogueEnv.stats``. The
  executor's own ``elapsed_s`` sum is shown beside it. The same share restricted to the ``exec_sql`` steps is
  shown too: the gold trajectory has 2.6 steps per ``exec_sql`` call, and the verdict, ``memory_retrieve``
  and answer steps run no SQL, so they add overhead with nothing to amortise it against.
- The first pass (cold: schema texts with example values and SQL parses for the memory are built) and the
  best later pass (warm caches, as when a dialogue is sampled several times for GRPO) are reported separately.
- Where the environment's own time goes, per ``exec_sql`` call of the best warm pass: each kind of step (and
  ``reset``) with its count and its own time per step (SQLite excluded).
- The protocol floor: a lower bound of any environment's own time on the same replay, timing only the work
  the protocol cannot skip, on the texts and results of a recorded warm pass: scanning each message for its
  tags, ``json.loads`` of each tool call, the ``repr`` of the rows each reply shows, and one ``str.format`` per
  reply and question text (no records, no ``info``, no dispatch). It says how far under the SQLite time an
  environment in CPython can get on these small databases.
- With ``--profile N``: the top N functions of a warm single-process pass by own time (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import multiprocessing
import os
import pstats
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from mtsql.data import Dialogue, load_dialogues, resolve_database_path  # noqa: E402
from mtsql.env import DialogueEnv, GoldPolicy  # noqa: E402
from mtsql.env.memory import rows_text  # noqa: E402
from mtsql.sql.executor import ExecResult  # noqa: E402


@dataclass
class PassResult:
    wall_s: float
    env_s: float  # inside reset() and step()
    sqlite_s: float  # inside execute(), called by the environment
    executor_elapsed_s: float  # the executor's own elapsed_s of the exec_sql calls
    exec_step_s: float  # inside the step() calls that executed an exec_sql call
    exec_step_sqlite_s: float  # inside execute() during those steps
    exec_calls: int
    steps: int
    own_s: dict[str, float]  # the environment's own time (SQLite excluded) by what it did: reset or the action
    counts: dict[str, int]

    @property
    def rate(self) -> float:
        return self.exec_calls / self.wall_s

    @property
    def overhead(self) -> float:
        return (self.env_s - self.sqlite_s) / self.sqlite_s

    @property
    def exec_step_overhead(self) -> float:
        return (self.exec_step_s - self.exec_step_sqlite_s) / self.exec_step_sqlite_s


def replay(env: DialogueEnv, dialogues: list[Dialogue]) -> PassResult:
    """One pass over ``dialogues`` with the gold policy, timing reset/step and the executor inside them."""
    perf = time.perf_counter
    stats = env.stats
    sqlite_before = stats.sqlite_time_s
    env_s = elapsed = exec_step_s = exec_step_sqlite_s = 0.0
    calls = steps = 0
    own_s: dict[str, float] = {"reset": 0.0}
    counts: dict[str, int] = {"reset": len(dialogues)}
    start = perf()
    for dialogue in dialogues:
        policy = GoldPolicy(dialogue)
        t0 = perf()
        observation, info = env.reset(dialogue)
        reset_s = perf() - t0
        env_s += reset_s
        own_s["reset"] += reset_s
        done = False
        while not done:
            text = policy(observation, info)
            sqlite_t0 = stats.sqlite_time_s
            t0 = perf()
            observation, _, terminated, truncated, info = env.step(text)
            step_s = perf() - t0
            env_s += step_s
            done = terminated or truncated
            steps += 1
            kind = str(info["action"])
            own_s[kind] = own_s.get(kind, 0.0) + step_s - (stats.sqlite_time_s - sqlite_t0)
            counts[kind] = counts.get(kind, 0) + 1
            if info["action"] == "exec_sql":
                calls += 1
                elapsed += info["exec"]["elapsed_s"]
                exec_step_s += step_s
                exec_step_sqlite_s += stats.sqlite_time_s - sqlite_t0
    wall = perf() - start
    sqlite_s = stats.sqlite_time_s - sqlite_before
    return PassResult(wall, env_s, sqlite_s, elapsed, exec_step_s, exec_step_sqlite_s, calls, steps, own_s, counts)


_TAGS = re.compile(r"<(/?)(think|tool_call|answer_sql|exec_verify|memory_verify)>")


class _RecordingTemplates:
    """Stands in for the environment's template set, keeping each render's format string and fields."""

    def __init__(self, env: DialogueEnv) -> None:
        self._templates = env.templates
        self.version = env.templates.version
        self.renders: list[tuple[str, dict[str, object]]] = []

    def render(self, name: str, /, **fields: object) -> str:
        self.renders.append((self._templates.formats[name], fields))
        return self._templates.render(name, **fields)


def protocol_floor(env: DialogueEnv, dialogues: list[Dialogue], repeats: int = 5) -> tuple[float, int]:
    """(floor seconds, exec_sql calls) of one warm pass, the best of ``repeats`` timings with the garbage collector
    off; see the module docstring."""
    recorder = _RecordingTemplates(env)
    results: list[ExecResult] = []
    run = env._run

    def recording_run(sql: str) -> ExecResult:
        result = run(sql)
        results.append(result)
        return result

    env.templates, env._run = recorder, recording_run  # type: ignore[assignment,method-assign]
    texts: list[str] = []
    try:
        for dialogue in dialogues:
            policy = GoldPolicy(dialogue)
            observation, info = env.reset(dialogue)
            while True:
                texts.append(policy(observation, info))
                observation, _, terminated, truncated, info = env.step(texts[-1])
                if terminated or truncated:
                    break
    finally:
        env.templates, env._run = recorder._templates, run  # type: ignore[method-assign]
    calls = [text.split("<tool_call>", 1)[1].split("</tool_call>", 1)[0] for text in texts if "<tool_call>" in text]
    shown = [result.rows for result in results if result.ok and result.rows]
    limit = env.result_chars
    perf = time.perf_counter
    best = float("inf")
    gc.disable()
    for _ in range(repeats):
        start = perf()
        for text in texts:
            for _match in _TAGS.finditer(text):
                pass
        for call in calls:
            json.loads(call)
        for rows in shown:
            rows_text(rows, limit)
        for template, fields in recorder.renders:
            template.format_map(fields)
        best = min(best, perf() - start)
    gc.enable()
    return best, sum(1 for call in calls if '"exec_sql"' in call)


def _worker(args: tuple[str, str, bool, list[Dialogue], int, object]) -> list[PassResult]:
    db_dir, mode, isolate, dialogues, passes, barrier = args
    env = DialogueEnv(db_dir, history_mode=mode, isolate=isolate)  # type: ignore[arg-type]
    replay(env, dialogues)  # warm-up: caches and connections, before the barrier
    barrier.wait()  # type: ignore[attr-defined]
    return [replay(env, dialogues) for _ in range(passes)]


def describe(label: str, result: PassResult) -> str:
    return (
        f"{label}: {result.exec_calls} exec_sql calls in {result.wall_s:.3f} s = {result.rate:,.0f} calls/s; "
        f"env {result.env_s * 1e3:.1f} ms, inside execute() {result.sqlite_s * 1e3:.1f} ms "
        f"(executor elapsed_s {result.executor_elapsed_s * 1e3:.1f} ms), "
        f"overhead {100 * result.overhead:.1f}% of SQLite time "
        f"(exec_sql steps alone: {100 * result.exec_step_overhead:.1f}%); {result.steps} steps"
    )


def breakdown(result: PassResult) -> str:
    """The environment's own time per exec_sql call, by what it spends it on, beside SQLite's time per call."""
    calls = result.exec_calls
    parts = ", ".join(
        f"{kind} {1e6 * own / calls:.1f} us ({result.counts[kind]} x {1e6 * own / result.counts[kind]:.1f})"
        for kind, own in sorted(result.own_s.items(), key=lambda item: -item[1])
    )
    own = sum(result.own_s.values())
    return (
        f"  per exec_sql call: environment {1e6 * own / calls:.1f} us = {parts}; "
        f"inside execute() {1e6 * result.sqlite_s / calls:.1f} us"
    )


def main() -> None:
    default_data = Path(os.environ.get("MTSQL_DATA_DIR", REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--dataset", default="sparc", choices=("sparc", "cosql"))
    parser.add_argument("--split", default="dev")
    parser.add_argument("--passes", type=int, default=3, help="passes per run (the first is cold)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--history-mode", default="predicted", choices=("predicted", "oracle"))
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the top N functions")
    parser.add_argument("--limit", type=int, default=None, help="only the first N dialogues (a smoke run)")
    parser.add_argument(
        "--in-process", action="store_true", help="run SQL in-process (isolate=False) instead of in the worker"
    )
    args = parser.parse_args()

    db_dir = args.data_dir / "database"
    dialogues = load_dialogues(args.dataset, args.split, args.data_dir)[: args.limit]
    runnable = [d for d in dialogues if resolve_database_path(db_dir, d.db_id).is_file()]
    turns = sum(len(d.turns) for d in runnable)
    print(
        f"{args.dataset} {args.split}: {len(dialogues)} dialogues, {len(dialogues) - len(runnable)} skipped "
        f"(database missing); replaying {len(runnable)} dialogues, {turns} questions; "
        f"history mode {args.history_mode}; SQL {'in-process' if args.in_process else 'in a worker process'}; "
        f"{os.cpu_count()} CPUs"
    )

    env = DialogueEnv(db_dir, history_mode=args.history_mode, isolate=not args.in_process)
    results = [replay(env, runnable) for _ in range(max(args.passes, 2))]
    print(describe("single process, pass 1 (cold)", results[0]))
    best = min(results[1:], key=lambda r: r.wall_s)
    print(describe("single process, best warm pass", best))
    print(breakdown(best))
    floor_s, floor_calls = protocol_floor(env, runnable)
    floor = floor_s / floor_calls
    print(
        f"  protocol floor (tag scan, tool-call JSON, rows shown, reply formatting only): {1e6 * floor:.1f} us "
        f"per exec_sql call = {100 * floor * best.exec_calls / best.sqlite_s:.1f}% of the best warm pass's time "
        "inside execute()"
    )

    if args.workers > 1:
        shards = [runnable[i :: args.workers] for i in range(args.workers)]
        context = multiprocessing.get_context("fork")
        barrier = context.Manager().Barrier(args.workers)
        with context.Pool(args.workers) as pool:
            per_worker = pool.map(
                _worker,
                [
                    (str(db_dir), args.history_mode, not args.in_process, shard, args.passes, barrier)
                    for shard in shards
                ],
            )
        for index in range(args.passes):
            batch = [worker[index] for worker in per_worker]
            calls = sum(r.exec_calls for r in batch)
            wall = max(r.wall_s for r in batch)
            env_s, sqlite_s = sum(r.env_s for r in batch), sum(r.sqlite_s for r in batch)
            print(
                f"{args.workers} processes, warm pass {index + 1}: {calls} exec_sql calls in {wall:.3f} s = "
                f"{calls / wall:,.0f} calls/s; overhead {100 * (env_s - sqlite_s) / sqlite_s:.1f}% of SQLite time"
            )

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        replay(env, runnable)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())


if __name__ == "__main__":
    main()
