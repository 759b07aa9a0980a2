"""The ``openai`` backend: any OpenAI-compatible server (vLLM, SGLang, Ollama, ``mtsql serve``), no torch needed.

Token ids in, token ids out, through the legacy completions endpoint: its ``prompt`` may be a list of token ids
(the OpenAI spec allows it), so the server continues exactly the episode's ids and nothing is re-rendered. The
sampled ids come back from whichever the server gives:

1. ``choices[0].token_ids`` (vLLM's ``return_token_ids``; vLLM keeps the stop token there, out of the text);
2. the logprob tokens when they read ``token_id:123`` (vLLM's ``return_tokens_as_token_ids``);
3. otherwise the text, tokenized here: the ids may then differ from what the server sampled, and the
   :class:`Generation` says so with ``retokenized=True``.

When a completion stopped on a stop or end-of-sequence token that the server left out of the ids (servers
returning only text always do), the stop token is appended (vLLM's ``stop_reason`` when it names a token id,
otherwise the tokenizer's eos), so every trajectory ends as the model ended it. A logprob the server did not
give (no logprobs at all, an appended stop token, a retokenized text whose token count differs from the
server's) is ``nan``: unknown, never a silent 0 that would read as probability 1.

Sampling follows :class:`SamplingParams` only: the neutral ``top_k`` (-1), ``min_p`` and ``repetition_penalty``
are sent too, since vLLM otherwise takes them from the checkpoint's generation config. The logprobs are the
server's: vLLM's default (``--logprobs-mode raw_logprobs``) is the model's distribution before temperature, the
same as :mod:`mtsql.backends.base` asks for at temperature 1.

Each call is one HTTP request; at most ``max_concurrency`` are in flight (the server batches them). The openai
client's own retries are off: this backend retries connection errors, timeouts, 408, 429 and 5xx with
exponential backoff and full jitter (honouring ``Retry-After``), and raises :class:`BackendError` at once for
other 4xx answers, which a retry cannot fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from typing import Any, Final

import openai
from openai.types import Completion

from mtsql.backends.base import Backend, BackendError, BackendStats, FinishReason, Generation, SamplingParams
from mtsql.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "http://localhost:8000/v1"
TOKEN_ID_PREFIX: Final = "token_id:"
# Finish reasons as OpenAI, vLLM, SGLang, Ollama and TGI spell them.
_FINISH_REASONS: Final[dict[str, FinishReason]] = {
    "stop": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "length": "length",
}


class OpenAIBackend(Backend):
    """A model served over HTTP by an OpenAI-compatible server; ``model`` is the name the server knows it by.

    ``tokenizer`` (a path or hub id, default ``model``) is the served model's tokenizer, loaded here with
    ``AutoTokenizer``: the engine renders and decodes with it, and it retokenizes text-only answers.
    ``base_url`` and ``api_key`` default to ``OPENAI_BASE_URL`` (else :data:`DEFAULT_BASE_URL`) and
    ``OPENAI_API_KEY`` (else ``"EMPTY"``, which local servers accept). ``timeout`` is per request in seconds;
    ``max_retries`` retries follow a failed request, the n-th after a random delay of up to
    ``min(max_backoff_s, backoff_s * 2**n)``. ``token_prompts=False`` sends the decoded prompt as text, for
    servers that only take strings (Ollama). ``max_model_len`` is the served context length when known.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        tokenizer: str | None = None,
        max_concurrency: int = 64,
        timeout: float = 300.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        token_prompts: bool = True,
        max_model_len: int | None = None,
    ) -> None:
        from transformers import AutoTokenizer, GenerationConfig

        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, not {max_concurrency}")
        if timeout <= 0 or max_retries < 0 or backoff_s < 0 or max_backoff_s < 0:
            raise ConfigError("timeout must be positive; max_retries, backoff_s and max_backoff_s at least 0")
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.token_prompts = token_prompts
        self._max_model_len = max_model_len
        source = tokenizer or model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"cannot load the tokenizer {source!r} ({err}); pass tokenizer= a local path or hub id"
            ) from err
        self._eos_ids = _eos_ids(self.tokenizer.eos_token_id)
        with contextlib.suppress(OSError):  # a checkpoint may end turns with several ids (Qwen3: two)
            self._eos_ids |= _eos_ids(GenerationConfig.from_pretrained(source).eos_token_id)
        self.stats = BackendStats()
        # The HTTP client's connections and the semaphore belong to one event loop; new ones for a new loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: openai.AsyncOpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None

    @property
    def max_model_len(self) -> int | None:
        return self._max_model_len

    async def generate(self, prompt_ids: Sequence[int], params: SamplingParams) -> Generation:
        client, semaphore = self._session()
        request = self._request(prompt_ids, params)
        async with semaphore:
            start = time.perf_counter()
            try:
                completion = await self._complete(client, request)
            finally:
                self.stats.generate_time_s += time.perf_counter() - start
        try:
            generation = self._generation(completion, params)
        except (TypeError, ValueError) as err:  # ids that are not integers, logprobs that do not line up, ...
            raise BackendError(f"{self.base_url} sent a malformed completion: {err}") from err
        self.stats.calls += 1
        self.stats.prompts += 1
        self.stats.generated_tokens += len(generation.token_ids)
        return generation

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.close()
        self._loop = self._client = self._semaphore = None

    def _session(self) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._client is None or self._semaphore is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=0
            )
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._loop = loop
        return self._client, self._semaphore

    def _request(self, prompt_ids: Sequence[int], params: SamplingParams) -> dict[str, Any]:
        """The ``completions.create`` arguments; vLLM/SGLang extensions go in ``extra_body`` (others ignore them)."""
        # Neutral values sent explicitly: vLLM fills the fields a request leaves out from the checkpoint's
        # generation config (Qwen3: top_k 20), and only SamplingParams may decide how to sample.
        extra: dict[str, Any] = {
            "top_k": params.top_k or -1,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "return_token_ids": True,
            "return_tokens_as_token_ids": True,
        }
        prompt: list[int] | str
        if self.token_prompts:
            prompt = list(prompt_ids)
        else:
            # Special tokens stay as text; the server must not add a BOS the prompt already has.
            prompt = self.tokenizer.decode(list(prompt_ids), skip_special_tokens=False)
            extra["add_special_tokens"] = False
        if params.stop_token_ids:
            extra["stop_token_ids"] = list(params.stop_token_ids)
        request: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "logprobs": 1,
            "extra_body": extra,
        }
        if params.seed is not None:
            request["seed"] = params.seed
        return request

    async def _complete(self, client: openai.AsyncOpenAI, request: dict[str, Any]) -> Completion:
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                return await client.completions.create(**request)
            except openai.APIStatusError as err:
                if not _retryable(err.status_code) or attempt == self.max_retries:
                    raise BackendError(f"{self.base_url} answered {err.status_code}: {_message(err)}") from err
                retry_after = _seconds(err.response.headers.get("retry-after"))
                failure = f"{err.status_code} {_message(err)}"
            except openai.APIConnectionError as err:  # timeouts included
                if attempt == self.max_retries:
                    raise BackendError(
                        f"{self.base_url} unreachable after {attempt + 1} attempts: {type(err).__name__}: {err}"
                    ) from err
                failure = f"{type(err).__name__}: {err}"
            except openai.OpenAIError as err:
                raise BackendError(f"{self.base_url}: {type(err).__name__}: {err}") from err
            delay = random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.max_backoff_s))
            log.warning("%s: %s; retry %d/%d in %.2f s", self.base_url, failure, attempt + 1, self.max_retries, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _generation(self, completion: Completion, params: SamplingParams) -> Generation:
        if not completion.choices:
            raise BackendError(f"{self.base_url} returned no completion")
        choice = completion.choices[0]
        finish = _FINISH_REASONS.get(str(choice.finish_reason))
        if finish is None:
            raise BackendError(f"{self.base_url} finished with {choice.finish_reason!r}, not stop or length")
        served_logprobs: list[float] = []
        tokens: list[str] = []
        if choice.logprobs is not None:
            tokens = list(choice.logprobs.tokens or ())
            served_logprobs = [math.nan if lp is None else float(lp) for lp in choice.logprobs.token_logprobs or ()]
        retokenized = False
        # vLLM's extra fields, kept by the openai package's models as attributes
        served_ids: list[int] | None = getattr(choice, "token_ids", None)
        if served_ids is not None:
            token_ids = [int(i) for i in served_ids]
        elif tokens and all(token.startswith(TOKEN_ID_PREFIX) for token in tokens):
            token_ids = [int(token.removeprefix(TOKEN_ID_PREFIX)) for token in tokens]
        else:
            token_ids = self.tokenizer.encode(choice.text, add_special_tokens=False)
            retokenized = True
        appended = False
        if finish == "stop" and (not token_ids or token_ids[-1] not in self._eos_ids | set(params.stop_token_ids)):
            stop_reason = getattr(choice, "stop_reason", None)
            stop_id = stop_reason if type(stop_reason) is int else self.tokenizer.eos_token_id
            if stop_id is not None:
                token_ids.append(stop_id)
                appended = True
        if len(served_logprobs) == len(token_ids):
            logprobs = served_logprobs
        elif appended and len(served_logprobs) == len(token_ids) - 1:
            logprobs = [*served_logprobs, math.nan]
        else:
            logprobs = [math.nan] * len(token_ids)
        return Generation(token_ids, logprobs, finish, retokenized=retokenized)


def _eos_ids(value: int | list[int] | None) -> set[int]:
    if value is None:
        return set()
    return {value} if isinstance(value, int) else set(value)


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (its HTTP-date form is not worth parsing here)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _message(err: openai.APIStatusError) -> str:
    """The server's own message (openai 1.x hands over the ``error`` object as the body, later versions all of it;
    a body that is not JSON is its text)."""
    body = err.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    if isinstance(body, str) and body.strip():
        return body.strip()[:200]
    return err.message
