"""Local models: random-init Qwen3 checkpoints with a tokenizer trained here: tiny ones for tests, demos and smoke
runs, real-size ones (Qwen3-0.6B/1.7B/4B shapes) for memory and speed measurements.

Importing this package is cheap: torch, transformers, tokenizers and TRL are imported by the functions that build.
"""

from mtsql.models.tiny import (
    ADDED_TOKENS,
    CHAT_SPECIAL_TOKENS,
    CHAT_TAG_TOKENS,
    EOS_TOKEN,
    PAD_TOKEN,
    PROTOCOL_TAG_TOKENS,
    QWEN3_SHAPES,
    ModelShape,
    benchmark_texts,
    build_model,
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
    "QWEN3_SHAPES",
    "ModelShape",
    "benchmark_texts",
    "build_model",
    "build_tiny_model",
    "protocol_texts",
    "tiny_corpus",
    "train_tokenizer",
]
