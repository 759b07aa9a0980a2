"""The llamacpp backend: mtsql's sampling on llama.cpp's logits, prefix reuse across an episode's steps, and
token-exact, resumable records from ``mtsql rollout --backend llamacpp`` on the real SmolLM2 file.

Skipped, with the reason, without the ``[llamacpp]`` extra (llama-cpp-python compiles llama.cpp on install).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install mtsql[llamacpp]")
pytest.importorskip("transformers")

from mtsql.backends import SamplingParams, load_backend
from mtsql.backends.llamacpp import LlamaCppBackend, sample

SMOL = "smollm2-135m-instruct"


def test_greedy_takes_the_argmax_with_its_plain_logprob() -> None:
    logits = np.array([1.0, 3.0, 2.0, -1.0], dtype=np.float32)
    token, logprob = sample(logits, SamplingParams(temperature=0.0), np.random.default_rng(0))
    assert token == 1
    assert logprob == pytest.approx(3.0 - np.log(np.exp(logits.astype(np.float64)).sum()))


def test_sampling_follows_the_temperature_scaled_distribution() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.2, 1e-9]))
    params = SamplingParams(temperature=1.0)
    rng = np.random.default_rng(0)
    draws = Counter(sample(logits, params, rng)[0] for _ in range(20_000))
    for token, p in enumerate((0.5, 0.3, 0.2)):
        assert draws[token] / 20_000 == pytest.approx(p, abs=0.015)
    hot = SamplingParams(temperature=2.0)
    token, logprob = sample(logits, hot, np.random.default_rng(1))
    scaled = logits / 2.0
    assert logprob == pytest.approx(scaled[token] - np.log(np.exp(scaled).sum()))


def test_top_k_and_top_p_truncate_but_the_logprob_does_not() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = np.random.default_rng(0)
    top2 = {sample(logits, SamplingParams(temperature=1.0, top_k=2), rng)[0] for _ in range(2_000)}
    assert top2 == {0, 1}
    # top-p 0.7: 0.5 alone is under 0.7, so the second token joins; the third does not (0.8 is reached before it).
    nucleus = {sample(logits, SamplingParams(temperature=1.0, top_p=0.7), rng)[0] for _ in range(2_000)}
    assert nucleus == {0, 1}
    token, logprob = sample(logits, SamplingParams(temperature=1.0, top_k=1), rng)
    assert token == 0 and logprob == pytest.approx(np.log(0.5))
    both = {sample(logits, SamplingParams(temperature=1.0, top_k=3, top_p=0.5), rng)[0] for _ in range(500)}
    assert both == {0}


def test_the_same_seed_draws_the_same_tokens() -> None:
    logits = np.random.default_rng(3).normal(size=1000)
    params = SamplingParams(temperature=0.8, top_p=0.9)
    first = [sample(logits, params, np.random.default_rng(7))[0] for _ in range(5)]
    again = [sample(logits, params, np.random.default_rng(7))[0] for _ in range(5)]
    assert first == again


# --- the real SmolLM2 file --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol(real_gguf: Any) -> LlamaCppBackend:
    pytest.importorskip("gguf")
    return LlamaCppBackend(str(real_gguf(SMOL)), slots=2, max_model_len=2048, seed=0)


def test_the_files_tokenizer_and_llama_cpp_agree_on_ids(smol: LlamaCppBackend) -> None:
    llm = smol._slots[0].llm
    for text in (
        "<|im_start|>system\nYou are an expert in SQLite.<|im_end|>\n<|im_start|>user\nQuestion 1: How many?",
        'SELECT count(*) FROM singer WHERE country = "France"',
        '<tool_call>\n{"name": "exec_sql", "arguments": {"code": "SELECT 1"}}\n</tool_call><|im_end|>',
    ):
        ours = smol.tokenizer.encode(text, add_special_tokens=False)
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ours


def test_steps_of_an_episode_reuse_the_cached_prefix_and_continue_exactly(smol: LlamaCppBackend) -> None:
    """A prompt that extends the last one evaluates only the new tokens, and continues exactly as the same
    prompt evaluated from scratch on another context (greedy)."""
    tokenizer = smol.tokenizer
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Write a SQL query counting the rows of table singer."}],
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    greedy = SamplingParams(max_tokens=12, temperature=0.0)
    first = smol.generate_batch([ids], greedy)[0]
    follow = (
        ids
        + first.token_ids
        + tokenizer.encode(
            "\n<|im_start|>user\nAnd in France?<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False
        )
    )
    saved = smol.prefill_tokens_saved
    reused = smol.generate_batch([follow], greedy)[0]
    assert smol.prefill_tokens_saved - saved == len(ids) + len(first.token_ids) - 1  # the last sampled token only
    fresh = LlamaCppBackend(str(smol.model), slots=1, max_model_len=2048, seed=0)
    scratch = fresh.generate_batch([follow], greedy)[0]
    assert fresh.prefill_tokens_saved == 0
    # llama.cpp's sums depend on how tokens were batched (a prefix evaluated in one call or token by token), so two
    # greedy continuations may part at a near-tie; until they do, they are the same tokens with close logprobs (the
    # quantized kernels for one token and for many differ by up to ~0.2 in a logprob here).
    pairs = zip(reused.token_ids, scratch.token_ids, strict=False)
    same = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(reused.token_ids), len(scratch.token_ids)))
    assert same >= 4
    assert np.allclose(reused.logprobs[:same], scratch.logprobs[:same], atol=0.3)
    assert all(lp <= 0 for lp in reused.logprobs) and len(reused.logprobs) == len(reused.token_ids)


def test_a_long_shared_prefix_is_copied_from_another_slot(smol: LlamaCppBackend) -> None:
    """Two episodes starting with the same system text: the second one's slot takes the first one's KV cache
    for the shared part instead of evaluating it, and continues as a fresh evaluation does."""
    tokenizer = smol.tokenizer
    system = "You are an expert in SQLite. " * 20

    def prompt(question: str) -> list[int]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return tokenizer.encode(text, add_special_tokens=False)

    first, second = prompt("How many singers are there?"), prompt("List the stadiums.")
    shared = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    backend = LlamaCppBackend(str(smol.model), slots=2, max_model_len=2048, seed=0, copy_threshold=16)
    greedy = SamplingParams(max_tokens=6, temperature=0.0)
    results = backend.generate_batch([first, second], greedy)
    assert backend.prefill_tokens_copied == shared
    assert backend.prefill_tokens == len(first) + len(second) - shared
    alone = LlamaCppBackend(str(smol.model), slots=1, max_model_len=2048, seed=0).generate_batch([second], greedy)
    assert results[1].token_ids[:2] == alone[0].token_ids[:2]
    assert np.allclose(results[1].logprobs[:2], alone[0].logprobs[:2], atol=0.3)


def test_batches_are_seeded_and_stop_on_a_stop_token(smol: LlamaCppBackend) -> None:
    """The same requests on a fresh backend draw the same tokens (what a slot has cached changes the logits a
    little, see above, so reproducibility is of a run from its start, as with the other backends' batches)."""
    ids = smol.tokenizer.encode(
        "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False
    )
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=11)
    runs = []
    for _ in range(2):
        backend = LlamaCppBackend(str(smol.model), slots=2, max_model_len=2048, seed=0)
        runs.append([g.token_ids for g in backend.generate_batch([ids, ids], params)])
        runs.append([g.token_ids for g in backend.generate_batch([ids], SamplingParams(max_tokens=8))])
    assert runs[:2] == runs[2:]
    one = smol.generate_batch([ids, ids], params)
    for generation in one:
        if generation.finish_reason == "stop":
            assert generation.token_ids[-1] in smol.eos_token_ids
        else:
            assert len(generation.token_ids) == 16
    newline = smol.tokenizer.encode("\n", add_special_tokens=False)[0]
    stopped = smol.generate_batch([ids], SamplingParams(max_tokens=64, temperature=0.0, stop_token_ids=(newline,)))[0]
    assert stopped.finish_reason == "stop" or len(stopped.token_ids) == 64
    assert newline not in stopped.token_ids[:-1]


