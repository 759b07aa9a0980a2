"""Aggregate per-turn verdicts into the official score tables, with the official arithmetic.

Question match is the ``all`` column (every turn counts once); interaction match is ``joint_all`` (a session counts
only if every one of its turns is right). The official partial scores average a component's accuracy over the
turns whose prediction has that component and its recall over the turns whose gold has it, and report F1 = 1 when
both averages are 0; this module reproduces that, including for ``joint_all``, whose partial columns the official
never fills (accuracy and recall 0, so F1 1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from mtsql.eval.evaluator import TurnResult
from mtsql.eval.exact_match import PARTIAL_TYPES
from mtsql.eval.turn import EvalType
from mtsql.sql.hardness import HARDNESS_LEVELS

LEVELS = (*HARDNESS_LEVELS, "all", "joint_all")
TURN_BUCKETS = ("turn 1", "turn 2", "turn 3", "turn 4", "turn > 4")


def turn_bucket(turn: int) -> str:
    return f"turn {turn + 1}" if turn < 4 else "turn > 4"


@dataclass
class Summary:
    etype: EvalType
    strict: bool
    levels: dict[str, dict] = field(default_factory=dict)
    turns: dict[str, dict] = field(default_factory=dict)
    include_turn_acc: bool = True
    skipped: list[dict] = field(default_factory=list)
    gold_errors: list[dict] = field(default_factory=list)
    pred_parse_failures: int = 0
    exec_status: dict[str, int] = field(default_factory=dict)
    unpredicted_turns: int = 0
    """Gold turns beyond the end of their prediction session (the official script silently ignores them)."""
    extra_predictions: int = 0
    """Predictions beyond the end of their gold session (never judged; the official script ignores them too)."""
    without_tables: dict[str, int] = field(default_factory=dict)
    """Turns per database absent from tables.json, judged for exact match without foreign keys."""

    def to_json(self) -> dict:
        return {
            "mode": "strict" if self.strict else "official",
            "etype": self.etype,
            "question_match": {k: self.levels["all"].get(k) for k in ("exec", "exact")},
            "interaction_match": {k: self.levels["joint_all"].get(k) for k in ("exec", "exact")},
            "levels": self.levels,
            "turns": self.turns,
            "skipped_turns": self.skipped,
            "gold_errors": self.gold_errors,
            "pred_parse_failures": self.pred_parse_failures,
            "exec_status": self.exec_status,
            "unpredicted_turns": self.unpredicted_turns,
            "extra_predictions": self.extra_predictions,
            "databases_without_tables": self.without_tables,
        }


def _empty_level() -> dict:
    return {
        "count": 0,
        "exec": 0.0,
        "exact": 0.0,
        "partial": {t: {"acc": 0.0, "rec": 0.0, "f1": 0.0, "acc_count": 0, "rec_count": 0} for t in PARTIAL_TYPES},
    }


def summarize(
    results: Sequence[Sequence[TurnResult]],
    etype: EvalType,
    *,
    strict: bool = False,
    gold_turns_per_session: Sequence[int] | None = None,
    without_tables: dict[str, int] | None = None,
    extra_predictions: int = 0,
) -> Summary:
    summary = Summary(etype=etype, strict=strict, include_turn_acc=len(results) > 1)
    summary.without_tables = dict(without_tables or {})
    summary.extra_predictions = extra_predictions
    levels = {level: _empty_level() for level in LEVELS}
    turns = {bucket: {"count": 0, "exec": 0.0, "exact": 0.0} for bucket in TURN_BUCKETS}
    statuses: Counter[str] = Counter()
    do_exec, do_match = etype in ("all", "exec"), etype in ("all", "match")

    for session in results:
        if any(r.skipped for r in session):
            summary.skipped.extend(
                {"session": r.session, "turn": r.turn, "db_id": r.db_id, "reason": r.error}
                for r in session
                if r.skipped
            )
            if all(r.skipped for r in session):
                continue  # nothing of this interaction could be judged; it does not enter joint_all
        levels["joint_all"]["count"] += 1
        session_exec: list[int] = []
        session_exact: list[int] = []
        for r in session:
            if r.skipped:
                session_exec.append(0)
                session_exact.append(0)
                continue
            bucket, level = turn_bucket(r.turn), r.hardness
            assert level is not None
            for key in (bucket,):
                turns[key]["count"] += 1
            levels[level]["count"] += 1
            levels["all"]["count"] += 1
            summary.pred_parse_failures += r.pred_parsed is False
            if do_exec:
                assert r.exec is not None
                statuses[r.exec_status or "unknown"] += 1
                if r.exec_status == "gold_error":
                    summary.gold_errors.append(
                        {
                            "session": r.session,
                            "turn": r.turn,
                            "db_id": r.db_id,
                            "gold": r.gold,
                            "error": r.error,
                        }
                    )
                turns[bucket]["exec"] += r.exec
                levels[level]["exec"] += r.exec
                levels["all"]["exec"] += r.exec
                session_exec.append(r.exec)
            if do_match:
                assert r.exact is not None and r.partial is not None
                turns[bucket]["exact"] += r.exact
                levels[level]["exact"] += r.exact
                levels["all"]["exact"] += r.exact
                session_exact.append(r.exact)
                for name in PARTIAL_TYPES:
                    part = r.partial[name]
                    for key in (level, "all"):
                        acc = levels[key]["partial"][name]
                        if part["pred_total"] > 0:
                            acc["acc"] += part["acc"]
                            acc["acc_count"] += 1
                        if part["label_total"] > 0:
                            acc["rec"] += part["rec"]
                            acc["rec_count"] += 1
                        acc["f1"] += part["f1"]
        levels["joint_all"]["exec"] += all(v == 1 for v in session_exec)
        levels["joint_all"]["exact"] += all(v == 1 for v in session_exact)

    for bucket in turns.values():
        if bucket["count"]:
            bucket["exec"] /= bucket["count"]
            bucket["exact"] /= bucket["count"]
    for level in levels.values():
        if not level["count"]:
            continue
        level["exec"] /= level["count"]
        level["exact"] /= level["count"]
        for part in level["partial"].values():
            part["acc"] = part["acc"] / part["acc_count"] if part["acc_count"] else 0
            part["rec"] = part["rec"] / part["rec_count"] if part["rec_count"] else 0
            total = part["acc"] + part["rec"]
            part["f1"] = 1 if total == 0 else 2.0 * part["acc"] * part["rec"] / total
    for level in levels.values():
        if not do_exec:
            level.pop("exec")
        if not do_match:
            level.pop("exact")
            level.pop("partial")
    for bucket in turns.values():
        if not do_exec:
            bucket.pop("exec")
        if not do_match:
            bucket.pop("exact")
    summary.levels, summary.turns = levels, turns
    summary.exec_status = dict(statuses)
    if gold_turns_per_session is not None:
        summary.unpredicted_turns = sum(
            max(0, n - len(s)) for n, s in zip(gold_turns_per_session, results, strict=True)
        )
    return summary
