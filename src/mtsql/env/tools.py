"""JSON-schema definitions of the environment's tools, in the OpenAI / Hugging Face chat-template form.

Pass :func:`tool_schemas` as ``tools=`` to ``tokenizer.apply_chat_template`` (Qwen3's template renders them
into the system prompt and expects Hermes ``<tool_call>`` replies) or to an OpenAI-compatible server.
``memory_retrieve`` takes an optional ``code``: the original MTSQL-R1 tool required the SQL to check, ours
defaults to the last executed SQL, so both call forms are accepted.
"""

from __future__ import annotations

import copy
from typing import Any, Final

EXEC_SQL: Final = "exec_sql"
MEMORY_RETRIEVE: Final = "memory_retrieve"
TOOL_NAMES: Final = (EXEC_SQL, MEMORY_RETRIEVE)

_TOOLS: Final[tuple[dict[str, Any], ...]] = (
    {
        "type": "function",
        "function": {
            "name": EXEC_SQL,
            "description": (
                "Execute one read-only SQLite query on the dialogue's database and return the first rows of "
                "its result, or the error message."
            ),
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "description": "The SQL query to execute (one statement)."}},
                "required": ["code"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": MEMORY_RETRIEVE,
            "description": (
                "Retrieve the dialogue memory: every earlier question with its SQL, the parsed SQL clauses "
                "and a preview of its result, to check that the current SQL is coherent with the dialogue."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "The SQL to check; defaults to the last executed query.",
                    }
                },
                "required": [],
                "additionalProperties": False,
            },
        },
    },
)


def tool_schemas() -> list[dict[str, Any]]:
    """The tool definitions, as fresh copies a caller may modify."""
    return copy.deepcopy(list(_TOOLS))
