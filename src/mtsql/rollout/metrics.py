"""What a set of episode records says about the agent: format validity, answers, EX, EM, reward.

Every rate is over all the questions of the episodes' dialogues (``n_turns``), so a question never reached
(the context ran out) counts as wrong, as it does for ``mtsql evaluate``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mtsql.rollout.trajectory import Trajectory


def episode_metrics(records: Sequence[Trajectory]) -> dict[str, float]:
    """``format_valid`` (share of model messages the environment could parse), ``answered`` (questions ended
    with ``<answer_sql>``), ``ex`` and ``em`` (official verdicts of the final SQL), ``reward`` (mean total),
    ``model_tokens`` (mean per episode); ``episodes`` and ``questions`` are the counts."""
    steps = [step for record in records for step in record.steps]
    questions = sum(record.n_turns for record in records)
    scored = [q for record in records if record.rewards for q in record.rewards["questions"]]
    answered = sum(turn.answered for record in records for turn in record.turns)
    return {
        "episodes": len(records),
        "questions": questions,
        "format_valid": _share(sum(step.error_kind is None for step in steps), len(steps)),
        "answered": _share(answered, questions),
        "ex": _share(sum(q["exec"] for q in scored), questions),
        "em": _share(sum(q["exact"] for q in scored), questions),
        "reward": _share(sum(q["total"] for q in scored), questions),
        "model_tokens": _share(sum(r.stats.model_tokens for r in records), len(records)),
    }


def _share(part: float, whole: int) -> float:
    return part / whole if whole else 0.0
