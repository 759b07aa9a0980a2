"""The ``transformers`` backend: a local checkpoint or hub id run with ``model.generate`` on CPU or GPU.

It is the backend that runs anywhere (laptops, CI, the tiny test model) and the reference the others are checked
against, so it is exact rather than fast:

- **Batches are left-padded**, with the attention mask giving every row its own positions, so a prompt continues
  exactly as it would alone (greedy results do not depend on the batch).
- **Logprobs are recorded while sampling**: a logits processor placed before the sampling warpers sees the raw
  logits of every step and keeps ``log_softmax(logits / temperature)`` (plain logits for greedy) of the token that
  step sampled. Keeping one step at a time, not ``output_logits``' whole (steps × batch × vocabulary) history, is
  what lets a 150k-token vocabulary generate long completions in large batches.
- **Only :class:`SamplingParams` decide how to sample**: the checkpoint's generation config keeps only its token
  ids (Qwen3 ships ``top_k=20, top_p=0.95``; any repetition penalty or such would change the distribution behind
  the logprobs), as vLLM uses an explicit request's parameters and nothing else.
- **Completions are exact**: each row is cut after its first stop token (the generation config's end-of-sequence
  ids plus ``stop_token_ids``), or at its own token limit, so no padding or post-stop token leaks out.
- **The context is respected per row**: a completion gets at most ``max_model_len - len(prompt)`` tokens
  (``finish_reason`` ``length`` when cut there), enforced by a stopping criterion per row, so a long prompt in the
  batch does not shorten the others'.
- **Sampling is seeded**: every batch draws from torch's generator seeded with the batch's seed, inside a forked
  random state (the process's own stays untouched): ``params.seed`` when given, else the next seed of a sequence
  started from the ``seed`` option at construction. A run is reproducible given the same requests in the same
  batches; a row's sample depends on what it was batched with (the generator is shared by the batch's rows).

torch and transformers come with the ``[train]`` extra.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from os import PathLike
from typing import Any

from mtsql.backends.base import BatchedBackend, Generation, SamplingParams, check_batch_size, end_and_pad_ids
from mtsql.errors import ConfigError

try:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
        LogitsProcessor,
        LogitsProcessorList,
        StoppingCriteria,
        StoppingCriteriaList,
    )
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"the transformers backend needs {err.name or 'torch and transformers'}: install mtsql[train]"
    ) from err


class CausalLMBackend(BatchedBackend):
    """Exact batched sampling (left padding, per-row limits, logprobs recorded while sampling, seeded) on a Hugging
    Face causal LM that the caller holds: :class:`TransformersBackend` loads one from a checkpoint, a GRPO trainer
    lends its own (``mtsql.train.rl.rollout.TrainerModelBackend``).

    ``hf_model`` may be ``None`` until it generates (set it then); ``generation_config`` (the model's) and
    ``tokenizer`` give the end-of-sequence and pad ids (:func:`~mtsql.backends.base.end_and_pad_ids`), and
    :attr:`generation_config` is a config holding only those ids, for the model while this backend samples with it.
    ``model`` names it; ``device`` is where its inputs go; ``max_model_len`` bounds prompt and completion.
    """

    name = "transformers"

    def __init__(
        self,
        hf_model: Any,
        tokenizer: Any,
        *,
        model: str,
        device: torch.device,
        generation_config: Any,
        max_batch_size: int = 32,
        seed: int | None = 0,
        max_model_len: int | None = None,
    ) -> None:
        super().__init__()
        check_batch_size(max_batch_size)
        self.model = model
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.device = device
        self.max_batch_size = max_batch_size
        self.eos_token_ids, self.pad_token_id = end_and_pad_ids(generation_config, tokenizer, model=model)
        self.generation_config = GenerationConfig(
            bos_token_id=generation_config.bos_token_id,
            eos_token_id=list(self.eos_token_ids),
            pad_token_id=self.pad_token_id,
        )
        self._max_model_len = max_model_len
        self._seeds = random.Random(seed)

    @property
    def max_model_len(self) -> int | None:
        return self._max_model_len

    def generate_batch(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        if not prompts:
            return []
        limits = [self._completion_limit(len(prompt), params) for prompt in prompts]
        width = max(len(prompt) for prompt in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[row, width - len(prompt) :] = 1

        stop_ids = tuple(dict.fromkeys((*self.eos_token_ids, *params.stop_token_ids)))
        sampling: dict[str, Any] = {"do_sample": params.temperature > 0}
        if params.temperature > 0:
            sampling.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        config = GenerationConfig(
            max_new_tokens=max(limits), eos_token_id=list(stop_ids), pad_token_id=self.pad_token_id, **sampling
        )
        recorder = _LogprobRecorder(params.temperature)
        seed = params.seed if params.seed is not None else self._seeds.getrandbits(63)
        devices = range(torch.cuda.device_count()) if self.device.type == "cuda" else ()
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            output = self.hf_model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                generation_config=config,
                logits_processor=LogitsProcessorList([recorder]),
                stopping_criteria=StoppingCriteriaList([_RowLimits(width, limits, self.device)]),
            )
            completions = output[:, width:]
            logprobs = recorder.finish(completions).tolist()
        completions_ids = completions.tolist()
        stops = set(stop_ids)
        return [
            _cut(ids[:limit], row_logprobs[:limit], stops)
            for ids, row_logprobs, limit in zip(completions_ids, logprobs, limits, strict=True)
        ]

    def _completion_limit(self, prompt_length: int, params: SamplingParams) -> int:
        if prompt_length == 0:
            raise ValueError("empty prompt: there is nothing to continue")
        if self._max_model_len is None:
            return params.max_tokens
        room = self._max_model_len - prompt_length
        if room < 1:
            raise ValueError(f"a prompt of {prompt_length} tokens leaves no room in {self._max_model_len} positions")
        return min(params.max_tokens, room)


class TransformersBackend(CausalLMBackend):
    """Generate with a Hugging Face causal LM loaded from ``model`` (a local path or a hub id).

    ``device``: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; ``dtype``:
    ``"auto"`` (the checkpoint's) or a torch dtype or its name (``"bfloat16"``); ``max_batch_size``: most prompts a
    batch; ``seed``: starts the sequence of batch seeds (``None``: from the OS); ``max_model_len``: a context shorter
    than the model's ``max_position_embeddings`` (to bound memory); ``attn_implementation``: passed to
    ``from_pretrained`` (``"sdpa"``, ``"eager"``, ``"flash_attention_2"``, ...).
    """

    name = "transformers"

    def __init__(
        self,
        model: str | PathLike[str],
        *,
        device: str = "auto",
        dtype: str | torch.dtype = "auto",
        max_batch_size: int = 32,
        seed: int | None = 0,
        max_model_len: int | None = None,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
    ) -> None:
        check_batch_size(max_batch_size)  # before loading anything
        name = str(model)
        target = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        # Loaded straight onto the device (no full copy in host memory first).
        load_options: dict[str, Any] = {
            "dtype": _torch_dtype(dtype),
            "device_map": target,
            "trust_remote_code": trust_remote_code,
        }
        if attn_implementation is not None:
            load_options["attn_implementation"] = attn_implementation
        hf_model = AutoModelForCausalLM.from_pretrained(name, **load_options).eval()
        model_len = getattr(hf_model.config.get_text_config(), "max_position_embeddings", None)
        if max_model_len is not None and model_len is not None and max_model_len > model_len:
            raise ConfigError(f"max_model_len {max_model_len} exceeds the model's {model_len} positions")
        super().__init__(
            hf_model,
            tokenizer,
            model=name,
            device=target,
            generation_config=hf_model.generation_config,
            max_batch_size=max_batch_size,
            seed=seed,
            max_model_len=max_model_len if max_model_len is not None else model_len,
        )
        hf_model.generation_config = self.generation_config


class _LogprobRecorder(LogitsProcessor):
    """Records each sampled token's logprob, first in the processor list so it sees the raw logits. Step k's
    distribution is kept until step k+1, whose input ends with the token step k sampled; the last step's is
    gathered by :meth:`finish` from the returned sequences."""

    def __init__(self, temperature: float) -> None:
        self.scale = temperature if temperature > 0 else 1.0
        self.steps: list[torch.Tensor] = []
        self.pending: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.pending is not None:
            self.steps.append(self.pending.gather(-1, input_ids[:, -1:]).squeeze(-1))
        self.pending = torch.log_softmax(scores.float() / self.scale, dim=-1)
        return scores

    def finish(self, completions: torch.Tensor) -> torch.Tensor:
        """The (batch, steps) logprobs of ``completions``, the generated part of the returned sequences."""
        steps = completions.shape[1]
        if len(self.steps) < steps:
            assert self.pending is not None and len(self.steps) == steps - 1
            self.steps.append(self.pending.gather(-1, completions[:, -1:]).squeeze(-1))
        return torch.stack(self.steps[:steps], dim=1)


class _RowLimits(StoppingCriteria):
    """Ends each row at its own number of new tokens (``max_new_tokens`` is one number for the whole batch)."""

    def __init__(self, prompt_width: int, limits: Sequence[int], device: torch.device) -> None:
        self.prompt_width = prompt_width
        self.limits = torch.tensor(limits, dtype=torch.long, device=device)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return (input_ids.shape[1] - self.prompt_width) >= self.limits


def _cut(ids: list[int], logprobs: list[float], stops: set[int]) -> Generation:
    """The completion up to and including its first stop token; without one it ran out of tokens."""
    for position, token in enumerate(ids):
        if token in stops:
            return Generation(ids[: position + 1], logprobs[: position + 1], "stop")
    return Generation(ids, logprobs, "length")


def _torch_dtype(dtype: str | torch.dtype) -> str | torch.dtype:
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ConfigError(f"unknown dtype {dtype!r}: use 'auto' or a torch dtype such as 'bfloat16'")
    return resolved
