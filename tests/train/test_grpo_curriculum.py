"""The curriculum: stages by hardness and turn depth, advanced by schedule or reward, earlier stages mixed in,
its sampler's layout (TRL's RepeatSampler's), and its state across a resume."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from mtsql.train.rl.curriculum import Curriculum, CurriculumSampler, CurriculumSettings, StageSettings


def rows() -> list[dict[str, Any]]:
    """Twelve prompts: easy and medium first questions, easy second questions, hard and extra ones."""
    levels = ["easy"] * 3 + ["medium"] * 3 + ["easy"] * 2 + ["hard"] * 2 + ["extra"] * 2
    depths = [1, 1, 1, 1, 1, 1, 2, 3, 1, 2, 1, 2]
    return [{"hardness": level, "depth": depth} for level, depth in zip(levels, depths, strict=True)]


def settings(**options: Any) -> CurriculumSettings:
    return CurriculumSettings(
        [
            StageSettings("easy first", ["easy"], max_depth=1, steps=2),
            StageSettings("easy or medium", ["easy", "medium"], steps=3, reward_threshold=1.5, min_steps=1),
            StageSettings("hard", ["hard", "extra"]),
        ],
        **options,
    )


def test_stages_select_by_hardness_and_depth_and_empty_ones_are_dropped() -> None:
    curriculum = Curriculum(settings(), rows())
    assert curriculum.pools == [[0, 1, 2], [0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11]]
    extra = CurriculumSettings([StageSettings("deep extra", ["extra"], min_depth=3), *settings().stages])
    curriculum = Curriculum(extra, rows())
    assert curriculum.dropped == ["deep extra"] and curriculum.current.name == "easy first"
    with pytest.raises(ValueError, match="no curriculum stage"):
        Curriculum(CurriculumSettings([StageSettings("none", ["extra"], min_depth=5)]), rows())
    by_hardness = Curriculum(CurriculumSettings.by_hardness(steps=10), rows())
    assert [stage.name for stage in by_hardness.stages] == ["easy", "medium", "hard", "extra"]


def test_a_stage_ends_when_its_steps_are_spent_and_the_last_one_stays() -> None:
    curriculum = Curriculum(settings(), rows())
    assert not curriculum.on_step(1) and curriculum.stage == 0
    assert curriculum.on_step(2) and curriculum.stage == 1 and curriculum.stage_start == 2
    assert not curriculum.on_step(4)
    assert curriculum.on_step(5) and curriculum.stage == 2
    assert not curriculum.on_step(500) and curriculum.stage == 2
    assert [(e["stage"], e["step"], e["reason"]) for e in curriculum.history] == [
        ("easy first", 0, "start"),
        ("easy or medium", 2, "steps"),
        ("hard", 5, "steps"),
    ]
    # what each step trained on: a stage begins with the step after the one that ended the last
    assert [curriculum.stage_at(step) for step in (1, 2, 3, 5, 6)] == [0, 0, 1, 1, 2]


def test_a_stage_ends_early_when_the_windowed_mean_reward_reaches_its_threshold() -> None:
    curriculum = Curriculum(settings(window=2), rows())
    curriculum.on_step(2)  # into "easy or medium": threshold 1.5 over 2 logs, after at least 1 step in it
    assert not curriculum.on_reward(2, 3.0)  # the window is not full
    assert not curriculum.on_reward(2, 3.0)  # full and above, but no step spent in the stage yet
    assert not curriculum.on_reward(3, -0.5)  # the window holds the last two: mean 1.25
    assert not curriculum.on_reward(3, 1.6) and curriculum.stage == 1  # mean 0.55
    assert curriculum.on_reward(4, 1.8) and curriculum.current.name == "hard"  # mean 1.7
    assert curriculum.history[-1] == {"index": 2, "stage": "hard", "step": 4, "reason": "reward"}
    assert not curriculum.rewards  # a new stage starts a new window
    assert not curriculum.on_reward(5, 9.0) and not curriculum.on_reward(6, 9.0)  # the last stage stays


def test_draws_come_from_the_current_stage_in_passes_and_mix_in_earlier_stages() -> None:
    curriculum = Curriculum(settings(), rows(), seed=1)
    first = curriculum.draw(3)
    assert sorted(first) == [0, 1, 2]  # a whole pass before any repeat
    assert set(curriculum.draw(7)) <= {0, 1, 2}
    curriculum.on_step(2)
    curriculum.on_step(5)
    assert set(curriculum.draw(40)) <= {8, 9, 10, 11}
    mixed = Curriculum(settings(mix_earlier=0.5), rows(), seed=0)
    mixed.on_step(2)
    mixed.on_step(5)
    drawn = Counter(mixed.draw(400))
    earlier = sum(n for index, n in drawn.items() if index < 8)
    assert 140 < earlier < 260 and set(drawn) == set(range(12))
    replay = Curriculum(settings(mix_earlier=1.0), rows(), seed=0)
    replay.on_step(2)
    assert set(replay.draw(30)) == {0, 1, 2}  # stage 1's only earlier stage is stage 0
    assert set(Curriculum(settings(mix_earlier=1.0), rows()).draw(9)) == {0, 1, 2}  # stage 0 has no earlier one


def test_the_sampler_has_trl_repeat_sampler_layout_and_follows_the_stage() -> None:
    curriculum = Curriculum(settings(), rows(), seed=0)
    sampler = CurriculumSampler(curriculum, num_samples=12, mini_repeat_count=3, batch_size=2, repeat_count=2)
    assert len(sampler) == 6 * 2 * 3 * 2
    indices = iter(sampler)
    chunks = []
    for _ in range(3):
        block = [next(indices) for _ in range(2 * 3 * 2)]
        # each of 2 prompts 3 times in a row, the chunk repeated twice
        assert block[:6] == block[6:] and block[0:3] == [block[0]] * 3 and block[3:6] == [block[3]] * 3
        chunks.append({block[0], block[3]})
        if len(chunks) == 1:
            curriculum.on_step(2)
            curriculum.on_step(5)  # the next chunk is drawn when the loader asks for it: from "hard"
    assert chunks[0] <= {0, 1, 2} and chunks[1] | chunks[2] <= {8, 9, 10, 11}
    assert len(list(indices)) == (6 - 3) * 12


def test_the_state_survives_a_resume_and_refuses_another_curriculum() -> None:
    curriculum = Curriculum(settings(window=2), rows())
    curriculum.on_step(2)
    curriculum.on_reward(3, 1.0)
    state = curriculum.state_dict()
    restored = Curriculum(settings(window=2), rows())
    restored.load_state_dict(state)
    assert (restored.stage, restored.stage_start, list(restored.rewards)) == (1, 2, [1.0])
    assert restored.history == curriculum.history and restored.stage_at(3) == 1
    other = Curriculum(CurriculumSettings([StageSettings("all")]), rows())
    with pytest.raises(ValueError, match="easy or medium"):
        other.load_state_dict(state)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="hardness"):
        StageSettings("x", ["trivial"])
    with pytest.raises(ValueError, match="min_depth"):
        StageSettings("x", min_depth=3, max_depth=2)
    with pytest.raises(ValueError, match="mix_earlier"):
        CurriculumSettings([StageSettings("x")], mix_earlier=1.5)
    with pytest.raises(ValueError, match="unknown curriculum key"):
        CurriculumSettings.from_dict({"stages": [{"name": "x"}], "shuffle": True})
    parsed = CurriculumSettings.from_dict({"stages": [{"name": "x", "hardness": ["easy"], "steps": 5}], "window": 3})
    assert parsed.stages[0].steps == 5 and parsed.window == 3 and parsed.mix_earlier == 0.0
