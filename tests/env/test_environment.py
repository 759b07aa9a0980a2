from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mtsql.data import Dialogue, Turn
from mtsql.env import (
    EXEC_SQL,
    MEMORY_RETRIEVE,
    DialogueEnv,
    GoldPolicy,
    VerdictTag,
    format_answer,
    format_tool_call,
    format_verdict,
    run_episode,
)

STEP_KEYS = {
    "dialogue_id", "db_id", "history_mode", "template_version", "turn", "step", "action", "sql", "exec", "verdict",
    "error_kind", "error", "turn_done", "turn_truncated", "final_sql", "malformed",
}  # fmt: skip


def exec_sql(sql: str, verdict: str = "") -> str:
    return verdict + format_tool_call(EXEC_SQL, {"code": sql})


def memory(verdict: str = "", **arguments: str) -> str:
    return verdict + format_tool_call(MEMORY_RETRIEVE, arguments)


PASS = format_verdict(VerdictTag.EXEC, True)
NO_PASS = format_verdict(VerdictTag.EXEC, False)
MEMORY_PASS = format_verdict(VerdictTag.MEMORY, True)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reset_gives_system_and_first_question(db_dir: Path, dialogue: Dialogue) -> None:
    env = DialogueEnv(db_dir)
    observation, info = env.reset(dialogue, seed=1)
    assert [m["role"] for m in observation] == ["system", "user"]
    assert "<tool_call>" in observation[0]["content"]
    user = observation[1]["content"]
    assert "Database: concert" in user and "CREATE TABLE singer" in user and "'France'" in user
    assert user.endswith("Question 1: Show all singers.")
    assert info == {
        "dialogue_id": "test/dev/0000", "db_id": "concert", "history_mode": "predicted",
        "template_version": "mtsql-v1", "turn": 0, "n_turns": 3, "max_steps": 4,
    }  # fmt: skip
    assert DialogueEnv(db_dir, schema_values=0).reset(dialogue)[0][1]["content"].count("e.g.") == 0


def test_a_database_file_serves_every_dialogue(db_dir: Path, dialogue: Dialogue) -> None:
    """One's own database: a file instead of a folder in the official layout, whatever the dialogue's db_id."""
    import dataclasses

    from mtsql.data import resolve_database_path

    database = db_dir / "concert" / "concert.sqlite"
    assert resolve_database_path(database, "anything") == database
    assert resolve_database_path(db_dir, "concert") == database
    env = DialogueEnv(database)
    env.reset(dataclasses.replace(dialogue, db_id="my_db"))
    observation, *_ = env.step(exec_sql("SELECT count(*) FROM singer"))
    assert "[(4,)]" in observation[-1]["content"]


