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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mtsql.backends.base import Generation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Message = dict[str, Any]

_MARK = "\u2063mtsql-segment-end\u2063"  # never written by a model or a template
_REFERENCE: tuple[Message, ...] = ({"role": "system", "content": "s"}, {"role": "user", "content": "q"})


class ChatTemplateError(ValueError):
    """The tokenizer has no chat template, or its template cannot render the protocol's messages."""


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
        """The template's text for ``messages``."""
        return self.tokenizer.apply_chat_template(
            list(messages),
            tools=list(tools) if tools else None,
            chat_template=self.template,
            add_generation_prompt=generation_prompt,
            tokenize=False,
            enable_thinking=self.enable_thinking,
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, special tokens written in it recognised, nothing added."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def prompt_ids(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None) -> list[int]:
        """The episode's prompt: ``messages`` (system and first question) with the tools, and the generation prompt."""
        return self.encode(self.render(messages, tools=tools))

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
        text = self.render([*_REFERENCE, {"role": "assistant", "content": _MARK}, *messages])
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

    def _check(self) -> None:
        """Fail early when the template cannot render a tool reply after an assistant message."""
        try:
            self._after_mark([{"role": "tool", "name": "exec_sql", "content": "r"}])
        except ChatTemplateError:
            raise
        except Exception as err:
            raise ChatTemplateError(f"the chat template cannot render a tool reply: {err}") from err