def test_load_backend_takes_the_packaged_name_and_refuses_a_checkpoint_folder(real_gguf: Any, tmp_path: Path) -> None:
    real_gguf(SMOL)
    backend = load_backend("llamacpp", SMOL, slots=1, max_model_len=1024)
    assert backend.max_model_len == 1024 and backend.model == SMOL
    generation = asyncio.run(backend.generate([1, 9690, 198], SamplingParams(max_tokens=2, temperature=0.0)))
    assert len(generation.token_ids) == 2
    with pytest.raises(ValueError, match="is a checkpoint folder: give gguf_like="):
        load_backend("llamacpp", str(tmp_path))


@pytest.mark.slow
def test_rollout_with_llamacpp_writes_token_exact_records_and_resumes(
    real_gguf: Any, tmp_path: Path, private_cache: Path
) -> None:
    """The acceptance command: ``mtsql rollout --backend llamacpp --model <SmolLM2 GGUF> --example festival
    --limit 4``; the records obey the masks and ids rules of every backend, and a rerun resumes."""
    gguf = real_gguf(SMOL)
    out = tmp_path / "records.jsonl"
    command = [sys.executable, "-m", "mtsql", "rollout", "--backend", "llamacpp", "--model", str(gguf)]
    command += ["--example", "festival", "--limit", "4", "--max-tokens", "32", "--max-steps", "2"]
    command += ["--out", str(out), "--no-progress"]
    env = {**os.environ, "XDG_CACHE_HOME": str(private_cache)}
    first = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert first.returncode == 0, first.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 4 and {r["backend"] for r in records} == {"llamacpp"}

    from mtsql.models.packaged import load_gguf_tokenizer

    tokenizer = load_gguf_tokenizer(gguf)
    for record in records:
        ids, mask = record["completion_ids"], record["completion_mask"]
        assert len(ids) == len(mask) == len(record["logprobs"]) and not record["retokenized"]
        assert sum(s["end"] - s["start"] for s in record["segments"]) == len(ids)
        for segment in record["segments"]:
            kind = segment["kind"]
            assert set(mask[segment["start"] : segment["end"]]) == {int(kind == "model")}
            if kind == "env":
                assert set(record["logprobs"][segment["start"] : segment["end"]]) == {0.0}
            else:
                assert all(lp <= 0 for lp in record["logprobs"][segment["start"] : segment["end"]])
        assert record["text"] == tokenizer.decode(ids, skip_special_tokens=False)
        assert record["sampling"]["temperature"] == 1.0
    second = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert second.returncode == 0, second.stderr[-2000:]
    assert len(out.read_text(encoding="utf-8").splitlines()) == 4
    assert "4" in second.stdout  # episodes already there
