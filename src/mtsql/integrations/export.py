"""Episode records as training data for other trainers: LLaMA-Factory and verl.

mtsql's own SFT rows (:mod:`mtsql.train.data`) are token-exact; these exports are for users of trainers that
take chat messages and render them with a chat template themselves. Each rebuilds an episode's conversation
from its record, never from decoded tokens: the prompt messages (``prompt_messages``, the system message and
the first question as ``DialogueEnv.reset`` wrote them), then for each step the model's message (``text``) and,
unless it is the last step, the environment's messages after it (``observation``). The tool schemas are the
record's ``tools``.

Formats:

``llamafactory`` (:func:`to_llamafactory`)
    LLaMA-Factory's ShareGPT format with tools: a JSON list of ``{"conversations": [{"from", "value"}],
    "system", "tools"}`` (``tools`` a JSON string), and its entry in ``dataset_info.json`` beside the file.
``verl-sft`` (:func:`to_verl_sft`)
    Parquet for verl's ``MultiTurnSFTDataset``: ``messages`` (OpenAI-style, ``tool_calls`` with JSON-string
    ``arguments``, tool replies as ``{"role": "tool", "name", "content"}``), ``tools`` (the schemas, as
    ``tools=`` of ``apply_chat_template``) and ``enable_thinking`` (the rollout's setting): verl's default
    ``data.multiturn`` keys ``messages``, ``tools`` and ``enable_thinking``.
``verl-rl`` (:func:`to_verl_rl`)
    Parquet for verl's ``RLHFDataset``, one row per dialogue: ``data_source`` (``mtsql/<dataset>``),
    ``prompt`` (system and first question), ``ability`` (``text2sql``), ``reward_model`` (``{"style": "rule",
    "ground_truth": [gold SQL of every question]}``), ``extra_info`` (``split``, ``index``, ``dataset``,
    ``dialogue_id``, ``db_id``, ``questions``). verl takes tool schemas from its tool config, not from the
    data (they are :func:`mtsql.env.tools.tool_schemas`); the later questions are for a verl interaction to
    ask, the database for its tools to query.

Mapping choices, and why:

- A model message becomes a structured tool call (a ``function_call`` turn; an assistant message with
  ``tool_calls``) only when the environment took it as a tool call and the structured form renders back to
  exactly the model's text: Qwen3's template (and LLaMA-Factory's ``qwen`` tool format) write
  ``[content + "\\n"]<tool_call>\\n{"name": "N", "arguments": {...}}\\n</tool_call>``, which is the protocol's
  own form. Anything else (other JSON spacing, text after the call, a malformed call) stays the raw text, so
  no trainer is taught a message the model did not write.
- LLaMA-Factory's ``function_call`` turn holds the call alone (its formatter keeps a leading ``<think>`` block
  but drops the whitespace after it), so a message with a verdict or thinking before its call is a ``gpt``
  turn with the raw text, ``<tool_call>`` included; with the Qwen templates both render the same text.
- LLaMA-Factory alternates strictly (``human``/``observation`` at odd positions, ``gpt``/``function_call`` at
  even ones). When the environment replies with several messages (a tool reply, then the user message saying
  the question's budget is used up with the next question) they become one turn, joined by a blank line as
  the environment joins user messages: ``observation`` when the first is a tool reply, ``human`` otherwise.
  verl keeps the messages as they are.
- Per-question loss masks cannot be expressed: LLaMA-Factory trains on every ``gpt``/``function_call`` turn
  (only the last one with ``mask_history: true``), and verl's ``MultiTurnSFTDataset`` on every assistant
  message. Train on chosen questions with mtsql's own SFT rows (``sft_example(record, turns)``).
- These trainers render the messages with a chat template, so token-exactness is theirs to keep. verl
  tokenizes one message at a time with the checkpoint's template: for trajectories without thinking and
  Qwen3's template that gives the episode's token ids, token for token (the tests check it); its sanity check
  against a whole-conversation render fails there, because Qwen3's template adds empty ``<think>`` blocks to
  the messages after the last question: set verl's ``ignore_input_ids_mismatch``. Qwen3's template drops the
  ``<think>`` blocks of messages before the last question (LLaMA-Factory's ``qwen3`` template does so too, and
  adds an empty one to turns written without); for trajectories without thinking, LLaMA-Factory's
  ``qwen3_nothink`` writes every message as it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtsql.data.dialogue import Dialogue
from mtsql.env.tools import TOOL_NAMES
from mtsql.errors import MtsqlError
from mtsql.rollout.trajectory import Step, Trajectory

if TYPE_CHECKING:
    from mtsql.env.environment import DialogueEnv

Message = dict[str, Any]

#: The verl ``data_source`` prefix and ``ability`` of the RL rows.
DATA_SOURCE_PREFIX = "mtsql/"
ABILITY = "text2sql"
_CALL_OPEN = "<tool_call>"


class IncompleteEpisode(MtsqlError, ValueError):
    """An episode that ended before its last question (its context ran out): its later questions are unknown."""


@dataclass(slots=True)
class ExportCounts:
    """What an export wrote: rows; the model messages in them, and how many became structured tool calls
    (``function_call`` turns, assistant messages with ``tool_calls``); for RL, records skipped because their
    dialogue already had a row; records or dialogues left out, with why."""

    rows: int = 0
    assistant_messages: int = 0
    tool_calls: int = 0
    repeated: int = 0
    skipped: list[str] = field(default_factory=list)


# --- LLaMA-Factory ------------------------------------------------------------------------------------------


def sharegpt_example(record: Trajectory) -> dict[str, Any]:
    """An episode as one LLaMA-Factory ShareGPT example (see the module docstring for the mapping).

    Raises ``ValueError`` when the record has no model message or its prompt is not a system and a user message.
    """
    *system, question = _prompt(record)
    conversations = [{"from": "human", "value": question["content"]}]
    steps = _steps(record)
    for index, step in enumerate(steps):
        call = _tool_call(step)
        if call is not None and not call[0]:
            conversations.append({"from": "function_call", "value": json.dumps(call[1], ensure_ascii=False)})
        else:
            conversations.append({"from": "gpt", "value": step.text})
        if index + 1 < len(steps):
            observation = step.observation
            role = "observation" if observation[0]["role"] == "tool" else "human"
            conversations.append({"from": role, "value": "\n\n".join(m["content"] for m in observation)})
    return {
        "id": record.id,
        "conversations": conversations,
        "system": system[0]["content"] if system else "",
        "tools": json.dumps(record.tools, ensure_ascii=False),
    }


def to_llamafactory(
    records: Iterable[Trajectory], out: str | os.PathLike[str], *, name: str | None = None
) -> ExportCounts:
    """Write the episodes to ``out`` as a LLaMA-Factory ShareGPT JSON file, and register it as ``name``
    (default: the file's stem) in ``dataset_info.json`` beside it, keeping the other entries there.

    Records without a model message are left out and counted.
    """
    out = Path(out)
    rows, counts = _rows(
        records, sharegpt_example, lambda row: sum(turn["from"] == "function_call" for turn in row["conversations"])
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    info_path = out.parent / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    info[name or out.stem] = {
        "file_name": out.name,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
    }
    info_path.write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return counts


# --- verl ---------------------------------------------------------------------------------------------------


def chat_messages(record: Trajectory) -> list[Message]:
    """An episode as OpenAI-style chat messages, structured tool calls where they render back to the model's
    text (see the module docstring). Raises ``ValueError`` as :func:`sharegpt_example` does."""
    messages = _prompt(record)
    steps = _steps(record)
    for index, step in enumerate(steps):
        call = _tool_call(step)
        if call is None:
            messages.append({"role": "assistant", "content": step.text})
        else:
            content, function = call
            arguments = json.dumps(function["arguments"], ensure_ascii=False)
            messages.append(
                {
                    "role": "assistant",
                    "content": content,
                    "tool_calls": [
                        {"type": "function", "function": {"name": function["name"], "arguments": arguments}}
                    ],
                }
            )
        if index + 1 < len(steps):
            messages.extend(dict(message) for message in step.observation)
    return messages


def verl_sft_example(record: Trajectory) -> dict[str, Any]:
    """An episode as one row of verl's multi-turn SFT parquet."""
    return {
        "id": record.id,
        "messages": chat_messages(record),
        "tools": record.tools,
        "enable_thinking": record.settings.thinking,
    }


def to_verl_sft(records: Iterable[Trajectory], out: str | os.PathLike[str]) -> ExportCounts:
    """Write the episodes to ``out`` as verl multi-turn SFT parquet; records without a model message are left
    out and counted."""
    rows, counts = _rows(records, verl_sft_example, lambda row: sum(bool(m.get("tool_calls")) for m in row["messages"]))
    _write_parquet(rows, out)
    return counts


def verl_rl_example(item: Trajectory | Dialogue, index: int, env: DialogueEnv | None = None) -> dict[str, Any]:
    """One row of verl's RL parquet for a dialogue: from an episode record (its prompt as the rollout had it)
    or from a :class:`Dialogue` (its prompt rendered by ``env.reset``, so with ``env``'s settings).

    Raises ``ValueError`` for a dialogue without ``env``, :class:`IncompleteEpisode` for a record that did not
    reach every question, ``FileNotFoundError`` when a dialogue's database is missing.
    """
    if isinstance(item, Dialogue):
        if env is None:
            raise ValueError("a Dialogue needs an env to render its prompt")
        prompt, _ = env.reset(item)
        dataset, split, dialogue_id, db_id = item.dataset, item.split, item.id, item.db_id
        questions = [turn.utterance for turn in item.turns]
        gold = [turn.query for turn in item.turns]
    else:
        prompt = _prompt(item)
        dataset, split, dialogue_id, db_id = item.dataset, item.split, item.dialogue_id, item.db_id
        questions = [turn.question for turn in item.turns]
        gold = item.gold_sql
        if len(questions) < len(gold):
            raise IncompleteEpisode(f"episode {item.id} reached {len(questions)} of its {len(gold)} questions")
    return {
        "data_source": DATA_SOURCE_PREFIX + dataset,
        "prompt": [dict(message) for message in prompt],
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": list(gold)},
        "extra_info": {
            "split": split,
            "index": index,
            "dataset": dataset,
            "dialogue_id": dialogue_id,
            "db_id": db_id,
            "questions": questions,
        },
    }


def to_verl_rl(
    items: Iterable[Trajectory | Dialogue], out: str | os.PathLike[str], *, env: DialogueEnv | None = None
) -> ExportCounts:
    """Write one verl RL row per dialogue to ``out`` (parquet), from episode records or dialogues (with ``env``
    to render their prompts; see :func:`verl_rl_example`). Later samples of a dialogue are counted as
    ``repeated``; dialogues whose database is missing and records that did not reach every question are left
    out and counted."""
    counts = ExportCounts()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in items:
        key = item.id if isinstance(item, Dialogue) else item.dialogue_id
        if key in seen:
            counts.repeated += 1
            continue
        try:
            rows.append(verl_rl_example(item, len(rows), env))
        except (FileNotFoundError, IncompleteEpisode) as err:
            counts.skipped.append(f"{key}: {err}")
            continue
        seen.add(key)
    counts.rows = len(rows)
    _write_parquet(rows, out)
    return counts


# --- shared -------------------------------------------------------------------------------------------------


def _prompt(record: Trajectory) -> list[Message]:
    """Copies of the record's prompt messages: the system message, if any, and the first question."""
    messages = record.prompt_messages
    roles = [message["role"] for message in messages]
    if roles not in (["system", "user"], ["user"]):
        raise ValueError(f"episode {record.id}: expected prompt messages system, user; found {', '.join(roles)}")
    return [dict(message) for message in messages]


def _steps(record: Trajectory) -> list[Step]:
    steps = record.steps
    if not steps:
        raise ValueError(f"episode {record.id} has no model message")
    return steps


def _tool_call(step: Step) -> tuple[str, dict[str, Any]] | None:
    """``(content, {"name", "arguments"})`` when the step is a tool call the environment accepted and whose
    structured form (``content`` then the call, as Qwen3's template writes them) is exactly the model's text."""
    if step.action not in TOOL_NAMES:
        return None
    text = step.text
    start = text.rfind(_CALL_OPEN)
    if start < 0:
        return None
    body = text[start + len(_CALL_OPEN) :].removesuffix("</tool_call>")
    try:
        call = json.loads(body)
    except ValueError:
        return None
    if not isinstance(call, dict) or call.get("name") != step.action or not isinstance(call.get("arguments"), dict):
        return None
    content = text[:start].removesuffix("\n")
    function = {"name": call["name"], "arguments": call["arguments"]}
    return (content, function) if _render_call(content, function) == text else None


def _render_call(content: str, function: dict[str, Any]) -> str:
    """An assistant message with one tool call, as Qwen3's chat template writes it."""
    arguments = json.dumps(function["arguments"], ensure_ascii=False)
    call = f'<tool_call>\n{{"name": "{function["name"]}", "arguments": {arguments}}}\n</tool_call>'
    return f"{content}\n{call}" if content else call


def _rows(
    records: Iterable[Trajectory],
    example: Callable[[Trajectory], dict[str, Any]],
    tool_calls: Callable[[dict[str, Any]], int],
) -> tuple[list[dict[str, Any]], ExportCounts]:
    """``example`` of each record with a model message, the others left out and counted; ``tool_calls`` counts a
    row's structured tool calls."""
    counts = ExportCounts()
    rows = []
    for record in records:
        if not record.steps:
            counts.skipped.append(f"{record.id}: no model message")
            continue
        adapted = {part: how for part, how in (record.settings.chat_adaptation or {}).items() if how != "native"}
        if adapted:  # the other trainer would render the protocol's roles, not what this model's template saw
            counts.skipped.append(f"{record.id}: chat template adapted ({adapted}): train on the records instead")
            continue
        row = example(record)
        rows.append(row)
        counts.rows += 1
        counts.assistant_messages += len(record.steps)
        counts.tool_calls += tool_calls(row)
    return rows, counts


def _write_parquet(rows: list[dict[str, Any]], out: str | os.PathLike[str]) -> None:
    """Write the rows with the ``datasets`` types in the table's metadata, so ``load_dataset("parquet")`` and
    pandas (which verl reads with) both read them back; directly, without ``to_parquet``'s progress bar."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(Dataset.from_list(rows).data.table, path)
