from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtsql.env import (
    EXEC_SQL,
    MEMORY_RETRIEVE,
    Action,
    ErrorKind,
    ParsedMessage,
    VerdictTag,
    format_answer,
    format_tool_call,
    format_verdict,
    parse_message,
    tool_schemas,
)

EXEC = '<tool_call>{"name": "exec_sql", "arguments": {"code": "SELECT name FROM singer"}}</tool_call>'
MEMORY = '<tool_call>{"name": "memory_retrieve", "arguments": {}}</tool_call>'
CALL_JSON = '{"name": "exec_sql", "arguments": {"code": "SELECT 1"}}'


def call(name: object, arguments: object) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


# --- well-formed messages ---------------------------------------------------------------------------------


def test_exec_sql_call_with_thinking() -> None:
    parsed = parse_message(f"<think>\nThe singers table has names.\n</think>\n\n{EXEC}")
    assert parsed == ParsedMessage(Action.EXEC_SQL, "SELECT name FROM singer", None, "\nThe singers table has names.\n")
    assert parsed.ok


def test_exec_sql_call_without_thinking_and_multiline_json() -> None:
    text = '<tool_call>\n{"name": "exec_sql",\n "arguments": {"code": "SELECT 1"}}\n</tool_call>\n'
    parsed = parse_message(text)
    assert (parsed.action, parsed.sql, parsed.thinking, parsed.error) == (Action.EXEC_SQL, "SELECT 1", None, None)


def test_memory_retrieve_with_and_without_code() -> None:
    assert parse_message(MEMORY) == ParsedMessage(Action.MEMORY_RETRIEVE, None)
    no_arguments = parse_message('<tool_call>{"name": "memory_retrieve"}</tool_call>')
    assert no_arguments == ParsedMessage(Action.MEMORY_RETRIEVE, None)
    original_form = parse_message(call("memory_retrieve", {"code": " SELECT 1 "}))
    assert original_form == ParsedMessage(Action.MEMORY_RETRIEVE, "SELECT 1")


def test_answer() -> None:
    parsed = parse_message(
        "<think>done</think>The final query:\n<answer_sql> SELECT count(*) FROM singer </answer_sql>"
    )
    assert (parsed.action, parsed.sql, parsed.thinking) == (Action.ANSWER, "SELECT count(*) FROM singer", "done")


@pytest.mark.parametrize(
    ("tag", "value", "passed"),
    [("exec_verify", "pass", True), ("exec_verify", "no_pass", False), ("memory_verify", " pass\n", True),
     ("memory_verify", "no_pass", False)],
)  # fmt: skip
def test_verdict_then_action(tag: str, value: str, passed: bool) -> None:
    parsed = parse_message(f"<think>ok</think><{tag}>{value}</{tag}>\nNext:\n{MEMORY}")
    assert parsed.ok and parsed.action is Action.MEMORY_RETRIEVE
    assert parsed.verdict is not None
    assert (parsed.verdict.tag, parsed.verdict.passed) == (VerdictTag(tag), passed)
    assert parsed.verdict.value == ("pass" if passed else "no_pass")


def test_verdict_then_answer() -> None:
    parsed = parse_message("<memory_verify>pass</memory_verify><answer_sql>SELECT 1</answer_sql>")
    assert parsed.ok and parsed.action is Action.ANSWER and parsed.verdict == (VerdictTag.MEMORY, True)


def test_verdict_alone_is_well_formed() -> None:
    parsed = parse_message("<think>the result is empty</think><exec_verify>no_pass</exec_verify>")
    assert parsed.ok and parsed.action is None and parsed.verdict == (VerdictTag.EXEC, False)


def test_thinking_opened_by_the_prompt() -> None:
    parsed = parse_message(f"I should look at the singers.\n</think>\n{EXEC}")
    assert parsed.ok and parsed.thinking == "I should look at the singers.\n" and parsed.action is Action.EXEC_SQL


def test_tags_inside_thinking_are_ignored() -> None:
    text = f"<think>Maybe {EXEC} or <answer_sql>SELECT 2</answer_sql>; <exec_verify>maybe</exec_verify></think>{MEMORY}"
    parsed = parse_message(text)
    assert parsed.ok and parsed.action is Action.MEMORY_RETRIEVE and parsed.verdict is None


def test_several_think_blocks_and_free_text() -> None:
    parsed = parse_message(f"<think>a</think> text <think>b</think> more text {EXEC} trailing text")
    assert parsed.ok and parsed.thinking == "ab" and parsed.action is Action.EXEC_SQL


def test_sql_content_is_opaque() -> None:
    sql = "SELECT name FROM singer WHERE note = '<tool_call> a<b </think>'"
    assert parse_message(format_answer(sql)).sql == sql
    assert parse_message(format_tool_call(EXEC_SQL, {"code": sql})).sql == sql


