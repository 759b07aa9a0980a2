"""RewardConfig: the original defaults, weighted totals, loading from mappings and YAML, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtsql.rewards import COMPONENTS, RewardConfig


def test_defaults_are_the_original_weights_and_a_format_term() -> None:
    config = RewardConfig()
    weights = {name: config.weight(name) for name in COMPONENTS}
    assert weights == {
        "exec": 1.0, "exact": 1.0, "exec_verify": 0.1, "coherence": 0.1, "clause_f1": 0.8, "format": 0.1
    }  # fmt: skip
    assert config.empty_no_pass_credit == 0.2 and config.coherence_f1_threshold == 1.0
    assert config.empty_gold_weight == 1.0  # empty-gold questions paid as the official metric counts them
    assert (config.timeout, config.keep_distinct, config.strict) == (60.0, False, False)  # mtsql evaluate's
    assert hash(config) == hash(RewardConfig())  # frozen: usable as a cache key


def test_total_is_the_weighted_sum() -> None:
    values = {"exec": 1.0, "exact": 0.0, "exec_verify": 0.5, "coherence": 1.0, "clause_f1": 0.25, "format": 1.0}
    assert RewardConfig().total(values) == pytest.approx(1.0 + 0.05 + 0.1 + 0.2 + 0.1)
    config = RewardConfig(exact_weight=2.0, format_weight=-0.5)
    assert config.total(values) == pytest.approx(1.0 + 0.05 + 0.1 + 0.2 - 0.5)
    with pytest.raises(KeyError, match="unknown reward component"):
        config.weight("speed")


def test_from_dict_round_trips_and_rejects_typos() -> None:
    config = RewardConfig.from_dict({"clause_f1_weight": 0.5, "empty_gold_aware": False})
    assert config.clause_f1_weight == 0.5 and not config.empty_gold_aware
    assert RewardConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown reward setting.*clause_f1_wieght"):
        RewardConfig.from_dict({"clause_f1_wieght": 0.5})


def test_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("model: tiny\nrewards:\n  coherence_weight: 0.3\n  timeout: 5\n", encoding="utf-8")
    assert RewardConfig.from_yaml(path) == RewardConfig(coherence_weight=0.3, timeout=5)
    bare = tmp_path / "rewards.yaml"
    bare.write_text("exact_weight: 0\n", encoding="utf-8")
    assert RewardConfig.from_yaml(bare, section=None) == RewardConfig(exact_weight=0)
    assert RewardConfig.from_yaml(bare) == RewardConfig()  # no "rewards" section: the defaults
    bad = tmp_path / "bad.yaml"
    bad.write_text("rewards: [1, 2]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must be a mapping"):
        RewardConfig.from_yaml(bad)


@pytest.mark.parametrize("values", [{"empty_no_pass_credit": 1.5}, {"coherence_f1_threshold": -0.1}, {"timeout": 0}])
def test_invalid_settings(values: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RewardConfig(**values)
