"""The vllm backend on the tiny checkpoint (float32, so it can be held to a forward pass of transformers): exact
ids, logprobs of the sampled distribution, stop tokens, the context limit, per-request seeds, batching. Runs only
where vLLM and a CUDA GPU are."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mtsql.backends import Backend, Generation, SamplingParams, load_backend
from mtsql.backends.vllm import VLLMBackend

torch = pytest.importorskip("torch")
VLLM_MISSING = importlib.util.find_spec("vllm") is None
if VLLM_MISSING:
    WHY_NOT = "vLLM is not installed: pip install mtsql[vllm]"
elif not torch.cuda.is_available():
    WHY_NOT = "the vllm backend needs a CUDA GPU"
else:
    WHY_NOT = ""
engine = pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT)

TEXTS = (
    "SELECT",
    "<|im_start|>user\nHow many artists are there?<|im_end|>\n<|im_start|>assistant\n",
    "Which festivals took place in 2020, and who headlined each of them? List them by date.",
)
MAX_MODEL_LEN = 256


@pytest.fixture(scope="module")
def backend(checkpoint: Path) -> VLLMBackend:
    backend = load_backend(
        "vllm",
        str(checkpoint),
        dtype="float32",
        gpu_memory_utilization=0.3,
        max_model_len=MAX_MODEL_LEN,
        enforce_eager=True,  # no CUDA graphs to capture: a faster start for a model this small
    )
    assert isinstance(backend, VLLMBackend)
    return backend


@pytest.fixture(scope="module")
def reference(checkpoint: Path) -> Any:
    """The same checkpoint in transformers, float32, for the forward passes the logprobs are checked against."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def prompts(backend: VLLMBackend) -> list[list[int]]:
    return [backend.tokenizer.encode(text) for text in TEXTS]


def run(backend: Backend, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
    async def main() -> list[Generation]:
        try:
            return await asyncio.gather(*(backend.generate(p, params) for p in prompts))
        finally:
            await backend.aclose()

    return asyncio.run(main())


def distributions(reference: Any, prompt: list[int], generation: Generation, temperature: float) -> Any:
    """log_softmax(logits / temperature) at every completion position, from one forward pass of transformers."""
    with torch.inference_mode():
        logits = reference(torch.tensor([prompt + generation.token_ids])).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits / (temperature or 1.0), dim=-1)


@engine
def test_engine_and_tokens(backend: VLLMBackend) -> None:
    assert (backend.name, backend.max_model_len) == ("vllm", MAX_MODEL_LEN)
    end, pad = backend.tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert backend.eos_token_ids == (end, pad)


@engine
@pytest.mark.parametrize("temperature", [0.0, 1.0, 0.7])
def test_logprobs_are_those_of_a_forward_pass(
    backend: VLLMBackend, reference: Any, prompts: list[list[int]], temperature: float
) -> None:
    params = SamplingParams(max_tokens=16, temperature=temperature)
    for prompt, generation in zip(prompts, run(backend, prompts, params), strict=True):
        assert 1 <= len(generation.token_ids) <= 16 and not generation.retokenized
        expected = distributions(reference, prompt, generation, temperature)
        chosen = expected.gather(-1, torch.tensor(generation.token_ids)[:, None]).squeeze(-1)
        assert torch.allclose(torch.tensor(generation.logprobs), chosen, atol=1e-3, rtol=0)
        if temperature == 0:  # the argmax, up to ties within the kernels' rounding
            assert torch.all(chosen >= expected.max(-1).values - 1e-3)
        if generation.finish_reason == "stop":
            assert generation.token_ids[-1] in backend.eos_token_ids
        else:
            assert len(generation.token_ids) == 16


@engine
def test_truncated_sampling_gives_processed_logprobs(backend: VLLMBackend, prompts: list[list[int]]) -> None:
    """With top-k, vLLM's processed logprobs are renormalised over the kept tokens (the documented difference)."""
    for generation in backend.generate_batch(prompts, SamplingParams(max_tokens=8, temperature=1.0, top_k=1)):
        assert generation.logprobs == pytest.approx([0.0] * len(generation.token_ids), abs=1e-5)


@engine
def test_stop_tokens_end_generation(backend: VLLMBackend, prompts: list[list[int]]) -> None:
    free = backend.generate_batch(prompts, SamplingParams(max_tokens=16, temperature=0))
    stop = free[1].token_ids[3]
    stopped = backend.generate_batch(prompts, SamplingParams(max_tokens=16, temperature=0, stop_token_ids=(stop,)))
    for before, after in zip(free, stopped, strict=True):
        if stop in before.token_ids:  # cut right after the stop token's first occurrence, which is kept
            cut = before.token_ids.index(stop) + 1
            assert (after.token_ids, after.finish_reason) == (before.token_ids[:cut], "stop")
        else:
            assert (after.token_ids, after.finish_reason) == (before.token_ids, before.finish_reason)


@engine
def test_completions_stop_at_the_context_limit(backend: VLLMBackend, prompts: list[list[int]]) -> None:
    long_prompt = (prompts[2] * MAX_MODEL_LEN)[: MAX_MODEL_LEN - 3]
    long, short = backend.generate_batch([long_prompt, prompts[0]], SamplingParams(max_tokens=10, temperature=0))
    assert (len(long.token_ids), long.finish_reason) == (3, "length")
    assert len(short.token_ids) == 10 or short.finish_reason == "stop"


@engine
def test_request_seeds_make_samples_reproducible(backend: VLLMBackend, prompts: list[list[int]]) -> None:
    seeded = SamplingParams(max_tokens=12, temperature=1.0, seed=123)
    first = backend.generate_batch(prompts, seeded)
    again = backend.generate_batch(prompts[::-1], seeded)[::-1]  # another batch order: the same samples
    assert [g.token_ids for g in first] == [g.token_ids for g in again]
    other = backend.generate_batch(prompts, SamplingParams(max_tokens=12, temperature=1.0, seed=124))
    assert [g.token_ids for g in first] != [g.token_ids for g in other]


@engine
def test_concurrent_requests_are_batched(backend: VLLMBackend, prompts: list[list[int]]) -> None:
    calls, prompts_seen = backend.stats.calls, backend.stats.prompts
    results = run(backend, prompts * 3, SamplingParams(max_tokens=6, temperature=0))
    assert (backend.stats.calls, backend.stats.prompts) == (calls + 1, prompts_seen + 9)
    assert [g.token_ids for g in results[:3]] == [g.token_ids for g in results[3:6]]


@pytest.mark.skipif(not VLLM_MISSING, reason="vLLM is installed")
def test_without_vllm_the_error_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r"install mtsql\[vllm\]"):
        load_backend("vllm", "any-model")
