"""The ``vllm`` backend: vLLM's offline engine (``vllm.LLM``) on one or more GPUs, for rollouts at scale.

The engine sees token ids only, and gives back exactly what it sampled:

- **Ids in, ids out**: prompts go in as ``TokensPrompt(prompt_token_ids=...)`` and completions come back as token
  ids with ``detokenize=False``, so no text is ever re-tokenized. A completion that stopped on a stop token ends
  with it (vLLM keeps stop tokens in ``token_ids``).
- **The same stop set as the transformers backend**: the checkpoint's generation-config end-of-sequence ids are
  put in every request's ``stop_token_ids`` with ``params.stop_token_ids`` (vLLM itself adds them only when its
  ``generation_config`` option is ``"auto"``).
- **Logprobs of the sampled distribution**: the engine runs with ``logprobs_mode="processed_logprobs"`` (what
  TRL's GRPO trainer asks of vLLM), and each request asks for ``logprobs=0``: the sampled token's logprob alone,
  under ``log_softmax(logits / temperature)`` (the plain logits when greedy), as the transformers backend gives
  them. One difference remains: vLLM's processed logprobs are taken after top-k/top-p, renormalised over the
  tokens kept, so with ``top_k`` > 0 or ``top_p`` < 1 they are those of the truncated distribution (as TRL gets
  them from vLLM too); with neither, the usual RL setting, both backends agree.
- **Each completion within the context**: a request's ``max_tokens`` is cut to ``max_model_len - len(prompt)``,
  so a completion that reaches the end of the context stops there with ``finish_reason`` ``length``.
- **Seeds**: ``seed`` seeds the engine; ``params.seed`` becomes vLLM's per-request seed, so a prompt with a seed
  gives the same completion whatever it is batched with (and identical prompts with one seed, identical ones).
- **Batching**: :class:`BatchedBackend` hands vLLM every prompt that waits; vLLM schedules them with its own
  continuous batching, and prefix caching (on by default) reuses the KV cache of the growing dialogue that each
  episode's next prompt extends.

vLLM comes with the ``[vllm]`` extra (a CUDA GPU needed); it is imported when the backend is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

from mtsql.backends.base import BatchedBackend, Generation, SamplingParams, check_batch_size, token_ids

if TYPE_CHECKING:
    from vllm import LLM, RequestOutput


class VLLMEngineBackend(BatchedBackend):
    """Requests on a ``vllm.LLM`` that the caller holds (built with ``logprobs_mode="processed_logprobs"``; see the
    module docstring): :class:`VLLMBackend` builds one, a GRPO trainer lends the one TRL colocates
    (``mtsql.train.rl.rollout.ColocatedVLLMBackend``). ``eos_token_ids`` join every request's stop ids;
    ``max_batch_size`` is the most prompts handed to the engine at once."""

    name = "vllm"

    def __init__(
        self, llm: LLM, tokenizer: Any, *, model: str, eos_token_ids: Sequence[int], max_batch_size: int = 256
    ) -> None:
        super().__init__()
        check_batch_size(max_batch_size)
        self.llm = llm
        self.tokenizer = tokenizer
        self.model = model
        self.max_batch_size = max_batch_size
        self.eos_token_ids: tuple[int, ...] = tuple(eos_token_ids)
        self._max_model_len: int = llm.llm_engine.model_config.max_model_len

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    def generate_batch(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        import vllm
        from vllm.inputs import TokensPrompt

        if not prompts:
            return []
        stop_ids = list(dict.fromkeys((*self.eos_token_ids, *params.stop_token_ids)))
        requests = []
        for prompt in prompts:
            room = self._max_model_len - len(prompt)
            if not prompt or room < 1:
                raise ValueError(f"a prompt of {len(prompt)} tokens cannot be continued in {self._max_model_len}")
            requests.append(
                vllm.SamplingParams(
                    n=1,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=params.top_k or -1,  # -1 turns top-k off in every vLLM version (newer ones take 0 too)
                    max_tokens=min(params.max_tokens, room),
                    stop_token_ids=stop_ids,
                    seed=params.seed,
                    logprobs=0,
                    detokenize=False,
                )
            )
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(prompt)) for prompt in prompts],
            sampling_params=requests,
            use_tqdm=False,
        )
        return [_generation(output) for output in outputs]


class VLLMBackend(VLLMEngineBackend):
    """Generate with ``vllm.LLM`` serving ``model`` (a local path or a hub id).

    ``gpu_memory_utilization``, ``max_model_len`` (default: the model's), ``dtype``, ``seed``,
    ``tensor_parallel_size``, ``enable_prefix_caching`` and ``trust_remote_code`` are vLLM's engine options, and so
    is anything in ``engine_args`` (``enforce_eager=True``, ``quantization=...``); ``max_batch_size`` is the most
    prompts handed to the engine at once.
    """

    name = "vllm"

    def __init__(
        self,
        model: str | PathLike[str],
        *,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
        seed: int = 0,
        tensor_parallel_size: int = 1,
        enable_prefix_caching: bool = True,
        max_batch_size: int = 256,
        trust_remote_code: bool = False,
        **engine_args: Any,
    ) -> None:
        try:
            import vllm
            from transformers import AutoTokenizer, GenerationConfig
        except ImportError as err:
            raise ImportError(
                f"the vllm backend needs {err.name or 'vllm'}: install mtsql[vllm] (on a machine with a CUDA GPU)"
            ) from err
        check_batch_size(max_batch_size)  # before building the engine
        name = str(model)
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        try:
            eos = GenerationConfig.from_pretrained(name).eos_token_id
        except OSError:  # no generation config: the tokenizer's end-of-sequence token
            eos = None
        if eos is None:
            eos = tokenizer.eos_token_id
        llm = vllm.LLM(
            model=name,
            dtype=dtype,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            enable_prefix_caching=enable_prefix_caching,
            trust_remote_code=trust_remote_code,
            logprobs_mode="processed_logprobs",
            **engine_args,
        )
        super().__init__(llm, tokenizer, model=name, eos_token_ids=token_ids(eos), max_batch_size=max_batch_size)


def _generation(output: RequestOutput) -> Generation:
    completion = output.outputs[0]
    ids = list(completion.token_ids)
    if completion.logprobs is None or len(completion.logprobs) != len(ids):
        raise RuntimeError(f"vLLM returned {len(ids)} tokens without one logprob each")
    if completion.finish_reason not in ("stop", "length"):
        raise RuntimeError(f"vLLM ended a completion with finish reason {completion.finish_reason!r}")
    logprobs = [step[token].logprob for step, token in zip(completion.logprobs, ids, strict=True)]
    return Generation(ids, logprobs, completion.finish_reason)
