"""The transformers backend on the tiny checkpoint: exact ids and logprobs, left padding that changes nothing,
stop tokens, per-row context limits, seeded sampling, batching through concurrent ``generate`` calls, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from mtsql.backends import Backend, BackendError, Generation, SamplingParams, load_backend

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mtsql.backends.transformers import TransformersBackend  # noqa: E402 - needs torch

TEXTS = (
    "SELECT",
    "<|im_start|>user\nHow many artists are there?<|im_end|>\n<|im_start|>assistant\n",
    "Which festivals took place in 2020, and who headlined each of them? List them by date.",
    "<|im_start|>system\nYou are an expert in SQLite.<|im_end|>\n<|im_start|>user\nShow all stages.<|im_end|>\n",
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny matrices gain nothing from threads, and on a busy small machine torch's threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def backend(checkpoint: Path) -> TransformersBackend:
    return TransformersBackend(str(checkpoint), device="cpu")


@pytest.fixture(scope="module")
def prompts(backend: TransformersBackend) -> list[list[int]]:
    encoded = [backend.tokenizer.encode(text) for text in TEXTS]
    assert len({len(ids) for ids in encoded}) == len(encoded)  # every row is padded differently
    return encoded


def run(backend: Backend, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Any]:
    """Every prompt through its own concurrent ``generate`` call (so they are batched); errors are returned."""

    async def main() -> list[Any]:
        try:
            return await asyncio.gather(*(backend.generate(p, params) for p in prompts), return_exceptions=True)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def reference_logprobs(
    backend: TransformersBackend, prompt: list[int], generation: Generation, temperature: float
) -> Any:
    """log_softmax(logits / temperature) at every completion position (one row a token), from one unpadded
    forward pass over the prompt and the completion."""
    ids = torch.tensor([prompt + generation.token_ids])
    with torch.inference_mode():
        logits = backend.hf_model(ids).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits / (temperature or 1.0), dim=-1)


def test_loads_through_load_backend(checkpoint: Path) -> None:
    backend = load_backend("transformers", str(checkpoint), device="cpu", max_batch_size=4, dtype="float32")
    assert isinstance(backend, TransformersBackend)
    assert (backend.name, backend.model, backend.max_batch_size) == ("transformers", str(checkpoint), 4)
    assert backend.max_model_len == 8192  # the config's max_position_embeddings
    assert not backend.hf_model.training and backend.hf_model.dtype == torch.float32
    end, pad = backend.tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert (backend.eos_token_ids, backend.pad_token_id) == ((end, pad), pad)
    # only the token ids are left of the checkpoint's generation config: SamplingParams alone decide the sampling
    config = backend.hf_model.generation_config
    assert (config.top_k, config.top_p, config.temperature, config.repetition_penalty) == (None,) * 4
    assert backend.stats.calls == 0


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_tokens=12, temperature=0),
        SamplingParams(max_tokens=12, temperature=1.0),
        SamplingParams(max_tokens=12, temperature=0.6, top_p=0.9, top_k=20),
        SamplingParams(max_tokens=12, temperature=1.5),
    ],
    ids=["greedy", "t1", "t0.6-top-p-top-k", "t1.5"],
)
def test_logprobs_are_those_of_a_forward_pass(
    backend: TransformersBackend, prompts: list[list[int]], params: SamplingParams
) -> None:
    """The sampled tokens' logprobs under log_softmax(logits / T), untruncated by top-p/top-k, as TRL computes them."""
    generations = run(backend, prompts, params)
    for prompt, generation in zip(prompts, generations, strict=True):
        assert isinstance(generation, Generation), generation
        assert 1 <= len(generation.token_ids) <= params.max_tokens and not generation.retokenized
        distributions = reference_logprobs(backend, prompt, generation, params.temperature)
        expected = distributions.gather(-1, torch.tensor(generation.token_ids)[:, None]).squeeze(-1)
        assert torch.allclose(torch.tensor(generation.logprobs), expected, atol=1e-4, rtol=0)
        if params.temperature == 0:
            assert generation.token_ids == distributions.argmax(-1).tolist()
        if generation.finish_reason == "length":
            assert len(generation.token_ids) == params.max_tokens
        else:
            assert generation.token_ids[-1] in backend.eos_token_ids


