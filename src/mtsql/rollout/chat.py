"""Token segments of an episode, rendered once with the checkpoint's chat template and never again.

The prompt (system message, tools, first question) is rendered with the template and tokenized. After that
the engine only ever *appends*: the model's sampled ids as they came, then the environment's reply as a
segment of its own. The reply's text is what the template writes between the end of an assistant message
and the start of the next one: :meth:`ChatFormat.observation_ids` renders a reference conversation ending
with a marked assistant message, once without and once with the reply and the generation prompt, and takes
what follows the marker. So the segment is exactly what the template would write there (tool replies
wrapped as the template wraps them, ``<|im_start|>assistant\\n`` at the end), while the earlier tokens stay
untouched: a template that drops earlier ``<think>`` blocks (as Qwen3's does when rendering a whole
conversation) cannot change what the model saw, and no text is re-tokenized across a segment boundary.

The template is the tokenizer's own (a real Qwen3 checkpoint's, or the tiny model's copy of it); a template
file can replace it. ``enable_thinking`` goes to the template, as Qwen3's reads it.

**Templates without the protocol's roles.** The protocol speaks in system, user, assistant and tool messages,
with tool schemas, as Qwen3's template renders them. Other models' templates lack some of these: SmolLM2's ChatML
template ignores ``tools``; Gemma's turn format has only user and model turns and refuses any other role. The
format probes the template once and adapts the protocol's messages to what it supports
(:class:`ChatAdaptation`, recorded in every episode): tool schemas it does not render are written into the
system text as a ``<tools>`` block (one JSON schema a line, as Hermes-style templates write them); a system
message it cannot render is folded into the first user message; tool replies it cannot render are sent as user
messages, consecutive user messages joined into one. The adapted messages are what gets rendered, so the
guarantee above holds unchanged: the recorded ids are exactly what the model was conditioned on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from mtsql.backends.base import Generation
from mtsql.errors import MtsqlError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Message = dict[str, Any]

_MARK = "\u2063mtsql-segment-end\u2063"  # never written by a model or a template
_REFERENCE: tuple[Message, ...] = ({"role": "system", "content": "s"}, {"role": "user", "content": "q"})


class ChatTemplateError(MtsqlError, ValueError):
    """The tokenizer has no chat template, or its template cannot render the protocol's messages."""


