"""The long-horizon environment: the tool protocol, dialogue memory, reply templates, tool schemas, and
:class:`DialogueEnv` over whole dialogues.

``DialogueEnv``'s contract has Gymnasium's shape without being a ``gymnasium.Env`` (no spaces, no ``np_random``;
nothing here imports gymnasium): ``reset(dialogue, *, seed=None, options=None) -> (messages, info)`` with the
dialogue positionally or as ``options={"dialogue": ...}`` and ``seed`` ignored (the environment is deterministic),
``step(model_text) -> (messages, 0.0, terminated, truncated, info)``, and an idempotent ``close()``. The true
``gymnasium.Env`` is :class:`mtsql.integrations.gymnasium.DialogueGymEnv`; TRL's ``environment_factory`` adapter
is :mod:`mtsql.integrations.trl`.
"""

from mtsql.env.environment import (
    DialogueEnv,
    EnvStats,
    EpisodeRecord,
    GoldPolicy,
    Message,
    Policy,
    ToolCall,
    TurnRecord,
    run_episode,
    schema_text,
)
from mtsql.env.memory import (
    HISTORY_MODES,
    DialogueMemory,
    HistoryMode,
    MemoryEntry,
    describe_sql,
    render_components,
    result_preview,
    result_text,
)
from mtsql.env.protocol import (
    Action,
    ErrorKind,
    ParsedMessage,
    Verdict,
    VerdictTag,
    format_answer,
    format_tool_call,
    format_verdict,
    parse_message,
)
from mtsql.env.templates import (
    DEFAULT_TEMPLATES,
    TEMPLATE_FIELDS,
    TemplateError,
    TemplateSet,
    available_templates,
    load_templates,
    parse_templates,
)
from mtsql.env.tools import EXEC_SQL, MEMORY_RETRIEVE, TOOL_NAMES, tool_schemas

__all__ = [
    "DEFAULT_TEMPLATES",
    "EXEC_SQL",
    "HISTORY_MODES",
    "MEMORY_RETRIEVE",
    "TEMPLATE_FIELDS",
    "TOOL_NAMES",
    "Action",
    "DialogueEnv",
    "DialogueMemory",
    "EnvStats",
    "EpisodeRecord",
    "ErrorKind",
    "GoldPolicy",
    "HistoryMode",
    "MemoryEntry",
    "Message",
    "ParsedMessage",
    "Policy",
    "TemplateError",
    "TemplateSet",
    "ToolCall",
    "TurnRecord",
    "Verdict",
    "VerdictTag",
    "available_templates",
    "describe_sql",
    "format_answer",
    "format_tool_call",
    "format_verdict",
    "load_templates",
    "parse_message",
    "parse_templates",
    "render_components",
    "result_preview",
    "result_text",
    "run_episode",
    "schema_text",
    "tool_schemas",
]
