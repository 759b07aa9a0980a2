"""The gymnasium wrapper: Gymnasium's own checker, a scripted gold episode, reset options, rewards, close."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytest.importorskip("gymnasium")  # the gym extra (in dev too)

import gymnasium
from gymnasium.utils.env_checker import check_env

from mtsql.data import Dialogue
from mtsql.env import DialogueEnv, GoldPolicy, run_episode
from mtsql.integrations.gymnasium import ENV_ID, DialogueGymEnv, UnicodeText, messages_text
from mtsql.rewards import RewardScorer


def test_check_env_passes(db_dir: Path, dialogue: Dialogue) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env reports most problems as warnings
        check_env(DialogueGymEnv(db_dir, [dialogue], isolate=False), skip_render_check=True)  # no spec
        # through the registry: check_env also makes new instances from the spec and closes them twice
        made = gymnasium.make(ENV_ID, env=db_dir, dialogues=[dialogue], render_mode="ansi", isolate=False)
        check_env(made.unwrapped)
        made.close()


def test_gold_episode_through_the_wrapper(db_dir: Path, dialogue: Dialogue) -> None:
    env = DialogueGymEnv(DialogueEnv(db_dir), [dialogue], render_mode="ansi")
    observation, info = env.reset(seed=0)
    assert observation in env.observation_space and isinstance(observation, str)
    assert observation == messages_text(info["messages"])
    assert [m["role"] for m in info["messages"]] == ["system", "user"]
    assert dialogue.turns[0].utterance in observation and "CREATE TABLE singer" in observation
    policy = GoldPolicy(dialogue)
    steps = 0
    while True:
        action = policy(info["messages"], info)
        assert action in env.action_space
        result = env.step(action)
        assert len(result) == 5
        observation, reward, terminated, truncated, info = result
        steps += 1
        assert isinstance(observation, str) and observation in env.observation_space
        assert observation == messages_text(info["messages"])
        assert reward == 0.0 and isinstance(reward, float)
        assert truncated is False
        if terminated:
            break
        assert "episode" not in info
    # the gold protocol: exec_sql, then verdict and answer (a memory check between them after the first question);
    # terminated with the answer to the dialogue's last question
    assert steps == 2 + 3 + 3
    assert info["turn"] == len(dialogue.turns) - 1 and info["turn_done"] and info["action"] == "answer_sql"
    assert observation == "" and info["messages"] == []
    record = info["episode"]
    assert [turn.final_sql for turn in record.turns] == [turn.query for turn in dialogue.turns]
    direct = run_episode(DialogueEnv(db_dir), dialogue, GoldPolicy(dialogue))
    assert [(t.answered, t.truncated, [c.name for c in t.calls]) for t in record.turns] == [
        (t.answered, t.truncated, [c.name for c in t.calls]) for t in direct.turns
    ]
    assert len(env.messages) == 2 + 2 * steps - 1  # the last step adds no environment message
    rendered = env.render()
    assert rendered is not None and rendered.startswith("[system]\n") and "[tool/exec_sql]\n" in rendered
    with pytest.raises(RuntimeError, match="reset"):
        env.step("<answer_sql>SELECT 1</answer_sql>")
    env.close()
    env.close()
    assert env.messages == []


def test_reset_options_and_the_dialogue_draw(db_dir: Path, dialogue: Dialogue) -> None:
    short = Dialogue("test/dev/0001", "sparc", "dev", 1, "concert", dialogue.turns[:1])
    env = DialogueGymEnv(db_dir, [dialogue, short])
    _, info = env.reset(options={"index": 1})
    assert info["dialogue_id"] == short.id and info["n_turns"] == 1
    _, info = env.reset(options={"dialogue": dialogue})
    assert info["dialogue_id"] == dialogue.id
    drawn = [env.reset(seed=seed)[1]["dialogue_id"] for seed in range(12)]
    assert drawn == [env.reset(seed=seed)[1]["dialogue_id"] for seed in range(12)]
    assert set(drawn) == {dialogue.id, short.id}
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"history_mode": "oracle"})
    with pytest.raises(ValueError, match="not both"):
        env.reset(options={"index": 0, "dialogue": dialogue})
    with pytest.raises(ValueError, match="no dialogue"):
        DialogueGymEnv(db_dir).reset()
    assert DialogueGymEnv(db_dir).reset(options={"dialogue": short})[1]["n_turns"] == 1
    with pytest.raises(TypeError, match="new DialogueEnv"):
        DialogueGymEnv(DialogueEnv(db_dir), max_steps=2)


def test_budget_truncation_and_the_scorer_reward(db_dir: Path, dialogue: Dialogue) -> None:
    short = Dialogue("test/dev/0001", "sparc", "dev", 1, "concert", dialogue.turns[:1])
    env = DialogueGymEnv(db_dir, [short], max_steps=1)
    env.reset()
    _, _, terminated, truncated, info = env.step("no action")
    assert terminated and truncated and info["turn_truncated"]
    env = DialogueGymEnv(db_dir, [dialogue], scorer=RewardScorer(db_dir))
    _, info = env.reset()
    policy = GoldPolicy(dialogue)
    rewards = []
    terminated = False
    while not terminated:
        _, reward, terminated, _, info = env.step(policy(info["messages"], info))
        rewards.append(reward)
    assert rewards[:-1] == [0.0] * (len(rewards) - 1)
    assert rewards[-1] == pytest.approx(RewardScorer(db_dir).episode(info["episode"]).total) and rewards[-1] > 2


def test_unicode_text_space() -> None:
    space = UnicodeText(10)
    assert "" in space and "é ü 中 \n" in space and "x" * 11 not in space and 3 not in space
    space.seed(0)
    assert all(sample in space and sample.isascii() for sample in (space.sample() for _ in range(20)))
    assert space == UnicodeText(10) and space != UnicodeText(11)
    assert space != gymnasium.spaces.Text(10, min_length=0, charset=space.characters)