def test_scripted_episode(db_dir: Path, dialogue: Dialogue) -> None:
    """exec -> pass -> answer; failing SQL -> no_pass -> corrected -> pass -> memory -> pass -> answer; malformed
    outputs and an exhausted budget on the last question."""
    database = db_dir / "concert" / "concert.sqlite"
    before = file_digest(database)
    env = DialogueEnv(db_dir)
    env.reset(dialogue)
    infos = []

    def step(text: str) -> tuple[list[dict[str, str]], bool, bool]:
        observation, reward, terminated, truncated, info = env.step(text)
        assert reward == 0.0 and set(STEP_KEYS) <= set(info)
        infos.append(info)
        return observation, terminated, truncated

    # question 1: execute, pass, answer
    observation, *_ = step("<think>All singers.</think>\n" + exec_sql("SELECT name FROM singer"))
    assert observation == [{"role": "tool", "name": "exec_sql", "content": observation[0]["content"]}]
    assert "4 rows (columns: name): [('Joe Sharp',), ('Timbaland',)" in observation[0]["content"]
    assert "<answer_sql>" in observation[0]["content"].split("If pass:")[1]  # first question: answer after pass
    assert infos[-1]["exec"]["ok"] and infos[-1]["exec"]["n_rows"] == 4 and infos[-1]["action"] == "exec_sql"
    observation, terminated, _ = step(PASS + "\n" + format_answer("SELECT name FROM singer"))
    assert observation == [{"role": "user", "content": "Question 2: Which of them are from France?"}]
    assert not terminated and infos[-1]["turn_done"] and infos[-1]["final_sql"] == "SELECT name FROM singer"
    assert infos[-1]["verdict"] == {"tag": "exec_verify", "value": "pass", "call": 0}

    # question 2: a failing query, no_pass, the corrected query, pass, memory, pass, answer (4 steps)
    observation, *_ = step(exec_sql("SELECT nme FROM singer WHERE country = 'France'"))
    assert "Execution result: error: no such column: nme" in observation[0]["content"]
    assert infos[-1]["exec"]["ok"] is False and infos[-1]["exec"]["error_kind"] == "sql"
    observation, *_ = step(exec_sql("SELECT name FROM singer WHERE country = 'France'", NO_PASS))
    assert infos[-1]["verdict"] == {"tag": "exec_verify", "value": "no_pass", "call": 0}
    assert "memory_retrieve" in observation[0]["content"].split("If pass:")[1]
    observation, *_ = step(memory(PASS))
    reply = observation[0]["content"]
    assert observation[0]["name"] == "memory_retrieve"
    assert "Proposed SQL: SELECT name FROM singer WHERE country = 'France'" in reply
    assert "2 rows (columns: name): [('Justin Brown',), ('Rose White',)]" in reply
    assert "your own final answer" in reply
    assert "== Question 1 ==\nQuestion: Show all singers.\nSQL: SELECT name FROM singer\n" in reply
    assert "Parsed SQL: tables: singer | select: singer.name\n" in reply
    assert "Result preview: [('Joe Sharp',), ('Timbaland',), ('Justin Brown',)...\n" in reply
    assert infos[-1]["sql"] == "SELECT name FROM singer WHERE country = 'France'"
    observation, *_ = step(MEMORY_PASS + format_answer("SELECT name FROM singer WHERE country = 'France'"))
    assert observation[0]["content"] == "Question 3: How many are there?"
    assert infos[-1]["verdict"] == {"tag": "memory_verify", "value": "pass", "call": 2}

    # question 3: two malformed messages, an execution, then the budget runs out on the memory check
    observation, *_ = step("The answer is SELECT count(*) FROM singer")
    assert observation[0]["role"] == "user" and "(no_action)" in observation[0]["content"]
    assert infos[-1]["error_kind"] == "no_action" and infos[-1]["malformed"] == 1 and infos[-1]["action"] is None
    step('<tool_call>{"name": "exec_sql", "arguments": {"code": "SELECT 1"}</tool_call>')
    assert infos[-1]["error_kind"] == "bad_json" and infos[-1]["malformed"] == 2
    step(exec_sql("SELECT count(*) FROM singer WHERE country = 'France'"))
    observation, terminated, truncated = step(memory(PASS))
    assert terminated and truncated
    assert [m["role"] for m in observation] == ["tool", "user"]  # the call still gets its reply
    assert "== Question 2 ==" in observation[0]["content"]
    assert observation[1]["content"] == (
        "The 4 messages for this question are used up. Final SQL taken for it: "
        "SELECT count(*) FROM singer WHERE country = 'France'"
    )
    last = infos[-1]
    assert last["turn_done"] and last["turn_truncated"] and last["final_sql"].startswith("SELECT count(*)")

    record = last["episode"]
    assert record is env.record and (record.history_mode, record.template_version) == ("predicted", "mtsql-v1")
    assert [t.final_sql for t in record.turns] == [
        "SELECT name FROM singer",
        "SELECT name FROM singer WHERE country = 'France'",
        "SELECT count(*) FROM singer WHERE country = 'France'",
    ]
    assert [(t.answered, t.truncated, t.steps, t.malformed) for t in record.turns] == [
        (True, False, 2, 0), (True, False, 4, 0), (False, True, 4, 2),
    ]  # fmt: skip
    assert record.malformed == 2 and record.turns[2].errors == ["no_action", "bad_json"]
    assert [(c.name, c.verdict) for c in record.turns[1].calls] == [
        ("exec_sql", "no_pass"), ("exec_sql", "pass"), ("memory_retrieve", "pass"),
    ]  # fmt: skip
    assert [(c.name, c.verdict) for c in record.turns[2].calls] == [("exec_sql", "pass"), ("memory_retrieve", None)]
    assert [(t.memory_expected, t.memory_retrieved) for t in record.turns] == [
        (False, False),
        (True, True),
        (True, True),
    ]
    assert record.turns[1].gold_sql == 'SELECT name FROM singer WHERE country  =  "France"'
    json.dumps(record.to_dict())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(format_answer("SELECT 1"))
    assert file_digest(database) == before


