"""The rollout engine: token-exact records, masks, resume, failures, context limits, rewards."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mtsql.backends import Backend, BackendError, BackendStats, Generation, SamplingParams
from mtsql.data import Dialogue
from mtsql.env import EXEC_SQL, MEMORY_RETRIEVE, VerdictTag, format_answer, format_tool_call, format_verdict
from mtsql.rewards import RewardConfig
from mtsql.rollout import (
    RecordsFileError,
    RolloutConfig,
    RolloutEngine,
    Step,
    Trajectory,
    TrajectoryFormatError,
    read_episodes,
    read_finished,
)

pytest.importorskip("transformers")
pytest.importorskip("trl")


@pytest.fixture(scope="module")
def tokenizer(checkpoint: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint)


_QUESTION = re.compile(r"Question (\d+): ")
_FIRST = re.compile(r"Question 1: (.*?)(?:<\|im_end\|>|\n)")


class GoldBackend(Backend):
    """A scripted policy in tokens: reads the conversation so far and writes the reference protocol's next
    message for the gold SQL (``gold[question]``), ending it with ``<|im_end|>``. Every call is logged."""

    name = "scripted"

    def __init__(self, tokenizer: Any, gold: dict[str, str], *, fail_on: str | None = None, tail: str = "") -> None:
        self.model = "gold-script"
        self.tokenizer = tokenizer
        self.stats = BackendStats()
        self.gold = gold
        self.fail_on = fail_on
        self.tail = tail
        self.calls: list[tuple[list[int], list[int]]] = []
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    async def generate(self, prompt_ids: Sequence[int], params: SamplingParams) -> Generation:
        await asyncio.sleep(0)
        text = self.tokenizer.decode(prompt_ids, skip_special_tokens=False)
        last = text[text.rfind("<|im_start|>user") :]
        question = _QUESTION.findall(text)[-1]
        key = _FIRST.search(text).group(1) + f"/{question}"
        if self.fail_on is not None and self.fail_on in key:
            raise BackendError("server down")
        gold = self.gold[key]
        if "<tool_response>" not in last:
            message = format_tool_call(EXEC_SQL, {"code": gold})
        elif "Execution result" in last and "Coherence check" not in last and question != "1":
            message = format_verdict(VerdictTag.EXEC, True) + "\n" + format_tool_call(MEMORY_RETRIEVE, {})
        else:
            tag = VerdictTag.MEMORY if "Coherence check" in last else VerdictTag.EXEC
            message = format_verdict(tag, True) + "\n" + format_answer(gold)
        ids = self.tokenizer.encode(message + self.tail, add_special_tokens=False)[: params.max_tokens - 1]
        ids.append(self.end)
        self.calls.append((list(prompt_ids), ids))
        self.stats.generated_tokens += len(ids)
        return Generation(ids, [-0.5] * len(ids), "stop")


def gold_map(dialogues: list[Dialogue]) -> dict[str, str]:
    return {f"{d.turns[0].utterance}/{t.index + 1}": t.query for d in dialogues for t in d.turns}


def engine(tokenizer: Any, example: Any, dialogues: list[Dialogue], **options: Any) -> tuple[RolloutEngine, Any]:
    backend = GoldBackend(tokenizer, gold_map(dialogues), **options.pop("backend", {}))
    rewards = options.pop("rewards", RewardConfig())
    config = RolloutConfig(**options)
    return RolloutEngine(backend, example.db_dir, config, tables=example.tables, rewards=rewards), backend


def test_records_are_what_the_model_saw_and_produced(tokenizer: Any, example: Any, dialogues: list[Dialogue]) -> None:
    eng, backend = engine(tokenizer, example, dialogues, samples=2)
    records: list[Trajectory] = []
    summary = eng.run(dialogues[:3], on_record=records.append)
    assert (summary.written, summary.failed, len(records)) == (6, 0, 6)
    for record in records:
        ids, mask = record.completion_ids, record.completion_mask
        assert len(ids) == len(mask) == len(record.logprobs)
        model = [s for s in record.segments if s.kind == "model"]
        calls = [c for c in backend.calls if c[0][: len(record.prompt_ids)] == record.prompt_ids]
        # Each generation saw the prompt and everything recorded before its segment, and produced the segment.
        for segment in model:
            seen = record.prompt_ids + ids[: segment.start]
            produced = ids[segment.start : segment.end]
            assert (seen, produced) in calls
            assert set(mask[segment.start : segment.end]) == {1}
        for segment in (s for s in record.segments if s.kind == "env"):
            assert set(mask[segment.start : segment.end]) == {0}
            assert set(record.logprobs[segment.start : segment.end]) == {0.0}
        assert sum(s.end - s.start for s in record.segments) == len(ids)
        assert record.finish == "done" and not record.retokenized and record.malformed == 0
        assert all(turn.answered and not turn.truncated for turn in record.turns)
        dialogue = next(d for d in dialogues if d.id == record.dialogue_id)
        assert record.final_sql == [t.query for t in dialogue.turns]
        assert record.rewards["exec"] == 1.0 and record.rewards["exact"] == 1.0
        assert record.text == tokenizer.decode(ids, skip_special_tokens=False)
    assert {r.id for r in records} == {f"{d.id}#{s}" for d in dialogues[:3] for s in (0, 1)}


def test_a_record_read_back_is_the_record_written_and_scores_the_same(
    tokenizer: Any, example: Any, dialogues: list[Dialogue], tmp_path: Path
) -> None:
    """``to_dict``/``from_dict`` round-trip exactly, and the environment's record inside a trajectory read from a
    file re-scores to the rewards recorded with it (so records can be re-scored with other weights)."""
    from mtsql.eval.exact_match import load_foreign_key_maps
    from mtsql.rewards import RewardScorer

    out = tmp_path / "rollouts.jsonl"
    eng, _ = engine(tokenizer, example, dialogues)
    written: list[Trajectory] = []
    eng.run(dialogues[:3], out, on_record=written.append)
    read = read_episodes(out)
    assert [t.to_dict() for t in read] == [json.loads(line) for line in out.read_text().splitlines()]
    assert [t.to_dict() for t in read] == [json.loads(json.dumps(t.to_dict())) for t in written]
    scorer = RewardScorer(example.db_dir, RewardConfig(), kmaps=load_foreign_key_maps(example.tables))
    for trajectory in read:
        assert scorer.episode(trajectory.episode_record()).to_dict() == trajectory.rewards
    with pytest.raises(TrajectoryFormatError, match="layout version 2"):
        Trajectory.from_dict({**read[0].to_dict(), "version": 2})


def test_environment_segments_are_the_templates_text(tokenizer: Any, example: Any, dialogues: list[Dialogue]) -> None:
    """The environment's tokens decode to what Qwen3's template writes between assistant messages."""
    eng, _ = engine(tokenizer, example, dialogues)
    record = asyncio.run(eng.episode(dialogues[1]))
    ids = record.completion_ids
    for segment in (s for s in record.segments if s.kind == "env"):
        text = tokenizer.decode(ids[segment.start : segment.end], skip_special_tokens=False)
        assert text.startswith("\n<|im_start|>user\n") and text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    prompt = tokenizer.decode(record.prompt_ids, skip_special_tokens=False)
    assert prompt.startswith("<|im_start|>system\n") and '"name": "exec_sql"' in prompt
    assert prompt.endswith(f"Question 1: {dialogues[1].turns[0].utterance}<|im_end|>\n<|im_start|>assistant\n")


def test_resume_skips_finished_and_drops_a_cut_line(
    tokenizer: Any, example: Any, dialogues: list[Dialogue], tmp_path: Path
) -> None:
    out = tmp_path / "rollouts.jsonl"
    eng, _ = engine(tokenizer, example, dialogues)
    assert eng.run(dialogues[:2], out).written == 2
    # A crash while writing the third record leaves half a line.
    eng, _ = engine(tokenizer, example, dialogues)
    third = asyncio.run(eng.episode(dialogues[2]))
    with out.open("a") as file:
        file.write(json.dumps(third.to_dict())[:100])
    summary = eng.run(dialogues[:4], out)
    assert (summary.resumed, summary.written, summary.dropped_line) == (2, 2, 3)
    assert [r.dialogue_id for r in read_episodes(out)][:2] == [d.id for d in dialogues[:2]]
    assert sorted(r.id for r in read_episodes(out)) == sorted(f"{d.id}#0" for d in dialogues[:4])
    again = engine(tokenizer, example, dialogues)[0].run(dialogues[:4], out)
    assert (again.resumed, again.written) == (4, 0)
    assert len(out.read_text().splitlines()) == 4


def test_a_file_with_other_settings_is_refused(
    tokenizer: Any, example: Any, dialogues: list[Dialogue], tmp_path: Path
) -> None:
    out = tmp_path / "rollouts.jsonl"
    engine(tokenizer, example, dialogues)[0].run(dialogues[:1], out)
    other, _ = engine(tokenizer, example, dialogues, history_mode="oracle")
    with pytest.raises(ValueError, match="history_mode='predicted'"):
        other.run(dialogues[:2], out)
    assert read_finished(out, other.settings.to_dict() | {"history_mode": "predicted"}) == (
        {f"{dialogues[0].id}#0"},
        None,
    )


def test_a_file_that_is_not_a_records_file_is_refused_untouched(
    tokenizer: Any, example: Any, dialogues: list[Dialogue], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# my notes\nnot JSON\n", encoding="utf-8")
    eng, _ = engine(tokenizer, example, dialogues)
    with pytest.raises(RecordsFileError, match="line 1: not an episode record"):
        eng.run(dialogues[:1], notes)
    assert notes.read_text(encoding="utf-8") == "# my notes\nnot JSON\n"
    one_line = tmp_path / "one.txt"
    one_line.write_bytes(b"some text without a newline")  # not cut from a record: kept
    with pytest.raises(RecordsFileError, match="line 1"):
        eng.run(dialogues[:1], one_line)
    assert one_line.read_bytes() == b"some text without a newline"
    json_file = tmp_path / "other.jsonl"
    json_file.write_text('{"id": 1, "name": "not an episode"}\n', encoding="utf-8")
    with pytest.raises(RecordsFileError, match="line 1: not an episode record"):
        eng.run(dialogues[:1], json_file)
    with pytest.raises(RecordsFileError, match="is a directory"):
        eng.run(dialogues[:1], tmp_path)


def test_a_bad_line_before_the_last_is_reported_and_nothing_deleted(
    tokenizer: Any, example: Any, dialogues: list[Dialogue], tmp_path: Path
) -> None:
    out = tmp_path / "rollouts.jsonl"
    eng, _ = engine(tokenizer, example, dialogues)
    assert eng.run(dialogues[:3], out).written == 3
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    damaged = lines[0] + lines[1][:50] + "\n" + lines[2]
    out.write_text(damaged, encoding="utf-8")
    with pytest.raises(RecordsFileError, match=r"line 2: not an episode record \(and lines follow it\)"):
        engine(tokenizer, example, dialogues)[0].run(dialogues[:4], out)
    assert out.read_text(encoding="utf-8") == damaged


def test_backend_failures_are_counted_not_written(
    tokenizer: Any, example: Any, dialogues: list[Dialogue], tmp_path: Path
) -> None:
    out = tmp_path / "rollouts.jsonl"
    failing = dialogues[1].turns[0].utterance
    eng, _ = engine(tokenizer, example, dialogues, backend={"fail_on": failing})
    summary = eng.run(dialogues[:3], out)
    assert (summary.written, summary.failed) == (2, 1) and "server down" in summary.errors[0]
    # The next run retries it.
    assert engine(tokenizer, example, dialogues)[0].run(dialogues[:3], out).written == 1


def test_missing_database_is_skipped_and_counted(tokenizer: Any, example: Any, dialogues: list[Dialogue]) -> None:
    import dataclasses

    lost = dataclasses.replace(dialogues[0], id="lost/0", db_id="no_such_db")
    summary = engine(tokenizer, example, dialogues)[0].run([lost, dialogues[0]])
    assert (summary.written, summary.skipped_dialogues, summary.missing_databases) == (1, 1, ["no_such_db"])


def test_context_limit_ends_the_episode(tokenizer: Any, example: Any, dialogues: list[Dialogue]) -> None:
    eng, _ = engine(tokenizer, example, dialogues, max_total_tokens=10_000)
    full = asyncio.run(eng.episode(dialogues[1]))
    limit = len(full.prompt_ids) + len(full.completion_ids) // 2
    eng, _ = engine(tokenizer, example, dialogues, max_total_tokens=limit)
    cut = asyncio.run(eng.episode(dialogues[1]))
    assert cut.finish == "context"
    assert len(cut.prompt_ids) + len(cut.completion_ids) <= limit
    assert cut.completion_ids == full.completion_ids[: len(cut.completion_ids)]
    assert len(cut.turns) < len(full.turns) or not cut.turns[-1].answered
    # the question cut ends as a spent step budget ends one: at its last executed SQL, truncated
    last = cut.turns[-1]
    executed = [call.sql for call in last.calls if call.name == EXEC_SQL]
    assert last.truncated and not last.answered
    assert last.final_sql == (executed[-1] if executed else "")
    assert cut.final_sql[-1] == last.final_sql


def test_steps_show_actions_and_verdicts(tokenizer: Any, example: Any, dialogues: list[Dialogue]) -> None:
    seen: list[Step] = []
    eng, _ = engine(tokenizer, example, dialogues, rewards=None)
    record = asyncio.run(eng.episode(dialogues[1], on_step=seen.append))
    assert seen == record.steps and record.rewards is None
    actions = [step.action for step in seen if step.turn == 1]
    assert actions == [EXEC_SQL, MEMORY_RETRIEVE, "answer_sql"]
    assert seen[0].exec["ok"] and seen[0].observation[0]["role"] == "tool"


def test_a_chat_adds_questions_to_a_finished_episode(tokenizer: Any, example: Any, dialogues: list[Dialogue]) -> None:
    """A chat session: one question at a time, the memory and the tokens carrying over."""
    import dataclasses

    whole = dialogues[1]
    eng, _ = engine(tokenizer, example, dialogues, rewards=None)
    reference = asyncio.run(eng.episode(whole))
    episode = eng.start(dataclasses.replace(whole, turns=whole.turns[:1]))
    with pytest.raises(RuntimeError, match="ended normally"):
        episode.add_question("too early")
    asyncio.run(episode.play())
    for turn in whole.turns[1:]:
        episode.add_question(turn.utterance)
        asyncio.run(episode.play(one_question=True))
    record = episode.record()
    assert record.completion_ids == reference.completion_ids
    assert record.completion_mask == reference.completion_mask
    assert record.final_sql == reference.final_sql
    assert [t.gold_sql for t in record.turns][1:] == [""] * (len(whole.turns) - 1)
