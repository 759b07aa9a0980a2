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
from mtsql.rollout.trajectory import Trajectory

ONE_SHOT_SYSTEM = (
    "You are an expert in SQLite. Given a database schema, the earlier questions of a conversation with their SQL, "
    "and the current question, write one SQLite query that answers the current question. Reply with the SQL only."
)


def sft_example(record: Trajectory, turns: Sequence[int] | None = None) -> dict[str, Any]:
    """The SFT row of an episode record: loss on the model segments of ``turns`` (default: every question).

    The sequence ends with the last trained model segment; the rest of the episode is not needed. Raises
    ``ValueError`` when no model segment of ``turns`` is in the record.
    """
    chosen = None if turns is None else set(turns)
    segments = [s for s in record.model_segments() if chosen is None or s.turn in chosen]
    if not segments:
        raise ValueError(f"episode {record.id} has no model tokens for questions {sorted(chosen or [])}")
    end = segments[-1].end
    mask = [0] * end
    for segment in segments:
        mask[segment.start : segment.end] = record.completion_mask[segment.start : segment.end]
    prompt = record.prompt_ids
    return {
        "input_ids": prompt + record.completion_ids[:end],
        "assistant_masks": [0] * len(prompt) + mask,
        "episode": record.id,
        "turns": sorted({s.turn for s in segments}),
    }


def one_shot_messages(
    db_id: str, schema: str, history: Sequence[tuple[str, str]], question: str
) -> list[dict[str, str]]:
    """The one-shot baseline's prompt: the schema, the earlier ``(question, SQL)`` pairs and the current question.
    Training fills the history with gold SQL; prediction with the model's own earlier answers (predicted history)."""
    earlier = "\n".join(f"Q{i + 1}: {q}\nSQL{i + 1}: {sql}" for i, (q, sql) in enumerate(history)) or "(none)"
    user = f"Database {db_id}:\n{schema}\n\nEarlier questions and their SQL:\n{earlier}\n\nCurrent question: {question}"
    return [{"role": "system", "content": ONE_SHOT_SYSTEM}, {"role": "user", "content": user}]


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
        history: list[tuple[str, str]] = []
        for turn in dialogue.turns:
            rows.append(
                {
                    "prompt": one_shot_messages(dialogue.db_id, schemas[dialogue.db_id], history, turn.utterance),
                    "completion": [{"role": "assistant", "content": turn.query}],
                    "dialogue_id": dialogue.id,
                    "turn": turn.index,
                }
            )
            history.append((turn.utterance, turn.query))
    return rows