@pytest.mark.parametrize("mode", ["predicted", "oracle"])
def test_history_modes(db_dir: Path, dialogue: Dialogue, mode: str) -> None:
    env = DialogueEnv(db_dir, history_mode=mode)  # type: ignore[arg-type]
    _, info = env.reset(dialogue)
    assert info["history_mode"] == mode
    env.step(format_answer("SELECT name FROM singer WHERE age > 40"))  # a wrong answer to question 1
    env.step(exec_sql("SELECT count(*) FROM singer"))
    observation, _, _, _, info = env.step(memory())
    assert info["history_mode"] == mode and env.record is not None and env.record.history_mode == mode
    reply = observation[0]["content"]
    assert "Proposed SQL: SELECT count(*) FROM singer\nIts execution result:" in reply
    if mode == "predicted":
        assert "SQL: SELECT name FROM singer WHERE age > 40\n" in reply and "your own final answer" in reply
        assert "where: singer.age > 40" in reply and "Result preview: [('Joe Sharp',), ('Rose White',)]" in reply
    else:
        assert "SQL: SELECT name FROM singer\n" in reply and "reference (gold) SQL" in reply
        assert "Result preview: [('Joe Sharp',), ('Timbaland',)" in reply
    env.step(format_answer('SELECT name FROM singer WHERE country = "France"'))
    env.step(exec_sql("SELECT 1"))
    observation, _, _, _, _ = env.step(memory())
    second = observation[0]["content"].split("== Question 2 ==")[1]
    expected = 'SELECT name FROM singer WHERE country = "France"' if mode == "predicted" else QUESTION_2_GOLD
    assert f"SQL: {expected}\n" in second


QUESTION_2_GOLD = 'SELECT name FROM singer WHERE country  =  "France"'


def test_oracle_memory_fixes_split_operators(db_dir: Path) -> None:
    turns = (Turn(0, "Singers not from France?", 'SELECT name FROM singer WHERE country ! =  "France"'),
             Turn(1, "How many?", "SELECT count(*) FROM singer WHERE country != 'France'"))  # fmt: skip
    dialogue = Dialogue("t/dev/1", "sparc", "dev", 1, "concert", turns)
    env = DialogueEnv(db_dir, history_mode="oracle")
    env.reset(dialogue)
    env.step(format_answer("SELECT 1"))
    env.step(exec_sql("SELECT 2"))
    reply = env.step(memory())[0][0]["content"]
    assert 'SQL: SELECT name FROM singer WHERE country !=  "France"' in reply
    assert "Result preview: [('Joe Sharp',), ('Timbaland',)]" in reply


def test_gold_policy_replays_the_dialogue(db_dir: Path, dialogue: Dialogue) -> None:
    env = DialogueEnv(db_dir)
    record = run_episode(env, dialogue, GoldPolicy(dialogue))
    assert [t.final_sql for t in record.turns] == [t.query for t in dialogue.turns]
    assert [(t.answered, t.steps, t.memory_expected, t.memory_retrieved) for t in record.turns] == [
        (True, 2, False, False), (True, 3, True, True), (True, 3, True, True),
    ]  # fmt: skip
    assert all(call.verdict == "pass" for t in record.turns for call in t.calls)
    assert record.malformed == 0 and env.stats.sqlite_calls == 3  # the memory reuses the executed results
    # the environment can be reused for the next episode
    assert run_episode(env, dialogue, GoldPolicy(dialogue)).turns[0].steps == 2


def test_budget_exhausted_without_execution_moves_on(db_dir: Path, dialogue: Dialogue) -> None:
    env = DialogueEnv(db_dir, max_steps=2)
    env.reset(dialogue)
    observation, _, terminated, truncated, info = env.step("hello")
    assert len(observation) == 1 and not info["turn_done"]
    observation, _, terminated, truncated, info = env.step("<exec_verify>pass</exec_verify>")
    assert not terminated and not truncated and info["turn_done"] and info["turn_truncated"]
    assert info["final_sql"] == "" and info["verdict"] == {"tag": "exec_verify", "value": "pass", "call": None}
    assert observation == [{
        "role": "user",
        "content": "Verdict noted. Now call a tool (exec_sql or memory_retrieve) or give the final SQL inside "
        "<answer_sql>...</answer_sql>.\n\nThe 2 messages for this question are used up. Final SQL taken for it: "
        "(no SQL)\n\nQuestion 2: Which of them are from France?",
    }]  # fmt: skip
    assert env.record is not None and env.record.turns[0].stray_verdicts == 1
    env.step(exec_sql("SELECT 1"))
    observation, *_ = env.step(memory())
    assert "SQL: (no SQL)\nParsed SQL: (no SQL)\nResult preview: (no SQL)" in observation[0]["content"]


