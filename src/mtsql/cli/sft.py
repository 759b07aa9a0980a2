"""``mtsql sft``: stage 1, self-taught warm-start SFT (data, training, the self-taught loop)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mtsql.cli.common import (
    DataDirOpt,
    DatasetOpt,
    ExampleOpt,
    HistoryOpt,
    LimitOpt,
    TemplatesOpt,
    ThinkingOpt,
    checked_templates,
    load_dialogue_set,
    output_file,
    quiet_hub,
)
from mtsql.env.memory import HistoryMode
from mtsql.train.files import write_jsonl

sft_app = typer.Typer(
    name="sft", help="Stage 1: gold and self-taught trajectories, SFT with TRL.", no_args_is_help=True
)


class KindChoice(StrEnum):
    gold = "gold"
    one_shot = "one-shot"


class ExportChoice(StrEnum):
    llamafactory = "llamafactory"
    verl_sft = "verl-sft"
    verl_rl = "verl-rl"


def register(app: typer.Typer) -> None:
    app.add_typer(sft_app, name="sft")


@sft_app.command("build-data")
def build_data_command(
    tokenizer: Annotated[
        str, typer.Option("--tokenizer", "--model", "-m", help="The model's checkpoint or tokenizer (path or hub id).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", callback=output_file, help="JSONL file of SFT rows to write.")],
    kind: Annotated[
        KindChoice, typer.Option("--kind", help="gold: protocol trajectories; one-shot: question → SQL baseline.")
    ] = KindChoice.gold,
    dataset: DatasetOpt = None,
    split: Annotated[str, typer.Option("--split", "-s", help="Split of the dataset.")] = "train",
    data_dir: DataDirOpt = None,
    example: ExampleOpt = None,
    limit: LimitOpt = None,
    history: HistoryOpt = HistoryMode.PREDICTED,
    max_total_tokens: Annotated[
        int | None, typer.Option("--max-total-tokens", min=1, help="Drop dialogues longer than this many tokens.")
    ] = None,
    thinking: ThinkingOpt = True,
    templates: TemplatesOpt = None,
    records: Annotated[
        Path | None, typer.Option("--records", help="Also write the gold episode records (JSONL) here.")
    ] = None,
) -> None:
    """Write SFT rows: gold protocol trajectories (token ids and the loss mask of the model's own tokens, the
    layout of rollouts) or the one-shot baseline's prompt/completion messages.

    Dialogues whose database is missing or whose gold SQL fails to execute are skipped and counted; so are,
    with --max-total-tokens, dialogues that do not fit.
    """
    from mtsql.backends import TokenizerOnly
    from mtsql.rewards import RewardConfig
    from mtsql.rollout import RolloutConfig, RolloutEngine
    from mtsql.train.data import one_shot_examples, sft_example
    from mtsql.train.gold import GoldStats, gold_records

    quiet_hub()
    dialogues, db_dir, tables = load_dialogue_set(dataset, split, data_dir, example, limit)
    if kind is KindChoice.one_shot:
        rows = one_shot_examples(dialogues, str(db_dir))
        write_jsonl(out, rows)
        typer.echo(f"{len(rows):,} one-shot rows (question → SQL) written to {out}")
        return
    templates = checked_templates("sft build-data", templates)
    config = RolloutConfig(
        history_mode=history.value,
        enable_thinking=thinking,
        max_total_tokens=max_total_tokens,
        templates=templates,
    )
    try:
        engine = RolloutEngine(TokenizerOnly(tokenizer), db_dir, config, tables=tables, rewards=RewardConfig())
    except (OSError, ValueError) as err:
        typer.echo(f"mtsql sft build-data: cannot load the tokenizer of {tokenizer!r}: {err}", err=True)
        raise typer.Exit(2) from None
    stats = GoldStats()
    kept, too_long, tokens = [], 0, 0
    gold = list(gold_records(engine, dialogues, stats))
    for record in gold:
        if record.finish != "done":
            too_long += 1
            continue
        row = sft_example(record)
        tokens += len(row["input_ids"])
        kept.append(row)
    write_jsonl(out, kept)
    if records is not None:
        write_jsonl(records, (record.to_dict() for record in gold))
    typer.echo(
        f"{len(kept):,} gold trajectories written to {out} ({tokens:,} tokens, "
        f"{sum(sum(row['assistant_masks']) for row in kept):,} trained on); skipped: "
        f"{stats.missing_database} database missing, {stats.failing_gold} gold SQL failing, {too_long} too long"
    )


@sft_app.command("train")
def train_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="The run's YAML file (see configs/sft-*.yaml).")],
) -> None:
    """Fine-tune with TRL's SFTTrainer on SFT rows, the loss on the model's own tokens; resumes from the output
    folder's last checkpoint. The final model (LoRA merged) and tokenizer are saved in the output folder."""
    from mtsql.train.sft import SFTRunConfig, train_sft

    quiet_hub()
    try:
        run = SFTRunConfig.from_yaml(config)
    except (OSError, ValueError, TypeError) as err:
        typer.echo(f"mtsql sft train: {err}", err=True)
        raise typer.Exit(2) from None
    try:
        output = train_sft(run)
    except ValueError as err:
        typer.echo(f"mtsql sft train: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"model saved to {output}")


@sft_app.command("self-taught")
def self_taught_command(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The loop's YAML file (see configs/self-taught-*.yaml).")
    ],
) -> None:
    """Rounds of sampling with the current model, keeping correct trajectories (difficulty-aware, diverse by
    embedding), dropping solved questions, and SFT on what was kept; a table per round. Resumes where a killed
    run stopped. Exit code 1 when episodes failed (rerun to retry them), 2 for a bad configuration."""
    import sys

    from mtsql.train.selftaught import SelfTaughtError, run_self_taught

    quiet_hub()
    try:
        result = run_self_taught(config, progress=sys.stderr.isatty())
    except (OSError, ValueError) as err:
        typer.echo(f"mtsql sft self-taught: {err}", err=True)
        raise typer.Exit(2) from None
    except SelfTaughtError as err:
        typer.echo(f"mtsql sft self-taught: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"final model: {result.final_model} ({result.solved}/{result.questions} questions solved)")


@sft_app.command("export")
def export_command(
    records: Annotated[
        list[Path], typer.Argument(help="Episode records (JSONL from mtsql rollout or build-data --records).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", callback=output_file, help="File to write (.json for LLaMA-Factory, .parquet for verl)."
        ),
    ],
    export_format: Annotated[ExportChoice, typer.Option("--format", "-f", help="The other trainer's format.")],
) -> None:
    """Convert episode records for other trainers: LLaMA-Factory ShareGPT with tools (and its dataset_info.json
    entry), verl multi-turn SFT parquet, or verl RL parquet (prompts and gold SQL). Records that cannot be
    converted are skipped and listed."""
    from mtsql.integrations.export import to_llamafactory, to_verl_rl, to_verl_sft
    from mtsql.rollout import read_episodes

    try:
        episodes = [episode for path in records for episode in read_episodes(path)]
    except (OSError, ValueError) as err:  # RecordsFileError: a bad line, named
        typer.echo(f"mtsql sft export: {err}", err=True)
        raise typer.Exit(2) from None
    write = {ExportChoice.llamafactory: to_llamafactory, ExportChoice.verl_sft: to_verl_sft}.get(
        export_format, to_verl_rl
    )
    counts = write(episodes, out)
    typer.echo(f"{counts.rows:,} rows written to {out} ({export_format.value}); {len(counts.skipped)} skipped")
    for reason in counts.skipped[:10]:
        typer.echo(f"  skipped {reason}", err=True)
