"""Local models: a tiny random-init Qwen3 checkpoint with a tokenizer trained here, for tests, demos and smoke runs.

Importing this package is cheap: torch, transformers, tokenizers and TRL are imported by the functions that build.
"""

from mtsql.models.tiny import (
    ADDED_TOKENS,
    CHAT_SPECIAL_TOKENS,
    CHAT_TAG_TOKENS,
    EOS_TOKEN,
    PAD_TOKEN,
    PROTOCOL_TAG_TOKENS,
    benchmark_texts,
    build_tiny_model,
    protocol_texts,
    tiny_corpus,
    train_tokenizer,
)

__all__ = [
    "ADDED_TOKENS",
    "CHAT_SPECIAL_TOKENS",
    "CHAT_TAG_TOKENS",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "PROTOCOL_TAG_TOKENS",
    "benchmark_texts",
    "build_tiny_model",
    "protocol_texts",
    "tiny_corpus",
    "train_tokenizer",
]