def test_greedy_batched_equals_alone(checkpoint: Path, prompts: list[list[int]]) -> None:
    """Left padding changes nothing: each prompt continues as it does alone, and the stats count one batch."""
    backend = TransformersBackend(str(checkpoint), device="cpu")
    params = SamplingParams(max_tokens=16, temperature=0)
    batched = run(backend, prompts, params)
    assert (backend.stats.calls, backend.stats.prompts) == (1, len(prompts))
    assert backend.stats.generated_tokens == sum(len(g.token_ids) for g in batched)
    assert backend.stats.generate_time_s > 0
    for prompt, generation in zip(prompts, batched, strict=True):
        alone = backend.generate_batch([prompt], params)[0]
        assert alone.token_ids == generation.token_ids and alone.finish_reason == generation.finish_reason
        assert alone.logprobs == pytest.approx(generation.logprobs, abs=1e-5)
    assert backend.stats.calls == 1  # generate_batch called directly is not counted


def test_stop_tokens_end_generation(backend: TransformersBackend, prompts: list[list[int]]) -> None:
    greedy = SamplingParams(max_tokens=16, temperature=0)
    free = backend.generate_batch(prompts, greedy)
    stop = free[1].token_ids[3]
    first = free[1].token_ids.index(stop)
    stopped = backend.generate_batch(prompts, SamplingParams(max_tokens=16, temperature=0, stop_token_ids=(stop,)))
    for before, after in zip(free, stopped, strict=True):
        if stop in before.token_ids:  # cut right after the stop token's first occurrence, which is kept
            cut = before.token_ids.index(stop) + 1
            assert (after.token_ids, after.finish_reason) == (before.token_ids[:cut], "stop")
            assert after.logprobs == pytest.approx(before.logprobs[:cut], abs=1e-5)
        else:  # rows without it are untouched by the others stopping
            assert (after.token_ids, after.finish_reason) == (before.token_ids, before.finish_reason)
    assert stopped[1].token_ids[-1] == stop and len(stopped[1].token_ids) == first + 1


def test_top_k_one_samples_the_argmax(backend: TransformersBackend, prompts: list[list[int]]) -> None:
    greedy = backend.generate_batch(prompts, SamplingParams(max_tokens=10, temperature=0))
    sampled = backend.generate_batch(prompts, SamplingParams(max_tokens=10, temperature=1.0, top_k=1))
    assert [g.token_ids for g in sampled] == [g.token_ids for g in greedy]
    # the logprobs stay those of the full distribution at temperature 1: top-k does not renormalise them
    for top_one, argmax in zip(sampled, greedy, strict=True):
        assert top_one.logprobs == pytest.approx(argmax.logprobs, abs=1e-5)


def test_sampling_is_seeded(checkpoint: Path, prompts: list[list[int]]) -> None:
    params = SamplingParams(max_tokens=12, temperature=1.0)
    state = torch.random.get_rng_state()
    first, again, other = (TransformersBackend(str(checkpoint), device="cpu", seed=s) for s in (7, 7, 8))
    runs = [[backend.generate_batch(prompts, params) for _ in range(2)] for backend in (first, again, other)]
    assert torch.equal(torch.random.get_rng_state(), state)  # the process's random state is left alone
    ids = [[[g.token_ids for g in batch] for batch in batches] for batches in runs]
    assert ids[0] == ids[1]  # same seed, same batches: same samples
    assert ids[0][0] != ids[0][1] and ids[0] != ids[2]  # the sequence of batch seeds moves on; seeds differ
    # a request's own seed gives the same batch the same samples, whatever the backend's sequence
    seeded = SamplingParams(max_tokens=12, temperature=1.0, seed=123)
    assert [g.token_ids for g in first.generate_batch(prompts, seeded)] == [
        g.token_ids for g in other.generate_batch(prompts, seeded)
    ]