@pytest.mark.parametrize(
    "fenced", ["```sql\nSELECT 1\n```", "```\nSELECT 1\n```", "```SQLite\nSELECT 1```", "```SELECT 1```"]
)
def test_markdown_fence_is_removed(fenced: str) -> None:
    assert parse_message(format_answer(fenced)).sql == "SELECT 1"
    assert parse_message(format_tool_call(EXEC_SQL, {"code": fenced})).sql == "SELECT 1"


def test_format_helpers_round_trip() -> None:
    text = format_verdict(VerdictTag.EXEC, True) + "\n" + format_tool_call(MEMORY_RETRIEVE, {})
    assert parse_message(text) == ParsedMessage(Action.MEMORY_RETRIEVE, None, (VerdictTag.EXEC, True))
    assert parse_message(format_verdict(VerdictTag.MEMORY, False)).verdict == (VerdictTag.MEMORY, False)


# --- malformed messages -----------------------------------------------------------------------------------

MALFORMED = {
    "plain text": ("SELECT name FROM singer", ErrorKind.NO_ACTION),
    "empty": ("", ErrorKind.NO_ACTION),
    "thinking only": ("<think>hmm</think>", ErrorKind.NO_ACTION),
    "unclosed think": ("<think>I will call exec_sql", ErrorKind.UNCLOSED_TAG),
    "unclosed tool call": ("<tool_call>" + CALL_JSON, ErrorKind.UNCLOSED_TAG),
    "unclosed answer": ("<answer_sql>SELECT 1", ErrorKind.UNCLOSED_TAG),
    "unclosed verdict": ("<exec_verify>pass", ErrorKind.UNCLOSED_TAG),
    "closing without opening": ("SELECT 1</answer_sql>", ErrorKind.UNCLOSED_TAG),
    "stray closing after action": (EXEC + "</tool_call>", ErrorKind.UNCLOSED_TAG),
    "second closing think": ("<think>a</think>b</think>" + EXEC, ErrorKind.UNCLOSED_TAG),
    "bad json": ("<tool_call>" + CALL_JSON[:-1] + "</tool_call>", ErrorKind.BAD_JSON),
    "python dict": ("<tool_call>" + CALL_JSON.replace('"', "'") + "</tool_call>", ErrorKind.BAD_JSON),
    "json list": ('<tool_call>["exec_sql", "SELECT 1"]</tool_call>', ErrorKind.BAD_JSON),
    "empty tool call": ("<tool_call></tool_call>", ErrorKind.BAD_JSON),
    "unknown tool": (call("run_sql", {"code": "SELECT 1"}), ErrorKind.UNKNOWN_TOOL),
    "no tool name": ('<tool_call>{"arguments": {"code": "SELECT 1"}}</tool_call>', ErrorKind.UNKNOWN_TOOL),
    "tool name not a string": (call(["exec_sql"], {"code": "SELECT 1"}), ErrorKind.UNKNOWN_TOOL),
    "arguments a string": (call("exec_sql", '{"code": "SELECT 1"}'), ErrorKind.BAD_ARGUMENTS),
    "arguments a list": (call("exec_sql", ["SELECT 1"]), ErrorKind.BAD_ARGUMENTS),
    "code missing": (call("exec_sql", {}), ErrorKind.BAD_ARGUMENTS),
    "arguments missing": ('<tool_call>{"name": "exec_sql"}</tool_call>', ErrorKind.BAD_ARGUMENTS),
    "code a number": (call("exec_sql", {"code": 1}), ErrorKind.BAD_ARGUMENTS),
    "code null for memory": (call("memory_retrieve", {"code": 1}), ErrorKind.BAD_ARGUMENTS),
    "other argument": (call("exec_sql", {"sql": "SELECT 1"}), ErrorKind.BAD_ARGUMENTS),
    "extra argument": (call("exec_sql", {"code": "SELECT 1", "db": "x"}), ErrorKind.BAD_ARGUMENTS),
    "memory extra argument": (call("memory_retrieve", {"query": "SELECT 1"}), ErrorKind.BAD_ARGUMENTS),
    "empty code": (call("exec_sql", {"code": "  "}), ErrorKind.EMPTY_SQL),
    "empty fenced code": (call("exec_sql", {"code": "```sql\n```"}), ErrorKind.EMPTY_SQL),
    "empty memory code": (call("memory_retrieve", {"code": ""}), ErrorKind.EMPTY_SQL),
    "empty answer": ("<answer_sql>\n</answer_sql>", ErrorKind.EMPTY_SQL),
    "two tool calls": (EXEC + MEMORY, ErrorKind.SEVERAL_ACTIONS),
    "call and answer": (EXEC + "<answer_sql>SELECT 1</answer_sql>", ErrorKind.SEVERAL_ACTIONS),
    "two answers": ("<answer_sql>SELECT 1</answer_sql>" * 2, ErrorKind.SEVERAL_ACTIONS),
    "two verdicts": ("<exec_verify>pass</exec_verify><memory_verify>pass</memory_verify>", ErrorKind.SEVERAL_VERDICTS),
    "bad verdict": ("<exec_verify>yes</exec_verify>" + MEMORY, ErrorKind.BAD_VERDICT),
    "upper-case verdict": ("<exec_verify>PASS</exec_verify>", ErrorKind.BAD_VERDICT),
    "empty verdict": ("<memory_verify></memory_verify>", ErrorKind.BAD_VERDICT),
    "verdict after action": (MEMORY + "<exec_verify>pass</exec_verify>", ErrorKind.MISPLACED_VERDICT),
}  # fmt: skip


