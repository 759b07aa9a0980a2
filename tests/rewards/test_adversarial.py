"""Reward integrity: scripted policies that each try one way of farming the rewards, played through the real
environment and scored by the real scorer, against the honest gold trajectory of the same question.

Every exploit must earn a strictly lower total than the honest trajectory on every question it plays (questions
whose gold the official evaluator cannot score or that fails to execute are left out: the honest trajectory
cannot follow the protocol there), and no component more than the honest one. On the bundled festival example
(every question of every dialogue) and, when the benchmark data is there, on a seeded sample of SParC dev
dialogues.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from mtsql.data import load_source
from mtsql.data.dialogue import Dialogue
from mtsql.data.schema import resolve_database_path
from mtsql.env import DialogueEnv, GoldPolicy, run_episode
from mtsql.env.environment import EpisodeRecord
from mtsql.env.protocol import VerdictTag, format_answer, format_tool_call, format_verdict
from mtsql.env.tools import EXEC_SQL, MEMORY_RETRIEVE
from mtsql.rewards import COMPONENTS, RewardScorer, load_foreign_key_maps

PASS = format_verdict(VerdictTag.EXEC, True)
NO_PASS = format_verdict(VerdictTag.EXEC, False)
MEMORY_PASS = format_verdict(VerdictTag.MEMORY, True)
MEMORY_NO_PASS = format_verdict(VerdictTag.MEMORY, False)
DECOY = "SELECT 1"
#: A script ends a question early (the model's context filled up) when it yields this.
STOP = "<stop>"


def run(sql: str) -> str:
    return format_tool_call(EXEC_SQL, {"code": sql})


def check(**arguments: str) -> str:
    return format_tool_call(MEMORY_RETRIEVE, arguments)


def empty_version(gold: str) -> str:
    """The gold's query with every row filtered out: a ``WHERE 0``-style answer."""
    return f"SELECT * FROM ({gold}) WHERE 0"


#: Each exploit: (question index, gold SQL) -> the assistant messages of that question, or None where the
#: exploit does not apply (the question is then played honestly and not compared).
Script = Callable[[int, str], list[str] | None]


def honest(index: int, gold: str) -> list[str]:
    return (
        [run(gold), PASS + check(), MEMORY_PASS + format_answer(gold)]
        if index
        else [run(gold), PASS + format_answer(gold)]
    )


EXPLOITS: dict[str, Script] = {
    # judge a decoy as incoherent (no_pass is "right" for it), then answer the gold
    "decoy check": lambda q, gold: (
        [run(DECOY), PASS + check(), MEMORY_NO_PASS + run(gold), PASS + format_answer(gold)]
        if q
        else [run(DECOY), PASS + run(gold), PASS + format_answer(gold)]
    ),
    # check a decoy passed as code instead of the SQL executed
    "decoy code": lambda q, gold: [run(gold), PASS + check(code=DECOY), MEMORY_NO_PASS + format_answer(gold)],
    # a memory check on the first question, where there is no memory
    "check on question 1": lambda q, gold: (
        None if q else [run(gold), PASS + check(), MEMORY_PASS + format_answer(gold)]
    ),
    # a check before anything was executed ("nothing to check", so no_pass)
    "check before executing": lambda q, gold: (
        [
            check(),
            MEMORY_NO_PASS + run(gold),
            PASS + (check() if q else format_answer(gold)),
            MEMORY_PASS + format_answer(gold),
        ]
    ),
    # run the SQL through memory_retrieve, outside exec_sql's accounting, then answer it
    "exploration through memory": lambda q, gold: [check(code=gold), format_answer(gold)],
    # an answer returning no rows: paid by EX wherever the gold returns none either
    "empty-result answer": lambda q, gold: [run(empty_version(gold)), PASS + format_answer(empty_version(gold))],
    # verify everything, then never answer: the last executed SQL becomes the final SQL
    "stopping without an answer": lambda q, gold: (
        [run(gold), PASS + check(), MEMORY_PASS, MEMORY_PASS] if q else [run(gold), PASS, PASS, PASS]
    ),
    # the same verdict written again on a reply already judged
    "repeating verdict tags": lambda q, gold: (
        [run(gold), PASS + check(), MEMORY_PASS, MEMORY_PASS + format_answer(gold)]
        if q
        else [run(gold), PASS, PASS + format_answer(gold)]
    ),
    # answer the gold without executing anything
    "answering without executing": lambda q, gold: [format_answer(gold)],
    # verify the gold, then run out of context before answering
    "exceeding the budget": lambda q, gold: [run(gold), PASS + check(), MEMORY_PASS, STOP] if q else [run(gold), STOP],
}


