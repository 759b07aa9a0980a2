"""Side-by-side wall time of ``mtsql evaluate`` and the official evaluation script on the same files.

The official SParC/CoSQL/Spider evaluation (taoyds/test-suite-sql-eval) is not shipped with mtsql: check it out
outside this repository and give its folder and a Python that can run it (nltk with punkt_tab, sqlparse, tqdm)::

    python benchmarks/bench_evaluate.py --official /tmp/official \\
        --official-python /tmp/official/venv/bin/python --nltk-data /tmp/official/nltk_data

Both run as whole commands (interpreter start-up included) with ``--etype all`` on the same gold and prediction
files: gold-vs-gold (seed 0) and perturbed predictions (seeds >= 1, see ``mtsql.eval.perturb``). Sessions the
official script cannot run (missing database, gold that fails) are left out of both inputs, since it crashes on
them. The best of ``--repeat`` runs is reported for each, and the ratio official / mtsql.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from mtsql.data.loaders import read_gold_file  # noqa: E402
from mtsql.eval.perturb import perturb_sessions  # noqa: E402

GOLD_FILES = {"sparc": "sparc/dev_gold.txt", "cosql": "cosql/dev_gold.txt"}


def wall(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def runnable_sessions(gold: Path, db_dir: Path, tables: Path, tmp: Path) -> list[int]:
    """Sessions whose every gold query has a database and executes (mtsql's own gold-vs-gold verdicts)."""
    per_turn = tmp / "gold_check.jsonl"
    subprocess.run(
        [sys.executable, "-m", "mtsql", "evaluate", "--gold", str(gold), "--pred", str(gold), "--db", str(db_dir),
         "--table", str(tables), "--etype", "exec", "--per-turn", str(per_turn)],
        check=True, capture_output=True,
    )  # fmt: skip
    bad = set()
    for line in per_turn.read_text().splitlines():
        r = json.loads(line)
        if r["skipped"] or r["exec_status"] == "gold_error":
            bad.add(r["session"])
    sessions = read_gold_file(gold)
    bad |= {i for i, s in enumerate(sessions) if any(not (db_dir / t.db_id / f"{t.db_id}.sqlite").is_file() for t in s)}
    return [i for i in range(len(sessions)) if i not in bad]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="folder with the official evaluation.py")
    parser.add_argument("--official-python", default=sys.executable)
    parser.add_argument("--nltk-data", type=Path, help="NLTK data folder with tokenizers/punkt_tab")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("MTSQL_DATA_DIR", REPO.parent / "shared" / "data")),
    )
    parser.add_argument("--dataset", choices=sorted(GOLD_FILES), default="sparc")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    db_dir, tables = args.data_dir / "database", args.data_dir / args.dataset / "tables.json"
    env = dict(os.environ)
    if args.nltk_data:
        env["NLTK_DATA"] = str(args.nltk_data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        gold_all = read_gold_file(args.data_dir / GOLD_FILES[args.dataset])
        keep = runnable_sessions(args.data_dir / GOLD_FILES[args.dataset], db_dir, tables, tmp)
        gold_sessions = [[(t.query, t.db_id) for t in gold_all[i]] for i in keep]
        gold_file = tmp / "gold.txt"
        gold_file.write_text("\n\n".join("\n".join(f"{s}\t{d}" for s, d in sess) for sess in gold_sessions) + "\n")
        for seed in args.seeds:
            preds = (
                [[s for s, _ in sess] for sess in gold_sessions]
                if seed == 0
                else perturb_sessions(gold_sessions, seed)[0]
            )
            pred_file = tmp / f"pred{seed}.txt"
            pred_file.write_text("\n\n".join("\n".join(p) for p in preds) + "\n")
            common = ["--gold", str(gold_file), "--pred", str(pred_file), "--db", str(db_dir), "--table", str(tables),
                      "--etype", "all"]  # fmt: skip
            official = min(
                wall(
                    [args.official_python, str(args.official / "evaluation.py"), *common],
                    env=env,
                    cwd=args.official,
                )
                for _ in range(args.repeat)
            )
            ours = min(wall([sys.executable, "-m", "mtsql", "evaluate", *common]) for _ in range(args.repeat))
            rows.append((seed, sum(map(len, preds)), official, ours))
    print(f"{args.dataset} dev, {len(keep)} sessions, etype all, best of {args.repeat}, {os.cpu_count()} cores")
    print(f"{'predictions':<24}{'turns':>8}{'official s':>12}{'mtsql s':>10}{'ratio':>8}")
    for seed, turns, official, ours in rows:
        name = "gold (seed 0)" if seed == 0 else f"perturbed (seed {seed})"
        print(f"{name:<24}{turns:>8}{official:>12.2f}{ours:>10.2f}{official / ours:>8.1f}x")


if __name__ == "__main__":
    main()
