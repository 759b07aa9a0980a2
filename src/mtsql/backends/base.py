"""The policy interface every model backend implements: token ids in, token ids and logprobs out.

The rollout engine renders prompts itself and keeps every episode as one growing list of token ids, so a
backend never sees chat messages: it continues a list of token ids and returns exactly the ids it sampled
(the stop token included when it stopped on one), with one logprob each. That is what makes trajectories
token-exact: nothing is ever re-tokenized between steps.

:meth:`Backend.generate` is a coroutine taking one prompt, so the engine can keep many episodes in flight
with plain ``asyncio``. Local engines (transformers, vLLM's offline engine) are batched:
:class:`BatchedBackend` gathers the prompts that are waiting into one batch (continuous batching at the
step level) and runs it in a worker thread, so the event loop stays free for the environment's steps.

``logprobs`` are those of the sampled tokens under the temperature-scaled distribution (``log_softmax(logits
/ temperature)``; the plain distribution when ``temperature`` is 0), without top-p/top-k truncation: what
TRL's GRPO trainer computes for the same tokens, so they serve as the old policy's logprobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mtsql.errors import ConfigError, MtsqlError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class FinishReason(StrEnum):
    """Why a generation ended: a stop token, or the token budget."""

    STOP = "stop"
    LENGTH = "length"


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to sample one completion. ``temperature`` 0 is greedy; ``top_k`` 0 and ``top_p`` 1 disable them.

    ``stop_token_ids`` end a completion besides the model's own end-of-sequence ids (the backend adds those);
    ``seed`` seeds the backend's sampler where it supports per-request seeds.
    """

    max_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, not {self.max_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be at least 0, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be at least 0, not {self.top_k}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Generation:
    """One completion: the sampled ``token_ids`` (ending with the stop token when ``finish_reason`` is
    ``stop``), one logprob per token, and ``retokenized`` when the backend could only get text back and the ids
    come from tokenizing it (then the trajectory is not token-exact, and says so)."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: FinishReason
    retokenized: bool = False

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError(f"{len(self.token_ids)} token ids but {len(self.logprobs)} logprobs")


@dataclass(slots=True)
class BackendStats:
    """What the backend spent: calls (batches for batched backends), prompts, generated tokens, seconds inside
    the model's generate (the engine's overhead is measured against this)."""

    calls: int = 0
    prompts: int = 0
    generated_tokens: int = 0
    generate_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BackendError(MtsqlError, RuntimeError):
    """A backend could not produce a completion (server unreachable after retries, bad response, ...)."""


class Backend(ABC):
    """A model that continues token ids. Subclasses set ``name``, ``model`` (what was loaded: a path, a hub
    id or a served model's name) and ``tokenizer`` (the engine renders and decodes with it)."""

    name: str
    model: str
    tokenizer: PreTrainedTokenizerBase
    stats: BackendStats

    @property
    def max_model_len(self) -> int | None:
        """The longest sequence (prompt and completion) the model takes, when known."""
        return None

    @abstractmethod
    async def generate(self, prompt_ids: Sequence[int], params: SamplingParams) -> Generation:
        """Continue ``prompt_ids``; raises :class:`BackendError` when no completion can be had."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release what the backend holds (connections, worker threads)."""


@dataclass(slots=True)
class _Request:
    prompt_ids: list[int]
    future: asyncio.Future[Generation] = field(repr=False)


def check_batch_size(max_batch_size: int) -> None:
    """Refuse a batch size below 1 (batched backends check it before loading anything)."""
    if max_batch_size < 1:
        raise ConfigError(f"max_batch_size must be at least 1, not {max_batch_size}")


class BatchedBackend(Backend):
    """A backend whose engine generates a batch at a time: requests with the same :class:`SamplingParams`
    that wait together go into one batch of at most ``max_batch_size``, run by :meth:`generate_batch` in a
    worker thread (in the event loop's thread when ``generate_inline``). A request arriving while a batch runs
    waits for the next one."""

    max_batch_size: int = 64
    #: Run :meth:`generate_batch` in the event loop's own thread instead of a worker thread (the loop waits).
    generate_inline: bool = False

    def __init__(self) -> None:
        self.stats = BackendStats()
        self._queues: dict[SamplingParams, list[_Request]] = {}
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None

    @abstractmethod
    def generate_batch(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        """Continue every prompt (blocking); one :class:`Generation` per prompt, in order."""

    async def generate(self, prompt_ids: Sequence[int], params: SamplingParams) -> Generation:
        # Checked before queueing: a prompt that cannot be continued fails alone, not the batch it would join.
        limit = self.max_model_len
        if not prompt_ids:
            raise BackendError(f"{self.name}: empty prompt, there is nothing to continue")
        if limit is not None and len(prompt_ids) >= limit:
            raise BackendError(f"{self.name}: a prompt of {len(prompt_ids)} tokens leaves no room in {limit} positions")
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._worker.get_loop() is not loop:
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._work())
        future: asyncio.Future[Generation] = loop.create_future()
        self._queues.setdefault(params, []).append(_Request(list(prompt_ids), future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _work(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # One more turn of the loop, so episodes that are about to ask join this batch.
            await asyncio.sleep(0)
            while self._queues:
                params = next(iter(self._queues))
                queue = self._queues[params]
                batch, rest = queue[: self.max_batch_size], queue[self.max_batch_size :]
                if rest:
                    self._queues[params] = rest
                else:
                    del self._queues[params]
                batch = [request for request in batch if not request.future.cancelled()]
                if not batch:
                    continue
                start = time.perf_counter()
                try:
                    prompts = [r.prompt_ids for r in batch]
                    if self.generate_inline:
                        results = self.generate_batch(prompts, params)
                    else:
                        results = await asyncio.to_thread(self.generate_batch, prompts, params)
                except Exception as err:  # handed to every waiting episode, never lost
                    for request in batch:
                        if not request.future.done():
                            request.future.set_exception(BackendError(f"{self.name} generation failed: {err}"))
                    continue
                self.stats.calls += 1
                self.stats.prompts += len(batch)
                self.stats.generate_time_s += time.perf_counter() - start
                for request, result in zip(batch, results, strict=True):
                    self.stats.generated_tokens += len(result.token_ids)
                    if not request.future.done():
                        request.future.set_result(result)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None


def token_ids(value: int | Sequence[int] | None) -> tuple[int, ...]:
    """A config's token-id setting (one id, a list of them, or none) as a tuple of ids."""
    if value is None:
        return ()
    return (value,) if isinstance(value, int) else tuple(value)


def end_and_pad_ids(generation_config: Any, tokenizer: Any, *, model: str = "the model") -> tuple[tuple[int, ...], int]:
    """The end-of-sequence ids and the pad id of a Hugging Face model, as every backend sampling one decides them:
    the end ids are the generation config's (else the tokenizer's), the pad id the tokenizer's (else the generation
    config's, else the first end id). Raises ``ValueError`` when ``model`` defines neither."""
    eos = token_ids(generation_config.eos_token_id) or token_ids(tokenizer.eos_token_id)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else generation_config.pad_token_id
    if pad is None and not eos:
        raise ValueError(f"{model} defines neither a pad token nor an end-of-sequence token")
    return eos, pad if pad is not None else eos[0]


class TokenizerOnly(Backend):
    """A tokenizer without a model, for episodes whose messages a scripted policy writes (gold trajectories):
    building such data needs no weights. :meth:`generate` raises :class:`BackendError`."""

    name = "scripted"

    def __init__(self, tokenizer: str | PreTrainedTokenizerBase, *, max_model_len: int | None = None) -> None:
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            from mtsql.models.packaged import resolve_model

            tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer))
        self.tokenizer = tokenizer
        self.model = str(getattr(tokenizer, "name_or_path", "") or "tokenizer")
        self.stats = BackendStats()
        self._max_model_len = max_model_len

    @property
    def max_model_len(self) -> int | None:
        return self._max_model_len

    async def generate(self, prompt_ids: Sequence[int], params: SamplingParams) -> Generation:
        raise BackendError("this backend has a tokenizer and no model: episodes on it need a scripted policy")