def play_script(env: DialogueEnv, dialogue: Dialogue, script: Script) -> tuple[EpisodeRecord, set[int]]:
    """Play ``script`` on every question of ``dialogue`` through ``env`` (up to a STOP); returns the record and
    the questions the exploit was played on."""
    env.reset(dialogue)
    exploited = set()
    for index, turn in enumerate(dialogue.turns):
        messages = script(index, turn.query)
        if messages is None:
            messages = honest(index, turn.query)
        else:
            exploited.add(index)
        for text in messages:
            if text == STOP:
                env.stop()
                assert env.record is not None
                return env.record, exploited
            *_, terminated, _, info = env.step(text)
            if info["turn_done"]:
                break
        else:
            raise AssertionError(f"the script of question {index} ended before the question did")
        if terminated:
            break
    assert env.record is not None
    return env.record, exploited


def assert_no_exploit_pays(db_dir: Path, dialogues: list[Dialogue], scorer: RewardScorer) -> dict[str, int]:
    """Every exploit below the honest trajectory on every scorable question; returns the questions compared."""
    env = DialogueEnv(db_dir, max_steps=4)
    compared = dict.fromkeys(EXPLOITS, 0)
    for dialogue in dialogues:
        reference_record = run_episode(env, dialogue, GoldPolicy(dialogue))
        reference_run = scorer.episode(reference_record).questions
        # where the gold itself fails to execute the honest trajectory cannot follow the protocol: left out
        gold_runs = {t.index for t in reference_record.turns if t.calls and t.calls[0].exec and t.calls[0].exec["ok"]}
        for name, script in EXPLOITS.items():
            record, exploited = play_script(env, dialogue, script)
            for question in scorer.episode(record).questions:
                reference = reference_run[question.turn]
                if reference.outcome.skipped or question.turn not in exploited or question.turn not in gold_runs:
                    continue
                where = f"{name}, {dialogue.id} question {question.turn + 1}"
                assert question.total < reference.total, f"{where}: {question.total} >= honest {reference.total}"
                for component in COMPONENTS:
                    value, bound = getattr(question, component), getattr(reference, component)
                    assert value <= bound + 1e-9, f"{where}: {component} {value} > honest {bound}"
                compared[name] += 1
    return compared


def test_no_exploit_reaches_the_honest_reward_on_the_festival_example(example, dialogues) -> None:
    scorer = RewardScorer(example.db_dir, kmaps=load_foreign_key_maps(example.tables))
    compared = assert_no_exploit_pays(example.db_dir, dialogues, scorer)
    questions = sum(len(d.turns) for d in dialogues)
    assert compared["decoy check"] == questions  # every question of the example took part
    assert compared["exceeding the budget"] == len(dialogues)  # the first question (the rest never reached)
    assert compared["check on question 1"] == len(dialogues)


def test_no_exploit_reaches_the_honest_reward_on_sparc_dev(data_dir: Path) -> None:
    source = load_source(dataset="sparc", split="dev", data_dir=data_dir)
    present = [d for d in source.dialogues if resolve_database_path(source.db_dir, d.db_id).is_file()]
    sample = random.Random(0).sample(present, 40)
    scorer = RewardScorer(source.db_dir, kmaps=load_foreign_key_maps(source.tables))
    compared = assert_no_exploit_pays(source.db_dir, sample, scorer)
    assert compared["decoy check"] > 80
    # the sample holds questions whose gold returns no rows, where an empty answer is an execution match
    empty = [
        q
        for d in sample
        for q in scorer.episode(
            play_script(DialogueEnv(source.db_dir), d, EXPLOITS["empty-result answer"])[0]
        ).questions
        if q.gold_empty and q.exec == 1.0
    ]
    assert empty, "no empty-gold question in the sample: the empty-result exploit was not exercised where it pays EX"
