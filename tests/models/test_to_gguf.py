"""A checkpoint exported back to GGUF: llama.cpp and transformers must agree on what the model predicts."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from mtsql.models.packaged import ModelError

SMOL = "smollm2-135m-instruct"
PROMPT = "<|im_start|>user\nWrite a SQL query that lists the names of all singers older than 30.<|im_end|>\n"


@pytest.fixture(scope="module")
def smol(real_gguf: Any) -> tuple[Path, Path]:
    """The packaged SmolLM2 GGUF and its converted checkpoint."""
    from mtsql.models.packaged import resolve_model

    gguf = real_gguf(SMOL)
    return gguf, Path(resolve_model(SMOL))


def transformers_greedy(checkpoint: Path, ids: list[int], steps: int) -> tuple[list[int], list[float]]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    tokens, logprobs = list(ids), []
    with torch.no_grad():
        for _ in range(steps):
            logits = torch.log_softmax(model(torch.tensor([tokens])).logits[0, -1].double(), -1)
            token = int(logits.argmax())
            tokens.append(token)
            logprobs.append(float(logits[token]))
    return tokens[len(ids) :], logprobs


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["q8_0", "f16"])
def test_llamacpp_on_the_export_agrees_with_transformers(smol: tuple[Path, Path], tmp_path: Path, dtype: str) -> None:
    pytest.importorskip("llama_cpp")
    from mtsql.backends.base import SamplingParams
    from mtsql.backends.llamacpp import LlamaCppBackend
    from mtsql.models.to_gguf import export_gguf

    gguf, checkpoint = smol
    exported = export_gguf(checkpoint, gguf, tmp_path / f"smol-{dtype}.gguf", dtype=dtype)
    assert not list(tmp_path.glob("*.partial"))
    backend = LlamaCppBackend(str(exported), slots=1, max_model_len=512, tokenizer=str(checkpoint))
    ids = backend.tokenizer.encode(PROMPT + "<|im_start|>assistant\n", add_special_tokens=False)
    generation = asyncio.run(backend.generate(ids, SamplingParams(max_tokens=6, temperature=0.0)))
    expected, logprobs = transformers_greedy(checkpoint, ids, 6)
    # the same greedy continuation; llama.cpp's kernels (one token at a time, quantized activations) move a
    # logprob by up to ~0.2 (docs/rollout.md)
    assert generation.token_ids == expected
    assert max(abs(a - b) for a, b in zip(generation.logprobs, logprobs, strict=True)) < 0.25


@pytest.mark.slow
def test_checkpoint_folders_load_in_llamacpp_through_their_export(smol: tuple[Path, Path], tmp_path: Path) -> None:
    """``load_backend("llamacpp", <checkpoint>, gguf_like=...)`` exports once and reuses the file until the
    weights change; the checkpoint's own tokenizer (and chat template) is used."""
    pytest.importorskip("llama_cpp")
    from mtsql.backends import load_backend

    _, checkpoint = smol
    folder = tmp_path / "trained"
    folder.mkdir()
    for file in checkpoint.iterdir():
        (folder / file.name).symlink_to(file)
    backend = load_backend("llamacpp", str(folder), gguf_like=SMOL, slots=1, max_model_len=512)
    exported = folder / "mtsql-q8_0.gguf"
    assert exported.is_file() and backend.tokenizer.chat_template
    first = exported.stat().st_mtime_ns
    load_backend("llamacpp", str(folder), gguf_like=SMOL, slots=1, max_model_len=512)
    assert exported.stat().st_mtime_ns == first  # reused
    weights = folder / "model.safetensors"
    weights.unlink()
    shutil.copyfile(checkpoint / "model.safetensors", weights)  # as if trained again
    os.utime(weights, ns=(first + 10**9, first + 10**9))
    load_backend("llamacpp", str(folder), gguf_like=SMOL, slots=1, max_model_len=512)
    assert exported.stat().st_mtime_ns > first  # newer weights: exported again


def test_other_layouts_and_adapters_are_refused(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    import gguf
    import numpy as np

    from mtsql.models.to_gguf import checkpoint_gguf, export_gguf

    other = tmp_path / "other.gguf"
    writer = gguf.GGUFWriter(str(other), "gemma3")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match="'gemma3' layout is not supported"):
        export_gguf(tmp_path, other, tmp_path / "out.gguf")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    with pytest.raises(ModelError, match=r"no \.safetensors weights"):
        checkpoint_gguf(adapter, str(other))
    with pytest.raises(ModelError, match="dtype must be one of"):
        export_gguf(tmp_path, other, tmp_path / "out.gguf", dtype="q4")
