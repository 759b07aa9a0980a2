"""The environment as TRL's ``GRPOTrainer(environment_factory=...)`` expects it: one question per rollout.

How the installed TRL (1.16) drives an environment: it creates instances with ``environment_factory()``, calls
``reset(**row)`` with every column of the dataset row, renders the row's ``prompt`` with the tool schemas that
``transformers.utils.get_json_schema`` builds from the instance's public methods, and loops: generate, parse the
assistant message's tool calls, call the methods, append their strings as ``tool`` messages, generate again,
until a message has no tool call or ``max_tool_calling_iterations`` is reached. Tool replies are masked out of the
loss. An environment's optional ``get_reward()`` takes no argument, and TRL never shows the environment the
assistant's text, so it cannot see the verdicts (``<exec_verify>``, ``<memory_verify>``) nor the
``<answer_sql>`` the reward depends on. TRL does pass each rollout's completion messages and its environment to
reward functions, so the reward is :class:`TRLReward`, passed as ``reward_funcs``::

    rows = question_rows(dialogues, db_dir, history_mode="oracle")
    trainer = GRPOTrainer(
        model,
        reward_funcs=TRLReward(db_dir, kmaps=load_foreign_key_maps(tables_json)),
        train_dataset=datasets.Dataset.from_list(rows),
        environment_factory=functools.partial(SQLToolEnvironment, db_dir),
        args=GRPOConfig(max_tool_calling_iterations=3, ...),  # max_steps - 1: the last message answers
    )

Semantics are those of :class:`~mtsql.env.DialogueEnv` (same templates, tool replies, memory, budget, record):
the row's ``prompt`` is the chat prefix of that question in a whole-dialogue episode whose earlier questions
were each answered at once with the SQL the memory holds (gold in ``oracle`` mode, the agent's earlier
predictions in ``predicted`` mode); tool calls are executed live through a ``DialogueEnv``; when the rollout
is scored its assistant messages are replayed through the ``DialogueEnv`` (executing their SQL again, on cached
connections) to get the :class:`~mtsql.env.EpisodeRecord` of the question exactly as a whole-dialogue run records it.

Two differences follow from TRL executing the tool calls itself: a message with several tool calls gets all of
them executed live (the record counts it as malformed), and a rollout that ends without ``<answer_sql>`` (no tool
call and no answer, or cut by TRL's limits) is closed like a question whose budget ran out: its last executed SQL
is the final SQL.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from mtsql.data.dialogue import Dialogue, Turn
from mtsql.data.export import turn_rows
from mtsql.data.loaders import EMPTY_PREDICTION
from mtsql.env.environment import DialogueEnv, EpisodeRecord, Message
from mtsql.env.memory import HISTORY_MODES, NO_SQL, HistoryMode, check_history_mode
from mtsql.env.protocol import format_answer, format_tool_call
from mtsql.env.tools import EXEC_SQL, MEMORY_RETRIEVE
from mtsql.rewards.config import COMPONENTS, RewardConfig
from mtsql.rewards.scorer import QuestionReward, RewardScorer


def question_rows(
    dialogues: Iterable[Dialogue],
    db_dir: str | os.PathLike[str],
    *,
    history_mode: HistoryMode,
    predictions: Mapping[str, Sequence[str]] | None = None,
    **env_options: Any,
) -> list[dict[str, Any]]:
    """One TRL dataset row per question: the :func:`mtsql.data.export.turn_rows` columns plus ``prompt`` (the
    chat messages before the question's first assistant message), ``history_mode`` and ``history_sql`` (the SQL
    the memory holds for each earlier question).

    ``history_mode`` must be named: ``oracle`` remembers the gold SQL (the original paper's training setting);
    ``predicted`` remembers ``predictions[dialogue.id]``, the agent's own final SQL per turn from an earlier run
    (an empty one stands as ``SELECT``, as in a prediction file). ``env_options`` are :class:`DialogueEnv`'s
    (templates, budget, result sizes) and must match the :class:`SQLToolEnvironment`'s.
    """
    check_history_mode(history_mode)
    env = DialogueEnv(db_dir, history_mode=history_mode, **env_options)
    rows = []
    for dialogue in dialogues:
        if history_mode == "oracle":
            remembered = [turn.query for turn in dialogue.turns]
        elif predictions is None or dialogue.id not in predictions:
            raise ValueError(f"predicted history needs the predictions of dialogue {dialogue.id}")
        else:
            remembered = [sql or EMPTY_PREDICTION for sql in predictions[dialogue.id]]
        if len(remembered) < len(dialogue.turns) - 1:
            raise ValueError(f"dialogue {dialogue.id} has fewer predictions than earlier questions")
        for row, turn in zip(turn_rows([dialogue]), dialogue.turns, strict=True):
            history = remembered[: turn.index]
            prompt = _start(env, _question_dialogue(dialogue, turn.index), history)
            rows.append({**row, "prompt": prompt, "history_mode": history_mode, "history_sql": history})
    return rows


def _question_dialogue(dialogue: Dialogue, index: int) -> Dialogue:
    """The dialogue cut after its question ``index``: the episode of that question."""
    return dataclasses.replace(dialogue, turns=dialogue.turns[: index + 1])


def _start(env: DialogueEnv, dialogue: Dialogue, history_sql: Sequence[str]) -> list[Message]:
    """Reset ``env`` on ``dialogue``, answer its earlier questions with ``history_sql``, and return the chat prefix
    of its last question: the observations, with those answers as assistant messages."""
    messages, _ = env.reset(dialogue)
    for sql in history_sql:
        answer = format_answer(sql)
        observation, *_ = env.step(answer)
        messages += [{"role": "assistant", "content": answer}, *observation]
    return messages


class SQLToolEnvironment:
    """One rollout of one question for TRL's ``environment_factory``; the public methods are the tools.

    ``db_dir`` holds ``<db_id>/<db_id>.sqlite``; ``env_options`` are :class:`DialogueEnv`'s (the same as given to
    :func:`question_rows`). Only :meth:`reset` and the tools are public: TRL exposes every other public method
    as a tool. The tools' docstrings are what TRL turns into their JSON schemas; their first paragraphs end lines
    with a backslash so the descriptions equal those of :func:`mtsql.env.tool_schemas` character for character.
    """

    def __init__(self, db_dir: str | os.PathLike[str], **env_options: Any) -> None:
        self._envs = {mode: DialogueEnv(db_dir, history_mode=mode, **env_options) for mode in HISTORY_MODES}
        self._env: DialogueEnv | None = None
        self._dialogue: Dialogue | None = None
        self._history_sql: list[str] = []
        self._over = False

    def reset(
        self,
        *,
        dialogue_id: str,
        db_id: str,
        utterance: str,
        query: str,
        previous_utterances: Sequence[str] = (),
        previous_queries: Sequence[str] = (),
        history_sql: Sequence[str] = (),
        history_mode: HistoryMode = "oracle",
        dataset: str = "sparc",
        split: str = "",
        position: int = 0,
        **_: Any,
    ) -> None:
        """Start the rollout of a :func:`question_rows` row (the prompt is the row's; nothing is appended)."""
        check_history_mode(history_mode)
        questions = [*previous_utterances, utterance]
        golds = [*previous_queries, query]
        if len(golds) != len(questions) or len(history_sql) != len(questions) - 1:
            raise ValueError("a row needs one gold query and one history SQL per earlier question")
        turns = tuple(Turn(index, text, sql) for index, (text, sql) in enumerate(zip(questions, golds, strict=True)))
        self._dialogue = Dialogue(dialogue_id, dataset, split, position, db_id, turns)  # type: ignore[arg-type]
        self._history_sql = list(history_sql)
        self._env = self._envs[history_mode]
        self._begin()

    def exec_sql(self, code: str) -> str:
        """Execute one read-only SQLite query on the dialogue's database and return the first rows of its result, \
or the error message.

        Args:
            code: The SQL query to execute (one statement).

        Returns:
            The question, the SQL and its execution result, with the instructions to verify the result.
        """
        return self._call(EXEC_SQL, {"code": code})

    def memory_retrieve(self, code: str | None = None) -> str:
        """Retrieve the dialogue memory: every earlier question with its SQL, the parsed SQL clauses and a preview \
of its result, to check that the current SQL is coherent with the dialogue.

        Args:
            code: The SQL to check; defaults to the last executed query.

        Returns:
            The SQL under check, its result and the memory, with the instructions to judge coherence.
        """
        return self._call(MEMORY_RETRIEVE, {} if code is None else {"code": code})

    # --- internals (private: TRL would expose public methods as tools) ---------------------------------------

    def _begin(self) -> DialogueEnv:
        if self._env is None or self._dialogue is None:
            raise RuntimeError("reset() the environment first")
        _start(self._env, self._dialogue, self._history_sql)
        self._over = False
        return self._env

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        env = self._env
        if env is None or env.record is None:
            raise RuntimeError("reset() the environment before calling its tools")
        if self._over:  # the budget ran out on an earlier call of this message or rollout
            final = env.record.turns[-1].final_sql or NO_SQL
            return env.templates.render("budget_exhausted", max_steps=env.max_steps, final_sql=final)
        observation, _, terminated, _, _ = env.step(format_tool_call(name, arguments))
        self._over = terminated
        return "\n\n".join(message["content"] for message in observation)

    def _finish(self, completion: Sequence[Mapping[str, Any]]) -> EpisodeRecord:
        """The record of the question after replaying the rollout's assistant messages (see the module docstring).

        Its last turn is the question; the earlier ones are the history answers.
        """
        env = self._begin()
        assert env.record is not None
        for message in completion:
            if message.get("role") == "assistant" and env.step(_message_text(message))[2]:
                return env.record
        env.stop()  # no answer: closed as when the budget runs out (DialogueEnv's one rule for the final SQL)
        return env.record


def _message_text(message: Mapping[str, Any]) -> str:
    """An assistant message as the model wrote it, minus its thinking: text, then the Hermes tool calls."""
    parts = [message.get("content") or ""]
    for call in message.get("tool_calls") or ():
        function = call.get("function", call)
        arguments = function.get("arguments")
        parts.append(format_tool_call(str(function.get("name")), arguments if isinstance(arguments, dict) else {}))
    return "\n".join(part for part in parts if part)


class TRLReward:
    """The reward function for ``GRPOTrainer(reward_funcs=...)`` with :class:`SQLToolEnvironment` environments.

    Called with each rollout's completion messages and environment, it replays the rollout, scores the question
    with :class:`~mtsql.rewards.RewardScorer` (``db_dir``, ``config``, ``kmaps`` as there) and returns the totals.
    Every component's batch mean is logged as the metric ``mtsql/<component>`` and each rollout's values as the
    completions-table column ``mtsql_<component>``. ``last_rewards`` keeps the latest batch's
    :class:`~mtsql.rewards.QuestionReward` objects.
    """

    __name__ = "mtsql"

    def __init__(
        self,
        db_dir: str | os.PathLike[str],
        config: RewardConfig | None = None,
        *,
        kmaps: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.scorer = RewardScorer(db_dir, config, kmaps=kmaps)
        self.last_rewards: list[QuestionReward] = []

    def __call__(
        self,
        completions: Sequence[Sequence[Mapping[str, Any]]],
        environments: Sequence[SQLToolEnvironment] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        log_extra: Callable[[str, list[Any]], None] | None = None,
        **_: Any,
    ) -> list[float]:
        if environments is None:
            raise ValueError("TRLReward needs the rollouts' environments: use it with environment_factory")
        rewards = []
        for completion, environment in zip(completions, environments, strict=True):
            record = environment._finish(completion)
            rewards.append(self.scorer.question(record.turns[-1], record.db_id))
        self.last_rewards = rewards
        for name in COMPONENTS:
            values = [getattr(reward, name) for reward in rewards]
            if log_metric is not None and values:
                log_metric(f"mtsql/{name}", sum(values) / len(values))
            if log_extra is not None:
                log_extra(f"mtsql_{name}", values)
        return [reward.total for reward in rewards]
