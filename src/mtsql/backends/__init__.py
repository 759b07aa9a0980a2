"""Model backends behind one small interface (:class:`Backend`): token ids in, token ids and logprobs out.

- ``transformers``: a local checkpoint or hub id on CPU or GPU (extra ``[train]``);
- ``vllm``: vLLM's offline engine on a GPU (extra ``[vllm]``);
- ``llamacpp``: a GGUF file run by llama.cpp on the CPU, with prefix reuse across an episode's steps (extra
  ``[llamacpp]``);
- ``openai``: any OpenAI-compatible server (vLLM, SGLang, ``mtsql serve``, ...), no torch needed.

Importing this package is cheap; :func:`load_backend` imports the chosen backend's dependencies.
"""

from __future__ import annotations

from typing import Any, Final

from mtsql.backends.base import (
    Backend,
    BackendError,
    BackendStats,
    BatchedBackend,
    FinishReason,
    Generation,
    SamplingParams,
    TokenizerOnly,
    end_and_pad_ids,
    token_ids,
)
from mtsql.errors import ConfigError

BACKENDS: Final = ("transformers", "vllm", "llamacpp", "openai")


def load_backend(name: str, model: str, **options: Any) -> Backend:
    """The backend ``name`` serving ``model`` (a path, a hub id, a packaged model's name or a ``.gguf`` file, or
    the model name a server knows); ``options`` go to its constructor. Raises ``ValueError`` for an unknown name
    (:class:`~mtsql.models.packaged.ModelError` when a packaged model cannot be had) and ``ImportError`` naming
    the extra to install when the backend's dependencies are missing."""
    from mtsql.models.packaged import resolve_model

    if name == "transformers":
        from mtsql.backends.transformers import TransformersBackend

        return TransformersBackend(resolve_model(model), **options)
    if name == "vllm":
        from mtsql.backends.vllm import VLLMBackend

        return VLLMBackend(resolve_model(model), **options)
    if name == "llamacpp":
        from mtsql.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(model, **options)  # a GGUF file or a packaged model's name, never converted
    if name == "openai":
        from mtsql.backends.openai import OpenAIBackend

        if options.get("tokenizer"):
            options = {**options, "tokenizer": resolve_model(options["tokenizer"])}
        return OpenAIBackend(model, **options)
    raise ConfigError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "BackendStats",
    "BatchedBackend",
    "FinishReason",
    "Generation",
    "SamplingParams",
    "TokenizerOnly",
    "end_and_pad_ids",
    "load_backend",
    "token_ids",
]