def test_budget_of_one_step(db_dir: Path, dialogue: Dialogue) -> None:
    env = DialogueEnv(db_dir, max_steps=1)
    env.reset(dialogue)
    for index in range(3):
        observation, _, terminated, truncated, info = env.step(exec_sql("SELECT 1"))
        assert info["turn_done"] and info["turn_truncated"] and info["final_sql"] == "SELECT 1"
        assert [m["role"] for m in observation] == ["tool", "user"]
        assert (terminated, truncated) == ((True, True) if index == 2 else (False, False))


def test_answer_on_the_last_question_terminates_without_truncation(db_dir: Path, dialogue: Dialogue) -> None:
    one = Dialogue("t/dev/2", "sparc", "dev", 2, "concert", dialogue.turns[:1])
    env = DialogueEnv(db_dir)
    env.reset(one)
    observation, _, terminated, truncated, info = env.step(format_answer("SELECT 1"))
    assert observation == [] and terminated and not truncated and info["episode"].turns[0].answered


def test_verdicts_attach_to_the_latest_unjudged_call(db_dir: Path, dialogue: Dialogue) -> None:
    env = DialogueEnv(db_dir, max_steps=10)
    env.reset(dialogue)
    env.step(format_answer("SELECT 1"))  # on to question 2, where memory checks are possible
    infos = [env.step(text)[4] for text in (
        MEMORY_PASS,  # nothing retrieved yet: stray
        exec_sql("SELECT 1"),
        PASS,  # judges call 0, alone: the environment asks to go on
        PASS,  # call 0 is judged already: stray
        memory(NO_PASS),  # exec verdict with nothing new to judge: stray; checks call 0's SQL
        MEMORY_PASS + "\n" + exec_sql("SELECT 2"),  # judges the memory call
        memory(PASS, code="SELECT 3"),  # judges call 2; a check of SQL never executed is refused
    )]  # fmt: skip
    assert [i["verdict"] and i["verdict"]["call"] for i in infos] == [None, None, 0, None, None, 1, 2]
    assert infos[2]["action"] == "verdict"
    assert infos[6]["action"] is None and infos[6]["error_kind"] == "memory_unexecuted"
    turn = env.record.turns[1]  # type: ignore[union-attr]
    assert turn.stray_verdicts == 3 and turn.malformed == 1
    assert [(c.name, c.sql, c.verdict) for c in turn.calls] == [
        ("exec_sql", "SELECT 1", "pass"), ("memory_retrieve", "SELECT 1", "pass"), ("exec_sql", "SELECT 2", "pass"),
    ]  # fmt: skip
    assert env.stats.sqlite_calls == 3  # SELECT 1 twice (question 1's answer, for its memory preview), SELECT 2


def test_memory_checks_only_the_sql_executed_last(db_dir: Path, dialogue: Dialogue) -> None:
    """No check on the first question, none before an execution, none of other SQL: each is refused (counted as
    malformed), records no call and runs nothing."""
    env = DialogueEnv(db_dir, max_steps=10)
    env.reset(dialogue)
    _, _, _, _, first = env.step(memory())
    assert first["error_kind"] == "memory_first_question"
    env.step(format_answer("SELECT 1"))
    calls_before = env.stats.sqlite_calls
    _, _, _, _, before_exec = env.step(memory())
    assert before_exec["error_kind"] == "memory_before_exec"
    env.step(exec_sql("SELECT  name FROM singer"))
    _, _, _, _, other = env.step(memory(code="SELECT count(*) FROM singer"))
    assert other["error_kind"] == "memory_unexecuted"
    assert env.stats.sqlite_calls == calls_before + 1  # only the exec_sql ran
    observation, _, _, _, same = env.step(memory(code="SELECT name  FROM singer"))  # the same SQL, spaced anew
    assert same["error_kind"] is None and same["sql"] == "SELECT  name FROM singer"
    assert observation[0]["role"] == "tool"
    record = env.record
    assert record is not None and [t.malformed for t in record.turns] == [1, 2]
    assert [c.name for c in record.turns[1].calls] == ["exec_sql", "memory_retrieve"]


