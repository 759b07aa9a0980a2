""":class:`~mtsql.env.DialogueEnv` as a true ``gymnasium.Env`` with text spaces (the ``gym`` extra).

:class:`DialogueGymEnv` holds a ``DialogueEnv`` and the dialogues to play; Gymnasium's tools (``check_env``,
wrappers, ``gymnasium.make("mtsql/Dialogue-v0", ...)``) can drive it. One episode is one whole dialogue, one
step one assistant message, with ``DialogueEnv``'s semantics unchanged (budget, memory, templates, record).

- ``reset(seed=None, options=None)``: the dialogue is ``options["dialogue"]`` (any :class:`~mtsql.data.Dialogue`),
  else ``options["index"]`` (into the dialogues given at construction), else one of those drawn with
  ``self.np_random`` (so ``reset(seed=...)`` is reproducible).
- **Action**: the assistant's message text (a ``str``), as ``DialogueEnv.step`` takes it.
- **Observation**: the newest messages as one string: the contents of the messages the environment added since
  the last action (at ``reset`` the system prompt and the first question; then the tool reply, the error, the
  next question, ...), joined by a blank line; ``""`` when the dialogue ends with an answer. The same messages,
  with their roles and tool names for a chat template, are ``info["messages"]``; the whole conversation so far
  (assistant messages included) is :attr:`DialogueGymEnv.messages`, and ``render()`` (``render_mode="ansi"``)
  writes it as text.
- Both spaces are :class:`UnicodeText`: any string up to ``max_observation_chars`` / ``max_action_chars``
  characters (observations are never cut: a longer one, which only a huge schema or an enormous echoed SQL
  makes, lies outside the space). ``sample()`` draws printable ASCII.
- **Reward**: 0.0 on every step, as ``DialogueEnv`` (rewards come from the finished record, ``mtsql.rewards``),
  unless a :class:`~mtsql.rewards.RewardScorer` is given: then the last step's reward is the episode's total.
  ``terminated`` comes after the dialogue's last question, ``truncated`` with it when that question ran out of
  its budget; ``info`` is ``DialogueEnv``'s (``info["episode"]``, the record, on the last step) plus ``messages``.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from mtsql.data.dialogue import Dialogue
from mtsql.env.environment import DialogueEnv, Message
from mtsql.rewards.scorer import RewardScorer

__all__ = ["ENV_ID", "DialogueGymEnv", "UnicodeText", "messages_text"]

#: The id under which importing this module registers :class:`DialogueGymEnv` for ``gymnasium.make``.
ENV_ID = "mtsql/Dialogue-v0"


class UnicodeText(spaces.Text):
    """A text space of any Unicode string of ``min_length`` to ``max_length`` characters.

    Gymnasium's :class:`~gymnasium.spaces.Text` contains only strings of its character set; observations quote
    database values and the model's SQL, so any character can occur. ``charset`` is what :meth:`sample` draws
    from (printable ASCII by default), not a restriction.
    """

    def __init__(
        self,
        max_length: int,
        *,
        min_length: int = 0,
        charset: frozenset[str] | str = string.printable,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(max_length, min_length=min_length, charset=charset, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: object, /) -> bool:
        return type(other) is type(self) and super().__eq__(other)


def messages_text(messages: Sequence[Message]) -> str:
    """An observation as one string: the messages' contents, joined by a blank line."""
    return "\n\n".join(message["content"] for message in messages)


class DialogueGymEnv(gymnasium.Env[str, str]):
    """A ``gymnasium.Env`` over whole dialogues; see the module docstring for the spaces and the reset options.

    ``env`` is a :class:`DialogueEnv`, or the database folder to build one with ``env_options``; ``dialogues``
    are those ``reset`` draws from when no dialogue is passed in its options. ``scorer`` makes the last step's
    reward the episode's total reward.
    """

    # render_fps means nothing for text, but Gymnasium's checker wants one with any render mode
    metadata = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(
        self,
        env: DialogueEnv | str | os.PathLike[str],
        dialogues: Sequence[Dialogue] = (),
        *,
        scorer: RewardScorer | None = None,
        max_observation_chars: int = 1 << 20,
        max_action_chars: int = 1 << 16,
        render_mode: str | None = None,
        **env_options: Any,
    ) -> None:
        if isinstance(env, DialogueEnv):
            if env_options:
                raise TypeError(f"options {sorted(env_options)} are for a new DialogueEnv, not a given one")
        else:
            env = DialogueEnv(env, **env_options)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, not {render_mode!r}")
        self.env = env
        self.dialogues = tuple(dialogues)
        self.scorer = scorer
        self.render_mode = render_mode
        self.observation_space = UnicodeText(max_observation_chars)
        self.action_space = UnicodeText(max_action_chars)
        self.messages: list[Message] = []

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode on ``options["dialogue"]``, ``self.dialogues[options["index"]]``, or a dialogue of
        ``self.dialogues`` drawn with ``self.np_random``; returns the system prompt and the first question."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"dialogue", "index"})
        if unknown:
            raise ValueError(f"unknown reset option(s): {', '.join(unknown)} (options are 'dialogue' and 'index')")
        if "dialogue" in options and "index" in options:
            raise ValueError("reset options take a dialogue or an index, not both")
        if "dialogue" in options:
            dialogue = options["dialogue"]
        elif not self.dialogues:
            raise ValueError("no dialogue to play: pass dialogues to the constructor or options={'dialogue': ...}")
        elif "index" in options:
            dialogue = self.dialogues[options["index"]]
        else:
            dialogue = self.dialogues[int(self.np_random.integers(len(self.dialogues)))]
        observation, info = self.env.reset(dialogue)
        self.messages = list(observation)
        return messages_text(observation), {**info, "messages": observation}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Apply one assistant message; returns ``(newest messages, reward, terminated, truncated, info)``."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.messages += [{"role": "assistant", "content": action}, *observation]
        if terminated and self.scorer is not None:
            reward = self.scorer.episode(info["episode"]).total
        return messages_text(observation), float(reward), terminated, truncated, {**info, "messages": observation}

    def render(self) -> str | None:  # type: ignore[override]
        """With ``render_mode="ansi"``, the conversation so far, one ``[role]`` header per message."""
        if self.render_mode != "ansi":
            return None
        return "\n\n".join(
            f"[{message['role']}{'/' + message['name'] if 'name' in message else ''}]\n{message['content']}"
            for message in self.messages
        )

    def close(self) -> None:
        """Close the ``DialogueEnv`` (idempotent) and drop the conversation."""
        self.env.close()
        self.messages = []


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="mtsql.integrations.gymnasium:DialogueGymEnv")
