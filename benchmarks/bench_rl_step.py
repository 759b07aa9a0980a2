"""GRPO steps of a random-init model of a real Qwen3's shape: time per step, its generation share, peak memory.

Stage 2's recipes (configs/rl-qwen3-*.yaml) need to know what one optimizer step of a real-size model costs
before a cluster is booked. No weights can be downloaded here, so the model is ``mtsql tiny-model --shape``'s:
Qwen3's published architecture (Qwen3-1.7B: 28 layers, hidden 2048, 151,936 embedding rows, 1.72 billion
parameters) with random weights and a tokenizer trained on mtsql's texts. Its episodes are nonsense until
trained, so generation runs every message to ``--max-tokens``: the step times are those of full-length messages.

Run from the repository root (with the ``train`` extra; ``vllm`` too for ``--backend vllm``)::

    python benchmarks/bench_rl_step.py [--shape qwen3-1.7b] [--out runs/bench-rl-step] [--steps 3]
        [--prompts 4] [--num-generations 5] [--max-tokens 256] [--max-steps 2] [--backend trainer|vllm]
        [--no-gradient-checkpointing] [--model PATH]

The prompts are the bundled festival example's questions (gold earlier turns as context, oracle history, as
the recipes). Each step is ``--prompts`` x ``--num-generations`` episodes, one optimizer step (no gradient
accumulation), lr 1e-6, bf16 on a GPU (float32 on a CPU), TRL's defaults otherwise. ``--shape tiny`` builds the
test suite's tiny model, a smoke run for a CPU. The model is built into ``OUT/model-SHAPE`` once and reused.

It prints and writes ``OUT/bench.json``: the device, the versions, the model's sizes, and per step TRL's
``step_time``, the seconds the rollout function spent on the episodes (``episode/rollout_s``), the tokens of
the step (prompts and completions, TRL's ``num_tokens``), the mean episode length; and the peak memory of the process
(``torch.cuda.max_memory_allocated`` and ``max_memory_reserved`` on a GPU, the peak resident set on a CPU). The
first step includes warm-up (CUDA kernels, vLLM's graphs), so the summary is over the later steps.

Measured: not yet on a GPU (none was lent to the sessions so far). On this project's 2-core CPU machine,
``--shape qwen3-0.6b --steps 1 --prompts 1 --num-generations 2 --max-tokens 16 --max-steps 1`` (float32, two
episodes of about 1,600 tokens): 260 s for the step, 42 s of it in the rollout function, 11.2 GiB peak resident
memory; ``--shape tiny`` takes a few seconds a step.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from mtsql.models import QWEN3_SHAPES  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="qwen3-1.7b", choices=[*QWEN3_SHAPES, "tiny"])
    parser.add_argument("--model", help="an existing checkpoint instead of a random-init one of --shape")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-rl-step")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps (the first one warms up)")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--num-generations", type=int, default=5, help="G, episodes per prompt")
    parser.add_argument("--max-tokens", type=int, default=256, help="tokens per assistant message")
    parser.add_argument("--max-steps", type=int, default=2, help="assistant messages per question")
    parser.add_argument("--backend", default="trainer", choices=["trainer", "vllm"])
    parser.add_argument("--vllm-mode", default="colocate", choices=["colocate", "server"])
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    return parser.parse_args(argv)


def build_checkpoint(args: argparse.Namespace, cuda: bool) -> Path:
    from mtsql.models import build_model, build_tiny_model

    if args.model:
        return Path(args.model)
    path = args.out / f"model-{args.shape}"
    if (path / "config.json").is_file():
        return path
    start = time.perf_counter()
    if args.shape == "tiny":
        build_tiny_model(path)
    else:
        build_model(path, args.shape, dtype="bfloat16" if cuda else "float32")
    print(f"built {args.shape} into {path} in {time.perf_counter() - start:.0f} s")
    return path


def run_config(args: argparse.Namespace, model: Path, cuda: bool) -> Any:
    from mtsql.train.rl.config import RLConfig

    training: dict[str, Any] = {
        "max_steps": args.steps,
        "learning_rate": 1e-6,
        "per_device_train_batch_size": args.prompts * args.num_generations,
        "gradient_accumulation_steps": 1,
        "gradient_checkpointing": not args.no_gradient_checkpointing,
        "bf16": cuda,
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "report_to": "none",
    }
    if args.backend == "vllm":
        training["vllm_mode"] = args.vllm_mode
    return RLConfig.from_dict(
        {
            "model": str(model),
            "output_dir": str(args.out / "run"),
            "data": {"example": "festival"},
            "history_mode": "oracle",
            "num_generations": args.num_generations,
            "sampling": {"temperature": 1.0, "max_tokens": args.max_tokens, "max_steps": args.max_steps},
            "generation": {"backend": args.backend},
            "training": training,
        }
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch
    import transformers
    import trl

    from mtsql.train.rl.metrics import read_metrics
    from mtsql.train.rl.trainer import train_rl

    cuda = torch.cuda.is_available()
    args.out.mkdir(parents=True, exist_ok=True)
    model = build_checkpoint(args, cuda)
    config = run_config(args, model, cuda)
    shutil.rmtree(config.output_dir, ignore_errors=True)  # a fresh run, never a resumed one
    metrics_path = Path(config.output_dir) / "metrics.jsonl"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    train_rl(config)
    wall = time.perf_counter() - start
    steps = [line for line in read_metrics(metrics_path) if "step_time" in line]
    tokens = [line["num_tokens"] for line in steps]
    per_step = [
        {
            "step": line["step"],
            "step_time_s": line["step_time"],
            "rollout_time_s": line.get("episode/rollout_s"),
            "tokens": tokens[i] - (tokens[i - 1] if i else 0),
            "mean_episode_tokens": line.get("completions/mean_length"),
        }
        for i, line in enumerate(steps)
    ]
    later = per_step[1:] or per_step
    memory: dict[str, float]
    if cuda:
        memory = {
            "max_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
            "max_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        }
    else:
        memory = {"max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(model)
    result = {
        "command": " ".join(sys.argv),
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()})",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "shape": args.model or args.shape,
        "layers": model_config.num_hidden_layers,
        "hidden_size": model_config.hidden_size,
        "vocab_size": model_config.vocab_size,
        "episodes_per_step": args.prompts * args.num_generations,
        "max_tokens": args.max_tokens,
        "max_steps": args.max_steps,
        "backend": args.backend if args.backend == "trainer" else f"vllm-{args.vllm_mode}",
        "gradient_checkpointing": not args.no_gradient_checkpointing,
        "precision": "float32 weights (TRL's default), bf16 autocast" if cuda else "float32",
        "wall_s": wall,
        "steps": per_step,
        "mean_step_time_s": sum(s["step_time_s"] for s in later) / len(later),
        "memory": memory,
    }
    (args.out / "bench.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "steps"}, indent=2))
    for step in per_step:
        print(step)


if __name__ == "__main__":
    main()
