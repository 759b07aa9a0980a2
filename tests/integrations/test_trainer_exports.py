"""Exports for other trainers: LLaMA-Factory ShareGPT with tools, verl multi-turn SFT and RL parquet."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mtsql.data import Dialogue
from mtsql.env import DialogueEnv, GoldPolicy, Message, tool_schemas

pytest.importorskip("trl")  # the tiny tokenizer's chat template is TRL's copy of Qwen3's

from mtsql.backends import TokenizerOnly
from mtsql.integrations.export import (
    chat_messages,
    to_llamafactory,
    to_verl_rl,
    to_verl_sft,
    verl_rl_example,
)
from mtsql.rollout import RolloutConfig, RolloutEngine, Trajectory
from mtsql.train.gold import gold_records


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from mtsql.models import tiny_corpus, train_tokenizer

    return train_tokenizer(tiny_corpus())


def _engine(tokenizer: Any, example: Any, **config: Any) -> RolloutEngine:
    return RolloutEngine(TokenizerOnly(tokenizer), example.db_dir, RolloutConfig(**config))


class _Loose(GoldPolicy):
    """Gold play, but the first question's messages are written as a model might: thinking before the call, a
    broken call, a call with compact JSON (which the environment accepts), then the verdict and answer."""

    def __init__(self, dialogue: Dialogue) -> None:
        super().__init__(dialogue)
        self._count = 0

    def __call__(self, observation: list[Message], info: dict[str, Any]) -> str:
        text = super().__call__(observation, info)
        self._count += 1
        if self._count == 1:
            return "<think>\nRun the query first.\n</think>\n\n" + text
        if self._count == 2:
            return '<exec_verify>pass</exec_verify>\n<tool_call>{"name": "exec_sql", </tool_call>'
        if self._count == 3:
            return text.replace('{"name": "exec_sql", "arguments": ', '{"name":"exec_sql","arguments":')
        return text


@pytest.fixture(scope="module")
def records(tokenizer: Any, example: Any, dialogues: list[Dialogue]) -> list[Trajectory]:
    """Gold trajectories (4 messages a question), the same with 2 (later questions run out of budget: a tool
    reply and the next question follow one message), and one loosely written episode."""
    gold = list(gold_records(_engine(tokenizer, example), dialogues))
    short = list(gold_records(_engine(tokenizer, example, max_steps=2), dialogues[:4]))
    episode = _engine(tokenizer, example).start(dialogues[1])
    asyncio.run(episode.play(policy=_Loose(dialogues[1])))
    return [*gold, *short, episode.record()]


def _qwen_function_text(value: str) -> str:
    """What LLaMA-Factory writes for a ``function_call`` turn with its ``qwen`` tool format."""
    calls = json.loads(value)
    calls = calls if isinstance(calls, list) else [calls]
    return "\n".join(
        "<tool_call>\n"
        + json.dumps({"name": c["name"], "arguments": c["arguments"]}, ensure_ascii=False)
        + "\n</tool_call>"
        for c in calls
    )


def _replies(step: dict[str, Any]) -> str:
    return "\n\n".join(message["content"] for message in step.observation)


def test_llamafactory_sharegpt_keeps_every_message_in_order_and_alternates(
    records: list[Trajectory], tmp_path: Path
) -> None:
    info_path = tmp_path / "dataset_info.json"
    info_path.write_text(json.dumps({"other": {"file_name": "other.json"}}))
    counts = to_llamafactory(records, tmp_path / "mtsql_gold.json")
    rows = json.loads((tmp_path / "mtsql_gold.json").read_text())
    info = json.loads(info_path.read_text())
    assert info["other"] == {"file_name": "other.json"}
    assert info["mtsql_gold"] == {
        "file_name": "mtsql_gold.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
    }
    assert counts.rows == len(rows) == len(records) and not counts.skipped
    assert counts.assistant_messages == sum(len(record.steps) for record in records)
    merged = 0
    for row, record in zip(rows, records, strict=True):
        system, question = record.prompt_messages
        assert row["system"] == system["content"] and json.loads(row["tools"]) == tool_schemas()
        turns = row["conversations"]
        # LLaMA-Factory drops an example unless human/observation and gpt/function_call alternate, starting
        # with human and ending with a model turn.
        assert turns[0] == {"from": "human", "value": question["content"]} and len(turns) % 2 == 0
        for index, turn in enumerate(turns):
            assert turn["from"] in (("human", "observation"), ("gpt", "function_call"))[index % 2]
        steps = record.steps
        assert len(turns) == 2 * len(steps)
        for turn, step in zip(turns[1::2], steps, strict=True):
            written = _qwen_function_text(turn["value"]) if turn["from"] == "function_call" else turn["value"]
            assert written == step.text
        for turn, step in zip(turns[2::2], steps, strict=False):
            assert turn["value"] == _replies(step)
            assert turn["from"] == ("observation" if step.observation[0]["role"] == "tool" else "human")
            merged += len(step.observation) > 1
    froms = [turn["from"] for row in rows for turn in row["conversations"]]
    assert counts.tool_calls == froms.count("function_call") > 0
    assert merged > 0  # a tool reply and the next question, one turn
    # A verdict before a call cannot be held by a function_call turn: the raw text is kept.
    assert any(
        t["from"] == "gpt" and "<exec_verify>" in t["value"] and "<tool_call>" in t["value"]
        for t in rows[0]["conversations"][3:]
    )


def test_loosely_written_messages_stay_as_the_model_wrote_them(records: list[Trajectory], tmp_path: Path) -> None:
    record = records[-1]
    to_llamafactory([record], tmp_path / "loose.json")
    turns = json.loads((tmp_path / "loose.json").read_text())[0]["conversations"]
    steps = record.steps
    assert [step.action for step in steps[:3]] == ["exec_sql", None, "exec_sql"]
    # thinking before the call, a broken call, compact JSON: gpt turns with the exact text
    assert [(t["from"], t["value"]) for t in turns[1:7:2]] == [("gpt", step.text) for step in steps[:3]]
    assert [t["from"] for t in turns[2:7:2]] == ["observation", "human", "observation"]
    messages = chat_messages(record)
    assistant = [m for m in messages if m["role"] == "assistant"]
    # verl holds the thinking as the content before a structured call, which renders back to the same text
    assert assistant[0]["content"] == "<think>\nRun the query first.\n</think>\n"
    assert assistant[0]["tool_calls"][0]["function"]["name"] == "exec_sql"
    assert [m.get("tool_calls") for m in assistant[1:3]] == [None, None]
    assert [m["content"] for m in assistant[1:3]] == [step.text for step in steps[1:3]]


def test_verl_sft_parquet_renders_back_to_the_episode(
    records: list[Trajectory], tokenizer: Any, tmp_path: Path
) -> None:
    from datasets import Dataset

    counts = to_verl_sft(records, tmp_path / "sft.parquet")
    dataset = Dataset.from_parquet(str(tmp_path / "sft.parquet"))
    assert counts.rows == len(dataset) == len(records) and counts.tool_calls > 0
    assert set(dataset.column_names) == {"id", "messages", "tools", "enable_thinking"}
    for row, record in zip(dataset, records, strict=True):
        # Parquet gives every message every key; verl hands the None ones to the template, which ignores them.
        messages = [{key: value for key, value in m.items() if value is not None} for m in row["messages"]]
        assert messages == chat_messages(record)
        assert row["tools"] == tool_schemas() and row["enable_thinking"] is True
        assert messages[:2] == record.prompt_messages
        assistant = [m for m in messages if m["role"] == "assistant"]
        assert len(assistant) == len(record.steps)
        replies = [m for m in messages[2:] if m["role"] != "assistant"]
        assert replies == [m for step in record.steps[:-1] for m in step.observation]
        if record is records[-1]:
            continue  # Qwen3's template rewrites <think> blocks; the gold messages have none
        # verl tokenizes one message at a time (the tools with the first): that is the episode, token for token.
        ids = []
        for index, message in enumerate(messages):
            ids += tokenizer.apply_chat_template(
                [message],
                tools=row["tools"] if index == 0 else None,
                return_dict=True,
                enable_thinking=row["enable_thinking"],
            )["input_ids"]
        episode = record.prompt_ids + record.completion_ids
        assert ids[: len(episode)] == episode and tokenizer.decode(ids[len(episode) :]) == "\n"
        # The whole conversation renders to the same text (a user message after it keeps Qwen3's template from
        # adding empty <think> blocks to the messages after the last question).
        rendered = tokenizer.apply_chat_template(
            [*messages, {"role": "user", "content": "."}], tools=row["tools"], tokenize=False
        )
        assert rendered.startswith(tokenizer.decode(episode, skip_special_tokens=False))


def test_verl_rl_rows_from_records_and_dialogues(
    records: list[Trajectory], dialogues: list[Dialogue], example: Any, tmp_path: Path
) -> None:
    from datasets import Dataset

    gold = records[: len(dialogues)]
    cut = copy.deepcopy(gold[1])
    cut.turns, cut.finish = cut.turns[:1], "context"
    counts = to_verl_rl([cut, *gold, gold[0]], tmp_path / "rl.parquet")
    rows = Dataset.from_parquet(str(tmp_path / "rl.parquet")).to_list()
    assert (counts.rows, counts.repeated) == (len(rows), 1)
    assert counts.skipped == [f"{cut.dialogue_id}: episode {cut.id} reached 1 of its {len(cut.gold_sql)} questions"]
    by_dialogue = {dialogue.id: dialogue for dialogue in dialogues}
    for index, (row, record) in enumerate(zip(rows, gold, strict=True)):
        dialogue = by_dialogue[record.dialogue_id]
        assert row == {
            "data_source": "mtsql/sparc",
            "prompt": record.prompt_messages,
            "ability": "text2sql",
            "reward_model": {"style": "rule", "ground_truth": [turn.query for turn in dialogue.turns]},
            "extra_info": {
                "split": "example",
                "index": index,
                "dataset": "sparc",
                "dialogue_id": dialogue.id,
                "db_id": dialogue.db_id,
                "questions": [turn.utterance for turn in dialogue.turns],
            },
        }
    # From dialogues: the environment renders the same prompts; a missing database is skipped and counted.
    lost = dataclasses.replace(dialogues[0], id="lost", db_id="no_such_db")
    env = DialogueEnv(example.db_dir)
    counts = to_verl_rl([*dialogues, lost], tmp_path / "rl_dialogues.parquet", env=env)
    again = Dataset.from_parquet(str(tmp_path / "rl_dialogues.parquet")).to_list()
    assert again == rows and counts.rows == len(dialogues)
    assert len(counts.skipped) == 1 and counts.skipped[0].startswith("lost: database 'no_such_db' not found")
    with pytest.raises(ValueError, match="needs an env"):
        verl_rl_example(dialogues[0], 0)


def test_records_the_exports_cannot_use(records: list[Trajectory], tmp_path: Path) -> None:
    empty = dataclasses.replace(records[0], id="empty#0", steps=[])
    counts = to_verl_sft([empty, records[0]], tmp_path / "sft.parquet")
    assert (counts.rows, counts.skipped) == (1, ["empty#0: no model message"])
    assert to_llamafactory([empty], tmp_path / "none.json").skipped == ["empty#0: no model message"]
    old = {key: value for key, value in records[0].to_dict().items() if key != "prompt_messages"}
    with pytest.raises(ValueError, match="no field 'prompt_messages'"):
        Trajectory.from_dict(old)
    # A model whose template lacks the protocol's roles (Gemma): the records hold what it saw, an export would not.
    settings = records[0].settings
    adaptation = {**(settings.chat_adaptation or {}), "system": "first_user"}
    adapted = dataclasses.replace(
        records[0], id="gemma#0", settings=dataclasses.replace(settings, chat_adaptation=adaptation)
    )
    counts = to_verl_sft([adapted, records[0]], tmp_path / "adapted.parquet")
    assert counts.rows == 1 and counts.skipped[0].startswith(
        "gemma#0: chat template adapted ({'system': 'first_user'})"
    )
    assert to_llamafactory([adapted], tmp_path / "adapted.json").rows == 0