def test_stop_ends_the_question_at_its_last_execution(db_dir: Path, dialogue: Dialogue) -> None:
    """A context cut ends the question as a spent step budget does: the last executed SQL, truncated."""
    env = DialogueEnv(db_dir)
    env.reset(dialogue)
    env.step(exec_sql("SELECT name FROM singer"))
    env.stop()
    turn = env.record.turns[0]  # type: ignore[union-attr]
    assert (turn.final_sql, turn.truncated, turn.answered) == ("SELECT name FROM singer", True, False)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(format_answer("SELECT 1"))


def test_hostile_sql_is_an_observation(db_dir: Path, dialogue: Dialogue) -> None:
    database = db_dir / "concert" / "concert.sqlite"
    before = file_digest(database)
    env = DialogueEnv(db_dir, max_steps=10)
    env.reset(dialogue)
    for sql in ("DROP TABLE singer", "DELETE FROM singer", "SELECT 1; DROP TABLE singer", "ATTACH 'x.db' AS x",
                "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"):  # fmt: skip
        env.timeout = 0.2
        observation, _, _, _, info = env.step(exec_sql(sql))
        assert info["exec"]["ok"] is False and "Execution result: error: " in observation[0]["content"]
    assert file_digest(database) == before
    assert sorted(p.name for p in database.parent.iterdir()) == ["concert.sqlite"]


def test_large_results_are_capped(db_dir: Path, dialogue: Dialogue) -> None:
    env = DialogueEnv(db_dir, max_rows=3, result_chars=30)
    env.reset(dialogue)
    observation, _, _, _, info = env.step(exec_sql("SELECT name, country FROM singer"))
    assert info["exec"]["n_rows"] == 3 and info["exec"]["truncated"]
    assert "3+ rows (columns: name, country): [('Joe Sharp', 'Netherlands'),...\n" in observation[0]["content"]


def test_caller_errors_raise(db_dir: Path, dialogue: Dialogue) -> None:
    env = DialogueEnv(db_dir)
    with pytest.raises(RuntimeError, match="reset"):
        env.step("x")
    with pytest.raises(FileNotFoundError, match="'wta_1' not found"):
        env.reset(Dialogue("t/dev/3", "sparc", "dev", 3, "wta_1", dialogue.turns))
    with pytest.raises(ValueError, match="no turns"):
        env.reset(Dialogue("t/dev/4", "sparc", "dev", 4, "concert", ()))
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(dialogue, options={"history_mode": "oracle"})
    with pytest.raises(ValueError, match="history_mode"):
        DialogueEnv(db_dir, history_mode="gold")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_steps"):
        DialogueEnv(db_dir, max_steps=0)
    assert [tool["function"]["name"] for tool in env.tools] == ["exec_sql", "memory_retrieve"]


def test_reset_takes_the_dialogue_as_an_option_and_close_releases_the_episode(db_dir: Path, dialogue: Dialogue) -> None:
    env = DialogueEnv(db_dir)
    positional = env.reset(dialogue, seed=3)
    assert env.reset(options={"dialogue": dialogue}) == positional
    assert env.reset(seed=None, options={"dialogue": dialogue})[0] == positional[0]
    with pytest.raises(TypeError, match="not both"):
        env.reset(dialogue, options={"dialogue": dialogue})
    with pytest.raises(TypeError, match="needs a dialogue"):
        env.reset()
    with pytest.raises(TypeError, match="needs a dialogue"):
        env.reset(options={})
    env.step(exec_sql("SELECT name FROM singer"))
    env.close()
    assert env.record is None and env.dialogue is None
    env.close()  # idempotent
    with pytest.raises(RuntimeError, match="reset"):
        env.step(exec_sql("SELECT 1"))
    env.stop()  # nothing to stop
    record = run_episode(env, dialogue, GoldPolicy(dialogue))  # usable again after close
    assert [turn.answered for turn in record.turns] == [True, True, True]
    env.close()
    never_reset = DialogueEnv(db_dir)
    never_reset.close()
