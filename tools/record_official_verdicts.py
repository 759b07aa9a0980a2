"""Record the official evaluator's per-turn verdicts, for mtsql's differential tests.

The official SParC/CoSQL/Spider evaluation (taoyds/test-suite-sql-eval) is not part of mtsql and is never
committed. To re-record, check its ``evaluation.py``, ``exec_eval.py``, ``process_sql.py`` and ``parse.py`` out
into a folder outside this repository, make a virtualenv with ``nltk`` (plus its ``punkt_tab`` data), ``sqlparse``
and ``tqdm``, and run this script with that interpreter::

    NLTK_DATA=/path/to/nltk_data /path/to/venv/bin/python tools/record_official_verdicts.py \\
        --official /path/to/test-suite-sql-eval --data-dir ../shared/data --out tests/fixtures/official

For each dataset and seed, predictions are regenerated from the gold file with ``mtsql.eval.perturb`` (seed 0 is
gold-vs-gold), the official ``evaluate()`` runs on them unmodified, and the verdicts it computes for each turn are
captured by wrapping its hardness, exact-match and execution-match functions. The official script crashes on a
missing database or a gold query that fails; such sessions are left out of its input (they are listed in the
fixture's header) and mtsql's own handling of them is tested separately. The fixture stores verdicts and a hash of
each prediction, never the benchmark's SQL.

``--plug_value`` records the official ``--plug_value`` verdicts instead (fixtures ``*_seed{N}_plug_value.jsonl``).
That option tries ``len(gold values) ** len(prediction slots)`` plugged predictions when the prediction itself does
not match, without any limit, so a session with such a turn over ``--max-plugged`` of them is left out (listed in
the header) rather than run for hours; ``--kinds`` restricts the perturbations (e.g. to those that change values).
The header records both, and how many turns matched only thanks to the plugging. The ``*_plug_value`` fixtures
come from::

    ... tools/record_official_verdicts.py --official ... --datasets sparc cosql --seeds 7 --plug_value \\
        --kinds value_placeholder change_number change_string change_limit change_case other_query previous_turn \\
        negate_comparison swap_aggregate spaced_operators toggle_distinct extra_statement garbage truncate
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from mtsql.eval.perturb import perturb_sessions  # noqa: E402

GOLD_FILES = {"sparc": "sparc/dev_gold.txt", "cosql": "cosql/dev_gold.txt", "spider": "spider/dev_gold.sql"}


def read_sessions(path: Path) -> list[list[tuple[str, str]]]:
    """Sessions of ``(sql, db_id)``; a file without blank lines (Spider) gives one session a line, since its
    turns are independent and the fixture then identifies a Spider question by its line."""
    sessions, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            sql, db_id = line.strip().split("\t")
            current.append((sql, db_id))
        else:
            sessions.append(current)
            current = []
    if current:
        sessions.append(current)
    if len(sessions) == 1:
        return [[turn] for turn in sessions[0]]
    return sessions


def write_sessions(path: Path, sessions: list[list[str]], single: bool) -> None:
    sep = "\n" if single else "\n\n"
    path.write_text(sep.join("\n".join(s) for s in sessions) + "\n", encoding="utf-8")


def pred_hash(pred: str) -> str:
    return hashlib.sha1(pred.encode("utf-8")).hexdigest()[:12]


def too_many_plugged(official, gold_sessions, preds, keep: list[int], db_dir: Path, limit: int) -> dict[int, str]:
    """Sessions with a turn that the official ``--plug_value`` cannot finish: a prediction that does not match by
    itself and has more than ``limit`` plugged predictions, or no statement left to extract slots from."""
    ev = official.exec_eval
    out = {}
    for index in keep:
        for (gold, db_id), pred in zip(gold_sessions[index], preds[index], strict=True):
            pred = pred.replace(" value ", " 1 ")
            try:
                g, p = ev.remove_distinct(ev.postprocess(gold)), ev.remove_distinct(ev.postprocess(pred))
                count, _ = ev.get_all_preds_for_execution(g, p)
            except Exception as err:  # the official run would stop here
                out[index] = f"plug_value: the official script crashes ({type(err).__name__})"
                break
            db = str(db_dir / db_id / f"{db_id}.sqlite")
            if count > limit and not ev.eval_exec_match(db, pred, gold, False, False, False):
                out[index] = f"plug_value: {count} plugged predictions"
                break
    return out


def runnable(official, sessions, db_dir: Path) -> tuple[list[int], dict[int, str]]:
    """Indices of sessions the official script can evaluate, and why the others are left out."""
    keep, dropped = [], {}
    for index, session in enumerate(sessions):
        for sql, db_id in session:
            db = db_dir / db_id / f"{db_id}.sqlite"
            if not db.is_file():
                dropped[index] = f"database missing: {db_id}"
                break
            try:
                schema = official.process_sql.Schema(official.process_sql.get_schema(str(db)))
                official.process_sql.get_sql(schema, sql)
            except Exception as err:
                dropped[index] = f"gold does not parse: {type(err).__name__}"
                break
            g = official.exec_eval.remove_distinct(official.exec_eval.postprocess(sql))
            flag, _ = asyncio.run(official.exec_eval.exec_on_db(str(db), g))
            if flag == "exception":
                dropped[index] = "gold fails to execute"
                break
        else:
            keep.append(index)
    return keep, dropped


class Official:
    """The official modules, imported from their checkout, with verdict recorders wrapped around them."""

    def __init__(self, folder: Path) -> None:
        sys.path.insert(0, str(folder))
        self.process_sql = importlib.import_module("process_sql")
        self.exec_eval = importlib.import_module("exec_eval")
        self.evaluation = importlib.import_module("evaluation")
        self.calls: list[tuple[str, object]] = []
        self.plugged_matches = 0  # turns that match with --plug_value only
        ev = self.evaluation
        hardness, exact, exec_match = (
            ev.Evaluator.eval_hardness,
            ev.Evaluator.eval_exact_match,
            ev.eval_exec_match,
        )

        def rec_hardness(this, sql):
            out = hardness(this, sql)
            self.calls.append(("hardness", out))
            return out

        def rec_exact(this, pred, label):
            out = exact(this, pred, label)
            self.calls.append(("exact", int(out)))
            return out

        def rec_exec(**kwargs):
            out = exec_match(**kwargs)
            self.calls.append(("exec", int(out)))
            if kwargs["plug_value"] and out:
                self.plugged_matches += not exec_match(**{**kwargs, "plug_value": False})
            return out

        ev.Evaluator.eval_hardness = rec_hardness
        ev.Evaluator.eval_exact_match = rec_exact
        ev.eval_exec_match = rec_exec

    def verdicts(
        self, gold: Path, pred: Path, db_dir: Path, tables: Path, plug_value: bool = False
    ) -> tuple[list[dict], str]:
        self.calls = []
        self.plugged_matches = 0
        kmaps = self.evaluation.build_foreign_key_map_from_json(str(tables))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.evaluation.evaluate(str(gold), str(pred), str(db_dir), "all", kmaps, plug_value, False, False)
        turns: list[dict] = []
        for kind, value in self.calls:
            if kind == "hardness":
                turns.append({"hardness": value})
            else:
                turns[-1][kind] = value
        return turns, out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="folder with the official evaluation scripts")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "official")
    parser.add_argument("--datasets", nargs="+", default=["sparc", "cosql", "spider"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6])
    parser.add_argument("--db-dir", type=Path, help="databases the official script runs on (default DATA_DIR/database)")
    parser.add_argument("--plug_value", action="store_true", help="record the official --plug_value verdicts")
    parser.add_argument("--max-plugged", type=int, default=5000, help="with --plug_value: longest enumeration run")
    parser.add_argument("--kinds", nargs="+", help="perturbations to draw from (default: all of mtsql.eval.perturb)")
    args = parser.parse_args()
    official = Official(args.official.resolve())
    db_dir = args.db_dir or args.data_dir / "database"
    args.out.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        gold_sessions = read_sessions(args.data_dir / GOLD_FILES[dataset])
        runnable_sessions, gold_dropped = runnable(official, gold_sessions, db_dir)
        tables = args.data_dir / dataset / "tables.json"
        for seed in args.seeds:
            if seed == 0:
                preds = [[sql for sql, _ in s] for s in gold_sessions]
            else:
                preds, _ = perturb_sessions(gold_sessions, seed, args.kinds)
            dropped = dict(gold_dropped)
            if args.plug_value:
                dropped |= too_many_plugged(official, gold_sessions, preds, runnable_sessions, db_dir, args.max_plugged)
            keep = [i for i in runnable_sessions if i not in dropped]
            with tempfile.TemporaryDirectory() as tmp:
                gold_file, pred_file = Path(tmp, "gold.txt"), Path(tmp, "pred.txt")
                single = dataset == "spider"
                write_sessions(gold_file, [[f"{sql}\t{db}" for sql, db in gold_sessions[i]] for i in keep], single)
                write_sessions(pred_file, [preds[i] for i in keep], single)
                start = time.perf_counter()
                turns, _ = official.verdicts(gold_file, pred_file, db_dir, tables, args.plug_value)
                elapsed = time.perf_counter() - start
            records = []
            it = iter(turns)
            for i in keep:
                for t, pred in enumerate(preds[i]):
                    v = next(it)
                    records.append({"session": i, "turn": t, "pred_sha1": pred_hash(pred), **v})
            assert next(it, None) is None, "official verdict count differs from the number of turns"
            options = "--plug_value" if args.plug_value else "defaults"
            header = {
                "dataset": dataset,
                "seed": seed,
                "official": f"taoyds/test-suite-sql-eval evaluation.py (etype all, {options})",
                "sessions_left_out": {str(k): v for k, v in sorted(dropped.items())},
                "official_seconds": round(elapsed, 2),
            }
            if args.plug_value:
                header["plug_value"] = True
                header["matched_only_by_plugging"] = official.plugged_matches
            if args.kinds:
                header["kinds"] = args.kinds
            suffix = "_plug_value" if args.plug_value else ""
            path = args.out / f"{dataset}_dev_seed{seed}{suffix}.jsonl"
            with path.open("w", encoding="utf-8") as f:
                f.write(json.dumps(header) + "\n")
                for r in records:
                    f.write(json.dumps(r, separators=(",", ":")) + "\n")
            print(f"{path}: {len(records)} turns, {len(dropped)} sessions left out, official {elapsed:.1f}s")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
