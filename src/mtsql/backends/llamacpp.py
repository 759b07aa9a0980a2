"""The ``llamacpp`` backend: a GGUF file run by llama.cpp (``llama-cpp-python``) on the CPU, the fast path for
laptops and CPU servers.

Two things make it fast where the ``transformers`` backend is slow on a CPU: llama.cpp's quantized kernels
(a Q4 file is computed as Q4, not dequantized to float32), and **prefix reuse**. An episode's prompt at each
step is its previous prompt plus what the model wrote and the environment's reply, so the backend keeps a few
llama.cpp contexts (``slots``), each with the KV cache of the sequence it last ran; a request goes to the slot
whose cached tokens share the longest prefix with it, only the rest is evaluated (the ``prefill_tokens_saved``
statistic counts the difference). With at least as many slots as episodes in flight, every step after an
episode's first evaluates only the new tokens. An episode's first prompt (the system text, the tools and the
database's schema) is mostly the same as other episodes' on the same database: when another slot holds a
longer shared prefix than the chosen one, by more than ``copy_threshold`` tokens, its state (KV cache) is copied
over first (``prefill_tokens_copied``), which takes a fraction of the time evaluating those tokens would. The
contexts share the model's weights through the file's memory map.

**Sampling is mtsql's, not llama.cpp's**: the logits of the last position are read after each evaluation and
sampled here with :class:`SamplingParams`' meaning and nothing else (temperature, then top-k, then top-p, as
the ``transformers`` backend does; no repetition penalty or min-p, which llama.cpp's default sampler chain
adds), from a numpy generator seeded per batch like the other backends' (``params.seed``, else the next seed
of a sequence started from ``seed``). The logprob recorded for a token is that of the temperature-scaled,
untruncated distribution (the plain one when greedy), as the other backends record it.

**Quantized logprobs are not the trainer's.** The ``transformers`` backend and the trainers load the same file
dequantized to float32; llama.cpp computes with the quantized blocks (and 8-bit activations in its CPU
matmuls), so its logits differ from the float32 model's by small amounts, and its logprobs are not the
trainer's. Evaluation and self-taught sampling use no logprobs, and GRPO generates with the model it trains (or
vLLM), so the recorded ones only matter to code that takes importance ratios against them. And a
model mtsql trains is saved as a float32 checkpoint, not a GGUF: this backend runs the packaged files and
GGUF files made elsewhere.

**llama.cpp's extra CPU buffer types are off by default** (``extra_buffers=False``): they repack the weights
for AMX and other kernels, and the AMX kernels crash the process (a segmentation fault on the first prompt of
more than one token) on virtual machines whose CPU advertises AMX without the guest being allowed to use it, as
on this project's machines. ``--backend-option extra_buffers=true`` turns them on where they work.

``llama-cpp-python`` comes with the ``[llamacpp]`` extra (it compiles llama.cpp: several minutes).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from mtsql.backends.base import BatchedBackend, Generation, SamplingParams
from mtsql.errors import ConfigError

try:
    import llama_cpp
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("the llamacpp backend needs llama-cpp-python: install mtsql[llamacpp]") from err

#: The context a slot holds when neither ``n_ctx`` nor ``max_model_len`` says (each slot's KV cache is this long).
DEFAULT_CONTEXT = 8192


@dataclass(slots=True)
class _Slot:
    """One llama.cpp context and when it was last used (the least recently used slot is taken first)."""

    llm: Any
    used: int = 0

    @property
    def cached(self) -> np.ndarray:
        return self.llm.input_ids[: self.llm.n_tokens]


class LlamaCppBackend(BatchedBackend):
    """Generate with llama.cpp from ``model``: a GGUF file, a packaged model's name (``mtsql models list``), or a
    checkpoint fine-tuned from one with ``gguf_like`` naming that one (exported once, :mod:`mtsql.models.to_gguf`).

    ``slots``: llama.cpp contexts kept, each with one sequence's KV cache (use at least the rollout's
    concurrency for full prefix reuse; it is also the most prompts a batch takes); ``n_ctx``/``max_model_len``:
    tokens per context (default: the model's training context, at most 8,192); ``n_threads``: CPU threads
    (default: all cores); ``n_batch``: prompt tokens evaluated per llama.cpp call; ``seed``: starts the
    sequence of batch seeds; ``tokenizer``: a tokenizer folder or hub id replacing the file's own;
    ``extra_buffers``: llama.cpp's repacked weight buffers (AMX and others; see the module docstring);
    ``copy_threshold``: the fewest tokens of a longer prefix in another slot worth copying its state for.
    """

    name = "llamacpp"
    # In the event loop's thread: from a worker thread llama.cpp (OpenMP build) decoded slower than from the thread
    # that loaded it (bench_cpu_backends.py: 67.4 s against 53.7 s), and on a CPU the loop has nothing to overlap.
    generate_inline = True

    def __init__(
        self,
        model: str | PathLike[str],
        *,
        slots: int = 4,
        n_ctx: int | None = None,
        max_model_len: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int | None = 0,
        tokenizer: str | None = None,
        extra_buffers: bool = False,
        copy_threshold: int = 512,
        gguf_like: str | None = None,
    ) -> None:
        super().__init__()
        from mtsql.models.packaged import load_gguf_tokenizer, packaged_entry_of, resolve_gguf

        if slots < 1:
            raise ConfigError(f"slots must be at least 1, not {slots}")
        if n_ctx is not None and max_model_len is not None and n_ctx != max_model_len:
            raise ConfigError("give n_ctx or max_model_len, not both")
        self.model = str(model)
        if os.path.isdir(self.model):  # a fine-tuned checkpoint: its weights in the layout of the GGUF it came from
            if gguf_like is None:
                raise ConfigError(
                    f"{self.model} is a checkpoint folder: give gguf_like=<the packaged model or .gguf it was trained "
                    "from> to export it to GGUF"
                )
            from mtsql.models.to_gguf import checkpoint_gguf

            gguf = checkpoint_gguf(self.model, gguf_like)
            tokenizer = tokenizer or self.model  # the tokenizer (and chat template) the checkpoint was trained with
        else:
            gguf = resolve_gguf(self.model)
        entry = packaged_entry_of(gguf)  # its chat template and end-of-turn token, for a packaged file
        if tokenizer is not None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        else:
            self.tokenizer = load_gguf_tokenizer(gguf, entry)
        threads = n_threads or os.cpu_count() or 1
        context = n_ctx or max_model_len

        def load(n: int) -> Any:
            with _model_params(use_extra_bufts=extra_buffers):
                return llama_cpp.Llama(
                    model_path=str(gguf),
                    n_ctx=n,
                    n_batch=n_batch,
                    n_threads=threads,
                    n_threads_batch=threads,
                    logits_all=False,
                    verbose=False,
                )

        first = load(context or DEFAULT_CONTEXT)
        trained = llama_cpp.llama_model_n_ctx_train(first.model)
        if context is None and trained < DEFAULT_CONTEXT:
            first = load(trained)
        elif context is not None and context > trained:
            raise ConfigError(f"max_model_len {context} exceeds the model's {trained} positions")
        self._max_model_len: int = first.n_ctx()
        self._slots = [_Slot(first), *(_Slot(load(self._max_model_len)) for _ in range(slots - 1))]
        self.max_batch_size = slots
        self.n_vocab: int = first.n_vocab()
        if len(self.tokenizer) > self.n_vocab:
            raise ValueError(f"the tokenizer has {len(self.tokenizer)} tokens, the model {self.n_vocab}")
        extra = self.tokenizer.convert_tokens_to_ids(list(entry.extra_eos)) if entry else []
        self.eos_token_ids: tuple[int, ...] = tuple(sorted({i for i in (first.token_eos(), *extra) if i >= 0}))
        self._seeds = random.Random(seed)
        self._clock = 0
        self.copy_threshold = copy_threshold
        #: Prompt tokens not evaluated (found in the slot's KV cache, or copied from another slot's); of those, the
        #: copied ones; prompt tokens evaluated.
        self.prefill_tokens_saved = 0
        self.prefill_tokens_copied = 0
        self.prefill_tokens = 0

    @property
    def max_model_len(self) -> int | None:
        return self._max_model_len

    def generate_batch(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        seed = params.seed if params.seed is not None else self._seeds.getrandbits(63)
        rng = np.random.default_rng(seed)
        stops = set(self.eos_token_ids) | set(params.stop_token_ids)
        taken: set[int] = set()
        results = []
        for prompt in prompts:
            index = self._pick(prompt, taken)
            taken.add(index)
            results.append(self._generate(self._slots[index], list(prompt), params, stops, rng))
        return results

    def _pick(self, prompt: Sequence[int], taken: set[int]) -> int:
        """The free slot sharing the longest prefix with ``prompt``; among equals, the least recently used."""
        free = [i for i in range(len(self._slots)) if i not in taken]
        return max(free, key=lambda i: (_shared(self._slots[i], prompt), -self._slots[i].used))

    def _generate(
        self, slot: _Slot, prompt: list[int], params: SamplingParams, stops: set[int], rng: np.random.Generator
    ) -> Generation:
        if not prompt:
            raise ValueError("empty prompt: there is nothing to continue")
        room = self._max_model_len - len(prompt)
        if room < 1:
            raise ValueError(f"a prompt of {len(prompt)} tokens leaves no room in {self._max_model_len} positions")
        limit = min(params.max_tokens, room)
        self._clock += 1
        slot.used = self._clock
        llm = slot.llm
        keep = _shared(slot, prompt)
        donor = max(self._slots, key=lambda other: _shared(other, prompt) if other is not slot else -1)
        shared = _shared(donor, prompt) if donor is not slot else 0
        if shared - keep > self.copy_threshold:
            llm.load_state(donor.llm.save_state())
            self.prefill_tokens_copied += min(shared, len(prompt) - 1) - keep
            keep = shared
        keep = min(keep, len(prompt) - 1)  # the last prompt token is evaluated again: its logits are needed
        llm.n_tokens = keep  # eval() drops the KV cache from here on
        llm.eval(prompt[keep:])
        self.prefill_tokens_saved += keep
        self.prefill_tokens += len(prompt) - keep
        ids: list[int] = []
        logprobs: list[float] = []
        while True:
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(self.n_vocab,))
            token, logprob = sample(logits, params, rng)
            ids.append(token)
            logprobs.append(logprob)
            if token in stops:
                return Generation(ids, logprobs, "stop")
            if len(ids) >= limit:
                return Generation(ids, logprobs, "length")
            llm.eval([token])


_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def _model_params(**fields: Any) -> Iterator[None]:
    """Model parameters ``Llama()`` does not take as arguments: its constructor starts from
    ``llama_model_default_params()``, which returns them set here while a model loads."""
    module = llama_cpp.llama_cpp
    default = module.llama_model_default_params

    def params() -> Any:
        value = default()
        for name, setting in fields.items():
            setattr(value, name, setting)
        return value

    with _PARAMS_LOCK:
        module.llama_model_default_params = params
        try:
            yield
        finally:
            module.llama_model_default_params = default


def _shared(slot: _Slot, prompt: Sequence[int]) -> int:
    """How many leading tokens of ``prompt`` the slot's KV cache holds."""
    cached = slot.cached
    n = min(len(cached), len(prompt))
    if n == 0:
        return 0
    differ = np.flatnonzero(cached[:n] != np.asarray(prompt[:n], dtype=cached.dtype))
    return int(differ[0]) if differ.size else n


def sample(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> tuple[int, float]:
    """One token from ``logits`` with ``params``' temperature, top-k and top-p (in that order), and its logprob
    under the temperature-scaled, untruncated distribution (the plain one when greedy)."""
    logits = logits.astype(np.float64)
    if params.temperature == 0:
        token = int(np.argmax(logits))
        return token, float(logits[token] - _logsumexp(logits))
    scaled = logits / params.temperature
    logp = scaled - _logsumexp(scaled)
    keep = np.ones(scaled.shape, dtype=bool)
    if 0 < params.top_k < scaled.size:
        kth = np.partition(scaled, -params.top_k)[-params.top_k]
        keep &= scaled >= kth
    if params.top_p < 1.0:
        order = np.argsort(-logp, kind="stable")
        probs = np.exp(logp[order]) * keep[order]
        probs /= probs.sum()
        before = np.cumsum(probs) - probs  # the mass of the tokens ranked above each one
        nucleus = np.zeros(scaled.shape, dtype=bool)
        nucleus[order[before < params.top_p]] = True
        keep &= nucleus
    weights = np.where(keep, np.exp(logp - logp[keep].max()), 0.0)
    cumulative = np.cumsum(weights)
    token = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    token = min(token, scaled.size - 1)
    return token, float(logp[token])


def _logsumexp(values: np.ndarray) -> float:
    top = float(values.max())
    return top + float(np.log(np.exp(values - top).sum()))
