"""The OpenAI endpoints over one backend: prompts and conversations tokenized, completions generated and decoded.

Why here: this is where the schema meets the model. Each request comes from its own connection thread and is
handed to one asyncio loop running in a background thread, where ``backend.generate`` is awaited; a
:class:`~mtsql.backends.BatchedBackend` therefore puts requests that arrive together into one batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

from mtsql.backends.base import Backend, Generation, SamplingParams
from mtsql.serve import schema
from mtsql.serve.schema import APIError, RequestBody


class Endpoints:
    """Answers the OpenAI endpoints' bodies with ``backend``, named ``served_model_name`` (default
    ``backend.model``); :meth:`close` releases the backend."""

    def __init__(self, backend: Backend, *, served_model_name: str | None = None) -> None:
        self.backend = backend
        self.model_name = served_model_name or backend.model
        self.tokenizer = backend.tokenizer
        self.created = int(time.time())
        # Fast tokenizers are not meant to be used from several threads at once.
        self._tokenizer_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="mtsql-serve-loop", daemon=True)
        self._loop_thread.start()

    def close(self) -> None:
        """Release the backend and stop the loop (once no request is in flight)."""
        with contextlib.suppress(Exception):  # closing must finish even if the backend fails to
            asyncio.run_coroutine_threadsafe(self.backend.aclose(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join()
        self._loop.close()

    def health(self, body: Any) -> dict[str, Any]:
        return {"status": "ok"}

    def models(self, body: Any) -> dict[str, Any]:
        return schema.model_list(self.model_name, self.created, self.backend.max_model_len)

    def completion(self, body: Any) -> dict[str, Any]:
        request = RequestBody(body)
        schema.check_common(request, self.model_name)
        schema.check_completion_only(request)
        prompt_ids = self._prompt_ids(request)
        max_tokens = request.integer("max_tokens", 16, minimum=1)
        params = schema.sampling_params(request, len(prompt_ids), max_tokens, self.backend.max_model_len)
        logprobs = request.integer("logprobs", None, minimum=0)
        as_ids = request.boolean("return_tokens_as_token_ids", False)
        return_ids = request.boolean("return_token_ids", False)
        generation = self._generate(prompt_ids, params)
        if logprobs is None:
            formatted = None
        else:
            ids = generation.token_ids
            tokens = [f"token_id:{i}" for i in ids] if as_ids else self._tokens(ids)
            formatted = schema.completion_logprobs(tokens, generation.logprobs)
        return schema.completion_response(
            self.model_name,
            prompt_ids,
            generation,
            params,
            text=self._text(generation),
            logprobs=formatted,
            return_token_ids=return_ids,
        )

    def chat_completion(self, body: Any) -> dict[str, Any]:
        request = RequestBody(body)
        schema.check_common(request, self.model_name)
        messages = schema.chat_messages(request)
        tools = request.get("tools", list)
        template_kwargs = request.get("chat_template_kwargs", dict) or {}
        try:
            with self._tokenizer_lock:
                text = self.tokenizer.apply_chat_template(
                    [schema.plain_message(m) for m in messages],
                    tools=tools,
                    add_generation_prompt=True,
                    tokenize=False,
                    **template_kwargs,
                )
                prompt_ids = self.tokenizer.encode(text, add_special_tokens=False)
        except APIError:
            raise
        except Exception as err:  # the template's own checks (roles, tool calls) reject the conversation
            raise schema.bad_request(f"cannot render the chat template: {err}", "messages") from err
        max_model_len = self.backend.max_model_len
        max_tokens = schema.chat_max_tokens(request, len(prompt_ids), max_model_len)
        params = schema.sampling_params(request, len(prompt_ids), max_tokens, max_model_len)
        logprobs = request.boolean("logprobs", False)
        request.integer("top_logprobs", None, minimum=0)  # accepted; only the sampled token is known
        return_ids = request.boolean("return_token_ids", False)
        generation = self._generate(prompt_ids, params)
        formatted = schema.chat_logprobs(self._tokens(generation.token_ids), generation.logprobs) if logprobs else None
        return schema.chat_response(
            self.model_name,
            prompt_ids,
            generation,
            params,
            text=self._text(generation),
            logprobs=formatted,
            return_token_ids=return_ids,
        )

    def _prompt_ids(self, request: RequestBody) -> list[int]:
        prompt = schema.completion_prompt(request)
        if isinstance(prompt, str):
            with self._tokenizer_lock:
                ids = self.tokenizer.encode(prompt, add_special_tokens=request.boolean("add_special_tokens", True))
        else:
            ids = prompt
            vocabulary = len(self.tokenizer)
            if any(not 0 <= i < vocabulary for i in ids):
                raise schema.bad_request(f"token ids must be in [0, {vocabulary})", "prompt")
        if not ids:
            raise schema.bad_request("the prompt is empty", "prompt")
        return ids

    def _generate(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        future = asyncio.run_coroutine_threadsafe(self.backend.generate(prompt_ids, params), self._loop)
        return future.result()

    def _text(self, generation: Generation) -> str:
        with self._tokenizer_lock:
            return self.tokenizer.decode(schema.text_token_ids(generation), skip_special_tokens=True)

    def _tokens(self, token_ids: list[int]) -> list[str]:
        with self._tokenizer_lock:
            return [self.tokenizer.decode([i]) for i in token_ids]