@dataclass(frozen=True, slots=True)
class ChatAdaptation:
    """How the protocol's messages are fitted to a chat template (see the module docstring): each field is
    ``"native"`` when the template renders that part itself."""

    #: The system message: ``native``, or ``first_user`` (written at the top of the first user message).
    system: Literal["native", "first_user"] = "native"
    #: Tool replies: ``native`` (the template's tool role), or ``user`` (sent as user messages).
    tool_replies: Literal["native", "user"] = "native"
    #: Tool schemas: ``native`` (the template's ``tools``), or ``system_text`` (a ``<tools>`` block there).
    tool_schemas: Literal["native", "system_text"] = "native"

    @property
    def native(self) -> bool:
        return self == ChatAdaptation()

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class ChatFormat:
    """Renders an episode's prompt and environment segments into token ids; see the module docstring.

    ``chat_template`` is a Jinja template's text replacing the tokenizer's; ``stop_ids`` are the
    ids that also end a model segment, besides the template's closing token (the backend adds the model's
    end-of-sequence ids).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        chat_template: str | None = None,
        enable_thinking: bool = True,
        stop_ids: Sequence[int] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.template = chat_template or tokenizer.chat_template
        if not self.template:
            raise ChatTemplateError(
                f"the tokenizer of {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template: pass one"
            )
        self.enable_thinking = enable_thinking
        #: How the protocol's messages are fitted to this template.
        self.adaptation = self._probe()
        #: The token that closes an assistant message in this template (``<|im_end|>`` for Qwen3), if any.
        self.end_id = self._end_id()
        ids = list(stop_ids) if stop_ids is not None else []
        if self.end_id is not None and self.end_id not in ids:
            ids.insert(0, self.end_id)
        if not ids and tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        #: Ids that end a model segment: the closing token first, then ``stop_ids``.
        self.stop_ids = tuple(ids)
        self._check()

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        generation_prompt: bool = True,
    ) -> str:
        """The template's text for ``messages`` as given (no adaptation)."""
        return self.tokenizer.apply_chat_template(
            list(messages),
            tools=list(tools) if tools else None,
            chat_template=self.template,
            add_generation_prompt=generation_prompt,
            tokenize=False,
            enable_thinking=self.enable_thinking,
        )

    def adapt(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None) -> list[Message]:
        """``messages`` (and ``tools``, for a prompt) fitted to the template per :attr:`adaptation`."""
        return _adapt(self.adaptation, messages, tools)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, special tokens written in it recognised, nothing added."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def prompt_text(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None) -> str:
        """The episode's prompt text: ``messages`` (system and first question) with the tools, adapted, and the
        generation prompt."""
        native_tools = tools if self.adaptation.tool_schemas == "native" else None
        return self.render(self.adapt(messages, tools), tools=native_tools)

    def prompt_ids(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None) -> list[int]:
        """Token ids of :meth:`prompt_text`."""
        return self.encode(self.prompt_text(messages, tools))

    def observation_text(self, messages: Sequence[Message], *, closed: bool) -> str:
        """What the template writes after an assistant message for the environment's ``messages``, ending with
        the generation prompt. ``closed`` says the model's segment ended with the closing token (:attr:`end_id`);
        otherwise the text starts by closing the message, as the template would."""
        segment = self._after_mark(messages)
        if closed and self.end_id is not None:
            end_text = self.tokenizer.decode([self.end_id], skip_special_tokens=False)
            if segment.startswith(end_text):
                segment = segment[len(end_text) :]
        return segment

    def observation_ids(self, messages: Sequence[Message], *, closed: bool) -> list[int]:
        """Token ids of :meth:`observation_text`."""
        return self.encode(self.observation_text(messages, closed=closed))

    def forced(self, text: str) -> Generation:
        """``text`` as a model segment written for the model (teacher forcing): its ids, closed by the template's
        closing token, with logprobs 0.0."""
        ids = self.encode(text)
        if self.end_id is not None:
            ids.append(self.end_id)
        return Generation(ids, [0.0] * len(ids), "stop")

    def is_closed(self, token_ids: Sequence[int]) -> bool:
        """Whether a model segment ended with the template's closing token."""
        return bool(token_ids) and self.end_id is not None and token_ids[-1] == self.end_id

    def model_text(self, token_ids: Sequence[int]) -> str:
        """The text of a model segment as the environment reads it: its ids decoded, the final stop token cut."""
        ids = list(token_ids)
        if ids and ids[-1] in self.stop_ids:
            ids.pop()
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _after_mark(self, messages: Sequence[Message]) -> str:
        reference = [*self.adapt(_REFERENCE), {"role": "assistant", "content": _MARK}]
        text = self.render([*reference, *self.adapt(messages)])
        cut = text.rfind(_MARK)
        if cut < 0:
            raise ChatTemplateError("the chat template dropped the assistant message's text")
        return text[cut + len(_MARK) :]

    def _end_id(self) -> int | None:
        """The special token the template writes right after an assistant message's text, if it writes one."""
        try:
            ids = self.encode(self._after_mark([{"role": "user", "content": "u"}]))
        except ChatTemplateError:
            raise
        except Exception as err:
            raise ChatTemplateError(f"the chat template cannot render the protocol's messages: {err}") from err
        return ids[0] if ids and ids[0] in self.tokenizer.all_special_ids else None

    def _probe(self) -> ChatAdaptation:
        """What the template renders of the protocol's roles and tools (see the module docstring)."""

        def renders(messages: list[Message], probe: str, tools: list[dict[str, Any]] | None = None) -> bool:
            try:
                return probe in self.render(messages, tools=tools)
            except Exception:  # the template refuses the role (Gemma raises)
                return False

        user = {"role": "user", "content": "q"}
        system = renders([{"role": "system", "content": _PROBE}, user], _PROBE)
        first = [{"role": "system", "content": "s"}, user] if system else [user]
        tool = {"role": "tool", "name": "exec_sql", "content": _PROBE}
        tool_replies = renders([*first, {"role": "assistant", "content": "a"}, tool], _PROBE)
        schema = {"type": "function", "function": {"name": _PROBE, "description": "d", "parameters": {}}}
        tool_schemas = renders(first, _PROBE, tools=[schema])
        return ChatAdaptation(
            system="native" if system else "first_user",
            tool_replies="native" if tool_replies else "user",
            tool_schemas="native" if tool_schemas else "system_text",
        )

    def _check(self) -> None:
        """Fail early when the template cannot render a tool reply after an assistant message."""
        try:
            self._after_mark([{"role": "tool", "name": "exec_sql", "content": "r"}])
        except ChatTemplateError:
            raise
        except Exception as err:
            raise ChatTemplateError(f"the chat template cannot render a tool reply: {err}") from err


_PROBE = "mtsql-probe-\u2063"


def _adapt(
    adaptation: ChatAdaptation, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None
) -> list[Message]:
    out = [dict(message) for message in messages]
    if tools and adaptation.tool_schemas == "system_text" and out and out[0]["role"] == "system":
        schemas = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
        out[0]["content"] = f"{out[0]['content']}\n\nTools:\n<tools>\n{schemas}\n</tools>"
    if adaptation.tool_replies == "user":
        out = [{"role": "user", "content": m["content"]} if m["role"] == "tool" else m for m in out]
    if adaptation.system == "first_user" and out and out[0]["role"] == "system":
        system, rest = out[0], out[1:]
        if rest and rest[0]["role"] == "user":
            rest[0] = {**rest[0], "content": f"{system['content']}\n\n{rest[0]['content']}"}
        else:
            rest.insert(0, {"role": "user", "content": system["content"]})
        out = rest
    merged: list[Message] = []
    for message in out:
        if merged and message["role"] == "user" and merged[-1]["role"] == "user" and not adaptation.native:
            merged[-1] = {**merged[-1], "content": f"{merged[-1]['content']}\n\n{message['content']}"}
        else:
            merged.append(message)
    return merged
