"""Training examples from episode records: token ids and the loss mask, exactly as the model saw and produced them.

An SFT example is ``input_ids = prompt_ids + completion_ids`` (cut after the last trained question) and
``assistant_masks = [0] * len(prompt_ids) + completion_mask``, with the model segments of questions that are
not trained on masked too (they stay as context). TRL's SFTTrainer takes such pre-tokenized rows as they are:
it builds ``labels`` from ``assistant_masks`` and never re-tokenizes, so the loss falls on the model's own
tokens only, token for token as the rollout recorded them.

Also the one-shot baseline ("conventional SFT" in the original): each question with the schema and the
earlier questions (and their gold SQL) as the prompt and the gold SQL as the completion, as chat messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mtsql.data.dialogue import Dialogue
from mtsql.data.schema import DatabaseSchema, resolve_database_path

ONE_SHOT_SYSTEM = (
    "You are an expert in SQLite. Given a database schema, the earlier questions of a conversation with their SQL, "
    "and the current question, write one SQLite query that answers the current question. Reply with the SQL only."
)


def sft_example(record: dict[str, Any], turns: Sequence[int] | None = None) -> dict[str, Any]:
    """The SFT row of an episode record: loss on the model segments of ``turns`` (default: every question).

    The sequence ends with the last trained model segment; the rest of the episode is not needed. Raises
    ``ValueError`` when no model segment of ``turns`` is in the record.
    """
    chosen = None if turns is None else set(turns)
    segments = [s for s in record["segments"] if s["kind"] == "model" and (chosen is None or s["turn"] in chosen)]
    if not segments:
        raise ValueError(f"episode {record['id']} has no model tokens for questions {sorted(chosen or [])}")
    end = segments[-1]["end"]
    mask = [0] * end
    for segment in segments:
        mask[segment["start"] : segment["end"]] = record["completion_mask"][segment["start"] : segment["end"]]
    prompt = record["prompt_ids"]
    return {
        "input_ids": prompt + record["completion_ids"][:end],
        "assistant_masks": [0] * len(prompt) + mask,
        "episode": record["id"],
        "turns": sorted({s["turn"] for s in segments}),
    }


def one_shot_examples(dialogues: Iterable[Dialogue], db_dir: str) -> list[dict[str, Any]]:
    """The one-shot baseline's rows, ``{"prompt": [system, user], "completion": [assistant]}``, one per
    question whose database exists; TRL's SFTTrainer trains on the completion only."""
    schemas: dict[str, str] = {}
    rows = []
    for dialogue in dialogues:
        path = resolve_database_path(db_dir, dialogue.db_id)
        if not path.is_file():
            continue
        if dialogue.db_id not in schemas:
            schemas[dialogue.db_id] = DatabaseSchema.from_sqlite(path).render()
        history: list[str] = []
        for turn in dialogue.turns:
            earlier = "\n".join(history) if history else "(none)"
            user = (
                f"Database {dialogue.db_id}:\n{schemas[dialogue.db_id]}\n\nEarlier questions and their SQL:\n"
                f"{earlier}\n\nCurrent question: {turn.utterance}"
            )
            rows.append(
                {
                    "prompt": [{"role": "system", "content": ONE_SHOT_SYSTEM}, {"role": "user", "content": user}],
                    "completion": [{"role": "assistant", "content": turn.query}],
                    "dialogue_id": dialogue.id,
                    "turn": turn.index,
                }
            )
            history.append(f"Q{turn.index + 1}: {turn.utterance}\nSQL{turn.index + 1}: {turn.query}")
    return rows