@pytest.mark.parametrize(("text", "kind"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed(text: str, kind: ErrorKind) -> None:
    parsed = parse_message(text)
    assert parsed.error is kind and not parsed.ok
    assert parsed.action is None and parsed.sql is None
    assert parsed.error_message and "\n" not in parsed.error_message


def test_every_error_kind_is_covered() -> None:
    """Every kind the parser gives; the memory_* kinds are the environment's refusals (test_environment.py)."""
    parser_kinds = {kind for kind in ErrorKind if not kind.value.startswith("memory_")}
    assert {kind for _, kind in MALFORMED.values()} == parser_kinds


def test_verdict_before_a_broken_action_is_kept() -> None:
    parsed = parse_message("<exec_verify>no_pass</exec_verify>" + call("exec_sql", {"code": ""}))
    assert parsed.error is ErrorKind.EMPTY_SQL and parsed.verdict == (VerdictTag.EXEC, False)
    several = parse_message("<exec_verify>pass</exec_verify>" + EXEC + EXEC)
    assert several.error is ErrorKind.SEVERAL_ACTIONS and several.verdict == (VerdictTag.EXEC, True)


def test_verdict_errors_drop_the_verdict() -> None:
    for text in (MALFORMED["two verdicts"][0], MALFORMED["verdict after action"][0]):
        assert parse_message(text).verdict is None


def test_error_messages_name_the_problem() -> None:
    assert "run_sql" in (parse_message(MALFORMED["unknown tool"][0]).error_message or "")
    assert "exec_sql, memory_retrieve" in (parse_message(MALFORMED["unknown tool"][0]).error_message or "")
    assert "db" in (parse_message(MALFORMED["extra argument"][0]).error_message or "")
    assert "</answer_sql>" in (parse_message(MALFORMED["unclosed answer"][0]).error_message or "")
    assert "'yes'" in (parse_message(MALFORMED["bad verdict"][0]).error_message or "")


@pytest.mark.parametrize(
    "text", ["<", "</", "<tool_call>", "</think>", "<think></think></think>", "\x00" * 10, "{" * 5000]
)
def test_odd_inputs_never_raise(text: str) -> None:
    assert isinstance(parse_message(text), ParsedMessage)


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    assert parse_message("<tool_call>" + "[" * 100_000 + "</tool_call>").error is ErrorKind.BAD_JSON


def test_tool_schemas() -> None:
    schemas = tool_schemas()
    assert [s["function"]["name"] for s in schemas] == [EXEC_SQL, MEMORY_RETRIEVE]
    for schema in schemas:
        assert schema["type"] == "function"
        function = schema["function"]
        assert function["description"] and function["parameters"]["type"] == "object"
        assert function["parameters"]["properties"]["code"]["type"] == "string"
    assert schemas[0]["function"]["parameters"]["required"] == ["code"]
    assert schemas[1]["function"]["parameters"]["required"] == []
    json.dumps(schemas)
    schemas[0]["function"]["name"] = "changed"
    assert tool_schemas()[0]["function"]["name"] == EXEC_SQL


FRAGMENTS = [
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<answer_sql>", "</answer_sql>", "<exec_verify>",
    "</exec_verify>", "<memory_verify>", "</memory_verify>", "pass", "no_pass", '{"name": "exec_sql", ',
    '"arguments": {"code": "SELECT 1"}}', '{"name": "memory_retrieve"}', "```sql\n", "```", "{", "}", "\n",
]  # fmt: skip


@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=30))
@settings(max_examples=300, deadline=None)
def test_any_text_parses_to_a_consistent_result(parts: list[str]) -> None:
    parsed = parse_message("".join(parts))
    assert isinstance(parsed, ParsedMessage)
    if parsed.error is not None:
        assert parsed.action is None and parsed.sql is None and parsed.error_message
        return
    assert parsed.action is not None or parsed.verdict is not None
    if parsed.action in (Action.EXEC_SQL, Action.ANSWER) or parsed.sql is not None:
        assert parsed.sql and parsed.sql == parsed.sql.strip()
