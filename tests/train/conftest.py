"""Shared checks of the GRPO tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mtsql.rollout.trajectory import Trajectory
from mtsql.train.rl.episodes import parse_key


def _check_loss_mask(
    output: dict[str, Any], records: list[Trajectory], prompts: list[str], *, truncated_masked: bool = False
) -> int:
    """Assert that a batch of TRL's (``_generate_and_score_completions``) has as loss mask (``completion_mask *
    tool_mask``) exactly the model tokens of its question episodes: 0 on every environment segment, 1 on every
    model segment, 0 on the padding. Returns the environment tokens seen. With ``truncated_masked``
    (``mask_truncated_completions``) a row may also be 0 whole: an episode cut at a message's token limit."""
    loss_mask = (output["completion_mask"] * output["tool_mask"]).tolist()
    env_tokens = 0
    for row, record, prompt in zip(loss_mask, records, prompts, strict=True):
        question = parse_key(prompt)[1]
        model = [s for s in record.segments if s.kind == "model" and s.turn == question]
        start, end = model[0].start, max(s.end for s in model)
        kept = any(row) or not truncated_masked
        for segment in record.segments:
            if segment.start >= start and segment.end <= end:
                bits = set(row[segment.start - start : segment.end - start])
                if segment.kind == "env":
                    env_tokens += segment.end - segment.start
                assert bits == ({1} if kept and segment.kind == "model" else {0}), segment
        assert set(row[end - start :]) <= {0}  # padding
    return env_tokens


@pytest.fixture
def check_loss_mask() -> Callable[..., int]:
    """:func:`_check_loss_mask`, for the tests that build GRPO batches."""
    return _check_loss_mask
