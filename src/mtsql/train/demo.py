"""The demo: stage 1's bootstrap end to end, on nothing downloaded, with a before/after table.

1. a model: the tiny local one (a random-init Qwen3 with a tokenizer trained here) unless one is given;
2. gold trajectories of the training dialogues (the bundled festival example unless a dataset is given);
3. rollouts of the untrained model, greedy, scored by the official-compatible verdicts;
4. SFT on the gold trajectories with TRL (loss on the model's own tokens);
5. rollouts of the trained model, scored the same way.

The rollouts run on the ``evaluation`` dialogues: the training ones for the tiny model (a 200k-parameter model
memorises: the demo then shows the pipeline teaching the protocol and the answers, not generalisation), or
held-out ones, never trained on, for a real model. Every stage writes its files into the output folder
(rollouts, SFT rows, checkpoints, ``summary.json``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mtsql.data.dialogue import Dialogue
from mtsql.errors import ConfigError

#: llama.cpp contexts for the demo's rollouts (more add no speed on 2 cores: benchmarks/bench_cpu_backends.py).
LLAMACPP_SLOTS = 2


@dataclass(slots=True)
class DemoConfig:
    """The demo's settings; the defaults fit the tiny model on 8 dialogues of the bundled example (under 10
    minutes on 2 CPU cores). ``model`` None builds the tiny model with ``tiny_hidden_size`` and ``tiny_layers``
    (wider than ``mtsql tiny-model``'s default, to memorise its training dialogues in a few hundred steps);
    ``sft_steps`` and ``learning_rate`` suit such a random-init model (a real checkpoint wants a far smaller
    rate)."""

    out_dir: Path = Path("runs/demo")
    model: str | None = None
    tiny_hidden_size: int = 128
    tiny_layers: int = 2
    sft_steps: int = 400
    learning_rate: float = 3e-3
    batch_size: int = 1
    max_tokens: int = 128
    max_steps: int = 4
    concurrency: int = 64
    seed: int = 0
    backend: str = "transformers"


@dataclass(slots=True)
class DemoResult:
    """Metrics before and after SFT (see :func:`mtsql.rollout.metrics.episode_metrics`) on the evaluation
    dialogues, whether those were held out from training, and seconds per stage."""

    model: str
    trained_model: str
    dialogues: int
    evaluated: int
    held_out: bool
    before: dict[str, float]
    after: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_demo(
    config: DemoConfig,
    dialogues: Sequence[Dialogue],
    db_dir: Path,
    tables: Path | None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    evaluation: Sequence[Dialogue] | None = None,
) -> DemoResult:
    """Train on ``dialogues`` (databases under ``db_dir``) and return the before/after metrics on ``evaluation``
    (default: the training dialogues themselves); ``progress`` shows the rollouts' progress bars."""
    held_out = evaluation is not None
    if evaluation is not None and {d.id for d in evaluation} & {d.id for d in dialogues}:
        raise ConfigError("the evaluation dialogues overlap the training ones")
    evaluation = dialogues if evaluation is None else evaluation
    from mtsql.backends import TokenizerOnly, load_backend
    from mtsql.rewards import RewardConfig
    from mtsql.rollout import RolloutEngine, read_episodes
    from mtsql.rollout.metrics import episode_metrics
    from mtsql.train.config import SamplingSettings
    from mtsql.train.gold import GoldStats, gold_rows
    from mtsql.train.sft import SFTRunConfig, train_sft

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 1)
        clock = now

    model = config.model
    if config.backend == "llamacpp" and model is None:
        raise ConfigError("the llamacpp backend needs a packaged model or a GGUF file (--model), not the tiny model")
    if model is not None:
        from mtsql.models.packaged import resolve_model

        model = resolve_model(model)  # once: a packaged model's name or a .gguf file becomes its checkpoint
    else:
        from mtsql.models import build_tiny_model

        model = str(
            build_tiny_model(
                out / "tiny-model", hidden_size=config.tiny_hidden_size, num_layers=config.tiny_layers, seed=config.seed
            )
        )
        log(f"built the tiny model in {out / 'tiny-model'}")
    lap("model")

    rewards = RewardConfig()
    # llama.cpp: one context (KV cache) per episode in flight, so no more episodes at once than contexts
    concurrency = min(config.concurrency, LLAMACPP_SLOTS) if config.backend == "llamacpp" else config.concurrency
    sampling = SamplingSettings(temperature=0.0, max_tokens=config.max_tokens, max_steps=config.max_steps)
    rollout_config = sampling.rollout_config(concurrency=concurrency)
    gold_engine = RolloutEngine(TokenizerOnly(model), db_dir, rollout_config, tables=tables, rewards=rewards)
    stats = GoldStats()
    rows = gold_rows(gold_engine, dialogues, stats)
    gold_file = out / "gold-sft.jsonl"
    gold_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    log(
        f"{len(rows)} gold trajectories ({sum(len(r['input_ids']) for r in rows):,} tokens); skipped: "
        f"{stats.missing_database} database missing, {stats.failing_gold} gold SQL failing"
    )
    lap("gold")

    def rollouts(checkpoint: str, name: str) -> dict[str, float]:
        path = out / f"{name}.jsonl"
        path.unlink(missing_ok=True)  # a demo measures afresh
        if config.backend == "llamacpp":  # both checkpoints exported alike (8-bit) to the original GGUF's layout
            backend = load_backend(
                "llamacpp", checkpoint, gguf_like=config.model, seed=config.seed, slots=LLAMACPP_SLOTS
            )
        else:
            backend = load_backend("transformers", checkpoint, device="auto", seed=config.seed)
        engine = RolloutEngine(backend, db_dir, rollout_config, tables=tables, rewards=rewards)
        summary = engine.run(evaluation, path, progress=progress)
        metrics = episode_metrics(read_episodes(path))
        log(
            f"{name}: {summary.written} episodes in {summary.wall_s:.0f} s, "
            f"format-valid {metrics['format_valid']:.1%}, "
            f"EX {metrics['ex']:.1%}, EM {metrics['em']:.1%}"
        )
        return metrics

    before = rollouts(model, "before")
    lap("rollouts before")
    trained = out / "sft-model"
    sft = SFTRunConfig(
        model=model,
        data=[str(gold_file)],
        output_dir=str(trained),
        training={
            "max_steps": config.sft_steps,
            "learning_rate": config.learning_rate,
            "lr_scheduler_type": "cosine",
            "warmup_steps": min(10, config.sft_steps // 10),
            "per_device_train_batch_size": config.batch_size,
            "logging_steps": max(1, config.sft_steps // 10),
            "save_strategy": "no",
            "seed": config.seed,
            "disable_tqdm": True,
            **(_real_model_on_cpu() if config.model is not None else {}),
        },
    )
    train_sft(sft)
    log(f"SFT: {config.sft_steps} steps on the gold trajectories, model saved to {trained}")
    lap("sft")
    after = rollouts(str(trained), "after")
    lap("rollouts after")
    result = DemoResult(model, str(trained), len(dialogues), len(evaluation), held_out, before, after, seconds)
    (out / "summary.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return result


def _real_model_on_cpu() -> dict[str, Any]:
    """Settings for a real model: no gradient checkpointing (TRL's default, not needed at this size), and bf16
    autocast without a GPU (far faster than float32 on CPUs with bf16 matrix units; not a benchmarked figure)."""
    import torch

    return {"gradient_checkpointing": False, **({} if torch.cuda.is_available() else {"bf16": True, "use_cpu": True})}