def test_batches_are_capped_and_grouped_by_params(checkpoint: Path, prompts: list[list[int]]) -> None:
    backend = TransformersBackend(str(checkpoint), device="cpu", max_batch_size=3)
    greedy, sampled = SamplingParams(max_tokens=4, temperature=0), SamplingParams(max_tokens=4, temperature=1.0)

    async def main() -> list[Generation]:
        calls = [backend.generate(p, greedy) for p in prompts * 2] + [backend.generate(p, sampled) for p in prompts]
        try:
            return await asyncio.gather(*calls)
        finally:
            await backend.aclose()

    results = asyncio.run(main())
    assert len(results) == 12 and all(len(g.token_ids) <= 4 for g in results)
    assert (backend.stats.calls, backend.stats.prompts) == (3 + 2, 12)  # 8 greedy in 3 batches, 4 sampled in 2
    assert [g.token_ids for g in results[:4]] == [g.token_ids for g in results[4:8]]  # greedy: same prompt, same ids


def test_each_row_stops_at_the_context_limit(checkpoint: Path, prompts: list[list[int]]) -> None:
    long_prompt = prompts[3]
    limit = len(long_prompt) + 3
    backend = TransformersBackend(str(checkpoint), device="cpu", max_model_len=limit)
    assert backend.max_model_len == limit
    params = SamplingParams(max_tokens=10, temperature=0)
    short, long = run(backend, [prompts[0], long_prompt], params)
    assert (len(long.token_ids), long.finish_reason) == (3, "length")  # stopped at the context's end
    assert len(short.token_ids) == 10 or short.finish_reason == "stop"  # not shortened by its batch-mate
    assert short.token_ids == backend.generate_batch([prompts[0]], params)[0].token_ids
    with pytest.raises(ValueError, match="no room"):
        backend.generate_batch([[*long_prompt, 0, 0, 0]], params)


def test_prompts_that_cannot_be_continued_fail_alone(checkpoint: Path, prompts: list[list[int]]) -> None:
    backend = TransformersBackend(str(checkpoint), device="cpu", max_model_len=len(prompts[3]))
    results = run(backend, [prompts[0], prompts[3], [], prompts[1]], SamplingParams(max_tokens=3, temperature=0))
    assert isinstance(results[1], BackendError) and "no room" in str(results[1])
    assert isinstance(results[2], BackendError) and "empty prompt" in str(results[2])
    assert isinstance(results[0], Generation) and isinstance(results[3], Generation)
    assert (backend.stats.calls, backend.stats.prompts) == (1, 2)


def test_a_failing_batch_fails_every_waiting_caller(checkpoint: Path, prompts: list[list[int]]) -> None:
    backend = TransformersBackend(str(checkpoint), device="cpu")
    params = SamplingParams(max_tokens=3, temperature=0)
    out_of_vocabulary = [len(backend.tokenizer) + 100]
    results = run(backend, [prompts[0], prompts[1] + out_of_vocabulary, prompts[2]], params)
    assert all(isinstance(r, BackendError) and "transformers generation failed" in str(r) for r in results)
    assert backend.stats.calls == 0
    assert all(isinstance(r, Generation) for r in run(backend, prompts, params))  # the backend goes on working
    assert backend.stats.calls == 1


def test_bad_options(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="exceeds the model's 8192"):
        TransformersBackend(str(checkpoint), device="cpu", max_model_len=10_000)
    with pytest.raises(ValueError, match="unknown dtype"):
        TransformersBackend(str(checkpoint), device="cpu", dtype="float99")
    with pytest.raises(ValueError, match="max_batch_size"):
        TransformersBackend(str(checkpoint), device="cpu", max_batch_size=0)
