"""The example run files under configs/ parse into their run configurations."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtsql.train.selftaught import SelfTaughtConfig
from mtsql.train.sft import SFTRunConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("sft-*.yaml")), ids=lambda p: p.name)
def test_sft_configs_parse(path: Path) -> None:
    config = SFTRunConfig.from_yaml(path)
    assert config.data and Path(config.output_dir).is_absolute()
    assert config.training.get("learning_rate", 0) > 0


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("self-taught-*.yaml")), ids=lambda p: p.name)
def test_self_taught_configs_parse(path: Path) -> None:
    config = SelfTaughtConfig.from_yaml(path)
    assert config.rounds >= 1 and config.samples >= 1 and Path(config.output_dir).is_absolute()
