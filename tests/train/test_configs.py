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


def _fields(config_class: type) -> set[str]:
    import dataclasses

    return {field.name for field in dataclasses.fields(config_class)}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_training_sections_name_real_trainer_fields(path: Path) -> None:
    """Every key under a ``training:`` section is a field of TRL's config for that trainer (a renamed or removed
    transformers argument, such as ``warmup_ratio`` in transformers 5, fails here rather than at the run's start)."""
    trl = pytest.importorskip("trl")
    import yaml

    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    # (the mapping holding a training section, the trainer it configures): a run file's own, or a study's stages
    stages = [(values, trl.GRPOConfig if path.name.startswith("rl-") else trl.SFTConfig)]
    stages += [(values.get(name), trl.SFTConfig) for name in ("sft", "one_shot", "self_taught")]
    stages += [(values.get("grpo"), trl.GRPOConfig)]
    for stage, config_class in stages:
        if isinstance(stage, dict) and isinstance(stage.get("training"), dict):
            unknown = set(stage["training"]) - _fields(config_class)
            assert not unknown, f"{path.name}: {sorted(unknown)} are not {config_class.__name__} fields"


@pytest.mark.parametrize("kind", ["sft", "self-taught", "rl", "study"])
def test_every_setting_has_help_and_mtsql_config_lists_it(kind: str) -> None:
    """The field help is the reference of a run's file: each key (sections flattened) has some, and ``mtsql
    config`` prints every key with it."""
    import importlib

    from typer.testing import CliRunner

    from mtsql.cli.config import RUN_CONFIGS, RunKind
    from mtsql.cli.main import app
    from mtsql.train.config import describe

    module, name = RUN_CONFIGS[RunKind(kind)].split(":")
    rows = describe(getattr(importlib.import_module(module), name))
    assert rows and [key for key, _, meaning in rows if not meaning] == []
    result = CliRunner().invoke(app, ["config", kind], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    for key, _, meaning in rows:
        assert key in result.output and meaning in result.output


def test_mtsql_config_refuses_an_unknown_kind() -> None:
    from typer.testing import CliRunner

    from mtsql.cli.main import app

    result = CliRunner().invoke(app, ["config", "nope"])
    assert result.exit_code == 2
