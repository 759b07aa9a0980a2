"""The per-call credits of the process reward, case by case."""

from __future__ import annotations

import pytest

from mtsql.rewards import RewardConfig, coherence_credit, exec_outcome, exec_verify_credit, is_coherent

DEFAULT = RewardConfig()


def test_exec_outcome() -> None:
    assert exec_outcome({"ok": False, "n_rows": 0}) == "error"
    assert exec_outcome({"ok": True, "n_rows": 0}) == "empty"
    assert exec_outcome({"ok": True, "n_rows": 3}) == "rows"


@pytest.mark.parametrize(
    ("outcome", "verdict", "gold_empty", "credit"),
    [
        ("error", "no_pass", False, 1.0),
        ("error", "pass", False, 0.0),
        ("rows", "pass", False, 1.0),
        ("rows", "no_pass", False, 0.0),
        ("empty", "no_pass", False, 0.2),
        ("empty", "pass", False, 0.0),
        ("empty", "pass", True, 1.0),  # the gold returns no rows either: the empty result is the answer
        ("empty", "no_pass", True, 0.0),
        ("rows", "pass", True, 1.0),
        ("error", None, False, 0.0),
        ("rows", None, False, 0.0),
        ("empty", None, True, 0.0),
    ],
)
def test_exec_verify_credit(outcome: str, verdict: str | None, gold_empty: bool, credit: float) -> None:
    assert exec_verify_credit(outcome, verdict, gold_empty=gold_empty, config=DEFAULT) == credit  # type: ignore[arg-type]


def test_exec_verify_credit_settings() -> None:
    config = RewardConfig(empty_no_pass_credit=0.25, empty_gold_aware=False)
    assert exec_verify_credit("empty", "no_pass", gold_empty=True, config=config) == 0.25
    assert exec_verify_credit("empty", "pass", gold_empty=True, config=config) == 0.0


def test_coherence() -> None:
    assert is_coherent(1, 0.2, DEFAULT)  # executes like the gold
    assert is_coherent(0, 1.0, DEFAULT)  # same clauses, other values
    assert not is_coherent(0, 0.99, DEFAULT)
    assert not is_coherent(None, 0.5, DEFAULT)
    assert is_coherent(0, 0.8, RewardConfig(coherence_f1_threshold=0.8))
    assert not is_coherent(1, 0.5, RewardConfig(coherence_exec_match=False))
    assert coherence_credit(True, "pass") == coherence_credit(False, "no_pass") == 1.0
    assert coherence_credit(True, "no_pass") == coherence_credit(False, "pass") == 0.0
    assert coherence_credit(True, None) == 0.0
