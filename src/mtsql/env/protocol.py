"""Parsing one assistant message of the tool protocol (Qwen3 chat format, Hermes-style tool calls).

Grammar of a message (``text`` is free text without protocol tags, ignored)::

    message  := chunk* [verdict chunk*] [action chunk*]          with at least one verdict or action
    chunk    := text | think
    think    := "<think>" any "</think>"
              | any "</think>"                  only as the first tag (the prompt opened the block)
    verdict  := "<exec_verify>" ws ("pass" | "no_pass") ws "</exec_verify>"
              | "<memory_verify>" ws ("pass" | "no_pass") ws "</memory_verify>"
    action   := "<tool_call>" json "</tool_call>"
              | "<answer_sql>" sql "</answer_sql>"
    json     := {"name": "exec_sql", "arguments": {"code": sql}}
              | {"name": "memory_retrieve"}  |  ... "arguments": {}}  |  ... "arguments": {"code": sql}}

Why this shape: the original MTSQL-R1 model writes its verdict on the last tool reply and then, in the
same message, its next call or its answer (``<exec_verify>pass</exec_verify> ... <tool_call>...``), so a
verdict followed by an action is the normal message; with a budget of 4 messages a question, separate
verdict messages would not fit. A verdict alone is well-formed too (the environment asks the model to go on).

Rules:

- Tags are exact and lower-case. The content of ``<think>``, ``<tool_call>`` and ``<answer_sql>`` is opaque up
  to its own closing tag, so a call drafted while thinking, or ``<`` inside SQL, is never taken as an action.
  Several think blocks are allowed (all ignored).
- At most one verdict and at most one action; the verdict comes first (a verdict after the action would judge
  a reply the model has not seen yet).
- SQL (``code`` or the answer) is stripped of surrounding whitespace and of a Markdown code fence
  (````` ```sql ... ``` `````); it must not be empty. ``arguments`` must be a JSON object with no keys other
  than ``code``; ``code`` must be a string.

Any violation is a :class:`ParsedMessage` whose ``error`` is an :class:`ErrorKind` and whose ``error_message``
is written for the model (it goes back as an error observation): :func:`parse_message` never raises. On an
error ``action`` is ``None``; ``verdict`` keeps a well-formed verdict that came before the error, since the
model's judgement of the last reply stands even when its next action is broken.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any, Final, NamedTuple

from mtsql.env.tools import EXEC_SQL, MEMORY_RETRIEVE, TOOL_NAMES


class Action(StrEnum):
    EXEC_SQL = EXEC_SQL
    MEMORY_RETRIEVE = MEMORY_RETRIEVE
    ANSWER = "answer_sql"


class VerdictTag(StrEnum):
    EXEC = "exec_verify"
    MEMORY = "memory_verify"


class ErrorKind(StrEnum):
    """Why a message is malformed; the values are stable strings for records and reward code."""

    NO_ACTION = "no_action"  # neither a verdict nor an action
    UNCLOSED_TAG = "unclosed_tag"  # an opening tag without its closing tag, or the reverse
    BAD_JSON = "bad_json"  # the tool call is not a JSON object
    UNKNOWN_TOOL = "unknown_tool"  # no "name", or not one of the tools
    BAD_ARGUMENTS = "bad_arguments"  # "arguments" not an object, "code" missing or not a string, extra keys
    EMPTY_SQL = "empty_sql"  # blank SQL in a call or in the answer
    SEVERAL_ACTIONS = "several_actions"  # more than one tool call or answer
    SEVERAL_VERDICTS = "several_verdicts"
    BAD_VERDICT = "bad_verdict"  # a verdict other than pass / no_pass
    MISPLACED_VERDICT = "misplaced_verdict"  # a verdict after the action
    # Well-formed, but not a check the environment can make (see DialogueEnv's memory rules):
    MEMORY_FIRST_QUESTION = "memory_first_question"  # memory_retrieve on the first question: no memory yet
    MEMORY_BEFORE_EXEC = "memory_before_exec"  # memory_retrieve before any exec_sql of the question
    MEMORY_UNEXECUTED = "memory_unexecuted"  # memory_retrieve with code other than the SQL executed last


class Verdict(NamedTuple):
    tag: VerdictTag
    passed: bool

    @property
    def value(self) -> str:
        return "pass" if self.passed else "no_pass"


class ParsedMessage(NamedTuple):
    """One assistant message: its action and SQL, its verdict, its thinking, or why it is malformed.

    ``sql`` is the ``exec_sql`` code, the answer, or the optional ``memory_retrieve`` code (``None`` when
    absent). A named tuple: immutable and several times cheaper to build than a frozen dataclass, which
    matters at one parse per environment step.
    """

    action: Action | None = None
    sql: str | None = None
    verdict: Verdict | None = None
    thinking: str | None = None
    error: ErrorKind | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


_TAG: Final = re.compile(r"<(/?)(think|tool_call|answer_sql|exec_verify|memory_verify)>")
_CLOSE: Final = {name: f"</{name}>" for name in ("think", "tool_call", "answer_sql", "exec_verify", "memory_verify")}
_FENCE: Final = re.compile(r"\A```(?:sql(?:ite)?\b)?\s*(.*?)\s*```\Z", re.DOTALL | re.IGNORECASE)
_VERDICTS: Final = {
    (tag.value, value): Verdict(tag, value == "pass") for tag in VerdictTag for value in ("pass", "no_pass")
}
_TOOL_ACTIONS: Final = {EXEC_SQL: Action.EXEC_SQL, MEMORY_RETRIEVE: Action.MEMORY_RETRIEVE}


def parse_message(text: str) -> ParsedMessage:
    """Parse one assistant message (see the module docstring for the grammar); never raises."""
    verdict: Verdict | None = None
    action: Action | None = None
    sql: str | None = None
    thinking: list[str] = []
    pos = 0
    first = True
    while (match := _TAG.search(text, pos)) is not None:
        closing, name = match.group(1), match.group(2)
        if closing:
            if name == "think" and first:
                thinking.append(text[: match.start()])
                pos, first = match.end(), False
                continue
            return _error(ErrorKind.UNCLOSED_TAG, f"found </{name}> without an opening <{name}>", verdict)
        first = False
        end = text.find(_CLOSE[name], match.end())
        if end < 0:
            return _error(ErrorKind.UNCLOSED_TAG, f"<{name}> is not closed with </{name}>", verdict)
        content = text[match.end() : end]
        pos = end + len(name) + 3
        if name == "think":
            thinking.append(content)
        elif name == "exec_verify" or name == "memory_verify":
            if action is not None:
                return _error(
                    ErrorKind.MISPLACED_VERDICT,
                    f"<{name}> comes after the action: give your verdict first, then call a tool or answer",
                    None,
                )
            if verdict is not None:
                return _error(ErrorKind.SEVERAL_VERDICTS, "give only one verdict per message", None)
            verdict = _VERDICTS.get((name, content.strip()))
            if verdict is None:
                return _error(
                    ErrorKind.BAD_VERDICT,
                    f"<{name}> must contain pass or no_pass, not {_excerpt(content)}",
                    None,
                )
        else:
            if action is not None:
                return _error(
                    ErrorKind.SEVERAL_ACTIONS,
                    "give exactly one action per message: one tool call or one <answer_sql>",
                    verdict,
                )
            if name == "answer_sql":
                action, sql = Action.ANSWER, clean_sql(content)
                if not sql:
                    return _error(ErrorKind.EMPTY_SQL, "<answer_sql> is empty: put the final SQL in it", verdict)
            else:
                parsed = _parse_call(content, verdict)
                if isinstance(parsed, ParsedMessage):
                    return parsed
                action, sql = parsed
    if action is None and verdict is None:
        return _error(ErrorKind.NO_ACTION, "no tool call, verdict or <answer_sql> found", None)
    return ParsedMessage(action, sql, verdict, "".join(thinking) if thinking else None)


def _parse_call(content: str, verdict: Verdict | None) -> tuple[Action, str | None] | ParsedMessage:
    try:
        call: Any = json.loads(content)
    except (ValueError, RecursionError) as err:  # RecursionError: deeply nested arrays
        reason = err.msg if isinstance(err, json.JSONDecodeError) else str(err)
        return _error(ErrorKind.BAD_JSON, f"the tool call is not valid JSON ({reason})", verdict)
    if not isinstance(call, dict):
        return _error(ErrorKind.BAD_JSON, 'the tool call must be a JSON object with "name" and "arguments"', verdict)
    name = call.get("name")
    action = _TOOL_ACTIONS.get(name) if isinstance(name, str) else None
    if action is None:
        found = f"unknown tool {_excerpt(name)}" if "name" in call else 'the tool call has no "name"'
        return _error(ErrorKind.UNKNOWN_TOOL, f"{found}: the tools are {', '.join(TOOL_NAMES)}", verdict)
    arguments = call.get("arguments", {})
    if not isinstance(arguments, dict):
        return _error(ErrorKind.BAD_ARGUMENTS, f'"arguments" of {name} must be a JSON object', verdict)
    if len(arguments) > 1 or (arguments and "code" not in arguments):
        extra = sorted(key for key in arguments if key != "code")
        return _error(
            ErrorKind.BAD_ARGUMENTS,
            f'unexpected argument(s) of {name}: {", ".join(extra)}; use "code"',
            verdict,
        )
    code = arguments.get("code")
    if code is None and action is Action.MEMORY_RETRIEVE:
        return action, None
    if not isinstance(code, str):
        what = "is missing" if code is None else f"must be a string, not {type(code).__name__}"
        return _error(ErrorKind.BAD_ARGUMENTS, f'the "code" argument of {name} {what}', verdict)
    sql = clean_sql(code)
    if not sql:
        return _error(ErrorKind.EMPTY_SQL, f'the "code" argument of {name} is empty', verdict)
    return action, sql


def clean_sql(text: str) -> str:
    """SQL as the protocol takes it: surrounding whitespace and a Markdown code fence removed."""
    text = text.strip()
    if text.startswith("```"):
        fenced = _FENCE.match(text)
        if fenced is not None:
            return fenced.group(1)
    return text


def _excerpt(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error(kind: ErrorKind, message: str, verdict: Verdict | None) -> ParsedMessage:
    return ParsedMessage(verdict=verdict, error=kind, error_message=message)


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """A Hermes tool call as the model writes it (for scripted policies and synthesised trajectories)."""
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "\n</tool_call>"


def format_verdict(tag: VerdictTag, passed: bool) -> str:
    return f"<{tag}>{'pass' if passed else 'no_pass'}</{tag}>"


def format_answer(sql: str) -> str:
    return f"<answer_sql>{sql}</answer_sql>"
