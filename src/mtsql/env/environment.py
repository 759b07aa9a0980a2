"""The long-horizon environment: one episode is a whole dialogue, one step is one assistant message.

The contract (Gymnasium's shape, but not a ``gymnasium.Env``: no spaces, no ``np_random``, and the episode's
dialogue is an argument of ``reset``; :mod:`mtsql.integrations.gymnasium` wraps it as a true one):

- ``reset(dialogue, *, seed=None, options=None) -> (observation, info)`` starts an episode on ``dialogue``,
  given positionally or as ``options={"dialogue": dialogue}`` (the only option); ``seed`` is accepted and
  ignored, the environment being deterministic.
- ``step(model_text) -> (observation, reward, terminated, truncated, info)`` applies one assistant message.
- ``close()`` ends the current episode without recording more and releases it; it may be called any number
  of times, and ``reset`` starts a new episode after it.

Observations are lists of chat messages (``{"role", "content"}``; tool replies are ``{"role": "tool",
"name": ..., "content": ...}``), ready for a chat template: ``reset`` gives the system prompt and the first
question (with the database schema); each step gives the tool reply, an error observation, or, once a question
is finished, the next question.

Per question the model has ``max_steps`` messages (4, as the original). A question ends with
``<answer_sql>``, or when its budget runs out: then the last SQL executed with ``exec_sql`` (or the empty
string) is its final SQL and the turn is recorded as truncated. The finished question goes into the dialogue
memory according to the history mode (``predicted``: the final SQL; ``oracle``: the gold SQL). From the second
question on, the protocol expects ``memory_retrieve`` after an execution passes; the model is not forced, but
each turn records whether it was expected and whether it happened. A memory check always judges the SQL executed
last in the question (the one the agent would answer); on the first question, before any execution, or with other
SQL as ``code`` it is refused like a malformed message, and it never executes anything itself.

The episode ends after the last question: ``terminated`` is then true, and ``truncated`` too when that last
question ran out of budget (earlier questions cut by the budget are in ``info`` and the record, not in the
return value, since the episode goes on). The reward returned is always 0.0: rewards are computed from the
finished episode's :class:`EpisodeRecord` by ``mtsql.rewards``.

Malformed messages never raise: they are counted, recorded with their :class:`~mtsql.env.protocol.ErrorKind`,
answered with an error observation, and use a step. Every step's ``info`` carries what a reward or a
trajectory needs; ``info["episode"]`` on the last step is the complete :class:`EpisodeRecord`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtsql.data.dialogue import Dialogue, Turn
from mtsql.data.schema import DatabaseSchema, resolve_database_path, sample_values
from mtsql.env.memory import NO_SQL, DialogueMemory, HistoryMode, check_history_mode, describe_sql, result_text
from mtsql.env.protocol import (
    Action,
    ErrorKind,
    Verdict,
    VerdictTag,
    format_answer,
    format_tool_call,
    format_verdict,
    parse_message,
)
from mtsql.env.templates import DEFAULT_TEMPLATES, TemplateSet, load_templates
from mtsql.env.tools import EXEC_SQL, MEMORY_RETRIEVE, tool_schemas
from mtsql.errors import ConfigError
from mtsql.sql.executor import DEFAULT_TIMEOUT, ExecResult, executor
from mtsql.sql.preprocess import postprocess

Message = dict[str, str]


@dataclass(slots=True)
class ToolCall:
    """One tool call of a turn; ``verdict`` is the model's later ``pass``/``no_pass`` on its reply, if any.

    ``exec`` summarises the execution of an ``exec_sql`` call (no rows: rewards re-execute what they compare).
    """

    index: int
    step: int
    name: str
    sql: str | None
    exec: dict[str, Any] | None = None
    verdict: str | None = None


@dataclass(slots=True)
class TurnRecord:
    """What happened on one question. ``final_sql`` is the answer, or the fallback when ``truncated``."""

    index: int
    question: str
    gold_sql: str
    final_sql: str = ""
    answered: bool = False
    truncated: bool = False
    steps: int = 0
    calls: list[ToolCall] = field(default_factory=list)
    malformed: int = 0
    errors: list[str] = field(default_factory=list)
    stray_verdicts: int = 0
    memory_expected: bool = False
    memory_retrieved: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TurnRecord:
        """A turn read back from its ``dataclasses.asdict`` (an episode record's ``turns``)."""
        return cls(**{**data, "calls": [ToolCall(**call) for call in data.get("calls", ())]})


@dataclass(slots=True)
class EpisodeRecord:
    """A whole dialogue's record: settings that make runs comparable, and every turn."""

    dialogue_id: str
    db_id: str
    history_mode: HistoryMode
    template_version: str
    max_steps: int
    turns: list[TurnRecord] = field(default_factory=list)
    malformed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class EnvStats:
    """Time spent inside the executor, to compare with whole steps (the environment's own overhead)."""

    sqlite_calls: int = 0
    sqlite_time_s: float = 0.0


@functools.lru_cache(maxsize=256)
def schema_text(db_path: str, signature: object, values_per_column: int) -> str:
    """The prompt text of a database's schema with example values per column; cached per file version."""
    schema = DatabaseSchema.from_sqlite(db_path)
    values = sample_values(db_path, schema, per_column=values_per_column) if values_per_column else None
    return schema.render(values)


class DialogueEnv:
    """The environment over whole dialogues: ``reset(dialogue)``, ``step(model_text)``, ``close()``; see the module
    docstring for the contract.

    ``db_dir`` holds ``<db_id>/<db_id>.sqlite``. ``templates`` is a built-in name, a TOML path or a loaded
    :class:`TemplateSet`. ``result_chars`` and ``preview_chars`` cut the results shown in tool replies and in
    the memory; ``max_rows`` caps the rows fetched per execution (the count shown becomes ``N+``);
    ``schema_values`` example values per column are shown in the schema. ``isolate`` runs the model's SQL in a
    worker process killed when it overruns ``timeout`` (:func:`~mtsql.sql.executor.execute_isolated`: a hard
    limit even for one slow built-in function); ``isolate=False`` runs it in-process, a little faster, where
    such a call can overrun.
    """

    def __init__(
        self,
        db_dir: str | os.PathLike[str],
        *,
        history_mode: HistoryMode = "predicted",
        max_steps: int = 4,
        templates: str | os.PathLike[str] | TemplateSet = DEFAULT_TEMPLATES,
        timeout: float = DEFAULT_TIMEOUT,
        isolate: bool = True,
        max_rows: int = 1000,
        result_chars: int = 200,
        preview_chars: int = 50,
        schema_values: int = 3,
    ) -> None:
        check_history_mode(history_mode)
        if max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, not {max_steps}")
        self.db_dir = Path(db_dir)
        self.history_mode: HistoryMode = history_mode
        self.max_steps = max_steps
        self.templates = templates if isinstance(templates, TemplateSet) else load_templates(templates)
        self.timeout = timeout
        self._execute = executor(isolate)
        self.max_rows = max_rows
        self.result_chars = result_chars
        self.preview_chars = preview_chars
        self.schema_values = schema_values
        self.stats = EnvStats()
        self.record: EpisodeRecord | None = None
        render = self.templates.render
        self._system = render("system", max_steps=max_steps)
        self._after_pass = (render("after_pass_first"), render("after_pass_later"))
        self._history_note = render(f"history_{history_mode}")
        self._no_sql = render("no_sql_yet")
        self._continue = render("continue")
        self._dialogue: Dialogue | None = None
        self._done = True

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tool schemas to pass to a chat template (``tools=``) or an OpenAI-compatible server."""
        return tool_schemas()

    def reset(
        self,
        dialogue: Dialogue | None = None,
        *,
        seed: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[list[Message], dict[str, Any]]:
        """Start an episode on ``dialogue``: returns the system and first-question messages.

        The dialogue is given positionally or as ``options={"dialogue": dialogue}`` (the one option defined),
        exactly once. ``seed`` is accepted and ignored: the environment is deterministic. Raises ``TypeError``
        without a dialogue or with two, ``ValueError`` for another option or a dialogue without turns, and
        ``FileNotFoundError`` when the dialogue's database is missing: these are caller errors, unlike anything
        the model writes.
        """
        if options:
            unknown = sorted(set(options) - {"dialogue"})
            if unknown:
                raise ValueError(f"unknown reset option(s): {', '.join(unknown)} (the one option is 'dialogue')")
            if dialogue is not None:
                raise TypeError("reset() takes the dialogue positionally or as options['dialogue'], not both")
            dialogue = options["dialogue"]
        if dialogue is None:
            raise TypeError("reset() needs a dialogue, positionally or as options['dialogue']")
        if not dialogue.turns:
            raise ValueError(f"dialogue {dialogue.id} has no turns")
        path = os.fspath(resolve_database_path(self.db_dir, dialogue.db_id))
        try:
            st = os.stat(path)
        except OSError:
            raise FileNotFoundError(f"database {dialogue.db_id!r} not found at {path}") from None
        self._db_path = path
        signature = (st.st_size, st.st_mtime_ns)
        self._dialogue = dialogue
        self._done = False
        self._memory = DialogueMemory(
            self.history_mode,
            describe=functools.partial(describe_sql, self._db_path),
            run=self._run,
            preview_chars=self.preview_chars,
        )
        self._memory_lines: list[str] = []
        self.record = EpisodeRecord(
            dialogue.id, dialogue.db_id, self.history_mode, self.templates.version, self.max_steps
        )
        self._base_info = {
            "dialogue_id": dialogue.id,
            "db_id": dialogue.db_id,
            "history_mode": self.history_mode,
            "template_version": self.templates.version,
        }
        self._start_turn(0)
        first = self.templates.render(
            "user_first",
            question=dialogue.turns[0].utterance,
            schema=schema_text(self._db_path, signature, self.schema_values),
            db_id=dialogue.db_id,
            turn_number=1,
            max_steps=self.max_steps,
        )
        info = {**self._base_info, "turn": 0, "n_turns": len(dialogue.turns), "max_steps": self.max_steps}
        return [{"role": "system", "content": self._system}, {"role": "user", "content": first}], info

    def step(self, model_text: str) -> tuple[list[Message], float, bool, bool, dict[str, Any]]:
        """Apply one assistant message; returns ``(observation, 0.0, terminated, truncated, info)``.

        The observation is the tool reply, the error or "go on" message, and/or the next question; it is empty
        when the dialogue ends with an answer. ``info`` holds, besides the dialogue id, ``db_id``,
        ``history_mode`` and ``template_version``: ``turn`` and ``step`` (the question, 0-based, and the step
        within it, 1-based), ``action`` (``exec_sql``, ``memory_retrieve``, ``answer_sql``, ``verdict`` for a
        verdict alone, ``None`` when malformed), ``sql`` (executed, checked or answered), ``exec`` (the
        execution summary of an ``exec_sql`` call), ``verdict`` (``{"tag", "value", "call"}``, ``call`` being
        the index of the judged call in the turn or ``None`` for a stray verdict), ``error_kind`` and
        ``error``, ``malformed`` (the episode's count so far), ``turn_done``, ``turn_truncated``, ``final_sql``
        (when the turn is done), and ``episode`` (the :class:`EpisodeRecord`) on the last step.
        """
        if self._done:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        record = self.record
        assert record is not None
        turn = self._turn
        turn.steps += 1
        parsed = parse_message(model_text)
        info = {
            **self._base_info,
            "turn": turn.index,
            "step": turn.steps,
            "action": None,
            "sql": None,
            "exec": None,
            "verdict": None if parsed.verdict is None else self._judge(parsed.verdict),
            "error_kind": None,
            "error": None,
            "turn_done": False,
            "turn_truncated": False,
            "final_sql": None,
            "malformed": record.malformed,
        }
        messages: list[Message] = []
        if parsed.error is not None:
            messages.append(self._refuse(parsed.error, parsed.error_message or "", info))
        elif parsed.action is Action.EXEC_SQL:
            info["action"] = EXEC_SQL
            messages.append(self._exec_sql(parsed.sql or "", info))
        elif parsed.action is Action.MEMORY_RETRIEVE:
            info["action"] = MEMORY_RETRIEVE
            messages.append(self._memory_retrieve(parsed.sql, info))
        elif parsed.action is Action.ANSWER:
            info["action"] = Action.ANSWER.value
            return self._end_turn(parsed.sql or "", messages, info)
        else:
            info["action"] = "verdict"
            messages.append({"role": "user", "content": self._continue})
        if turn.steps >= self.max_steps:
            final = self._last_exec_sql
            notice = self.templates.render("budget_exhausted", max_steps=self.max_steps, final_sql=final or NO_SQL)
            _add_user(messages, notice)
            return self._end_turn(final, messages, info, truncated=True)
        return messages, 0.0, False, False, info

    def stop(self) -> None:
        """End the episode early (the model's context is full): the current question ends as when its step
        budget runs out, its final SQL the last one executed (truncated, not answered); later questions are
        never reached. One rule for both budgets, so the reward of a cut question does not depend on which ran
        out."""
        if self._done:
            return
        self._close_turn(self._last_exec_sql, truncated=True)
        self._done = True

    def close(self) -> None:
        """End the current episode, if any, without recording more (unlike :meth:`stop`, nothing is closed as
        truncated) and release what it holds: its dialogue, record, memory and results. Idempotent; ``reset``
        starts a new episode afterwards. The SQL worker processes and cached connections are shared by every
        environment of a thread and stay (a worker stops with its thread;
        :func:`mtsql.sql.executor.close_cached_connections` closes the connections)."""
        self._done = True
        self._dialogue = None
        self.record = None
        for name in ("_memory", "_memory_lines", "_results", "_turn", "_last_exec", "_last_memory", "_base_info"):
            self.__dict__.pop(name, None)

    @property
    def dialogue(self) -> Dialogue | None:
        """The dialogue of the current (or last) episode, with the questions added by :meth:`add_question`."""
        return self._dialogue

    def add_question(self, question: str) -> list[Message]:
        """Continue a finished episode with one more question, for open-ended dialogues (a chat session): the
        memory keeps the earlier questions. Returns the question's observation; its gold SQL is unknown ("")."""
        if self._dialogue is None or not self._done:
            raise RuntimeError("add_question() continues a finished episode: reset() and play it first")
        index = len(self._dialogue.turns)
        self._dialogue = dataclasses.replace(self._dialogue, turns=(*self._dialogue.turns, Turn(index, question, "")))
        self._done = False
        self._start_turn(index)
        text = self.templates.render("user_next", question=question, turn_number=index + 1, max_steps=self.max_steps)
        return [{"role": "user", "content": text}]

    # --- actions ------------------------------------------------------------------------------------------

    def _exec_sql(self, sql: str, info: dict[str, Any]) -> Message:
        turn = self._turn
        result = self._run(sql)
        self._results[sql] = result
        summary = {
            "ok": result.ok,
            "error": result.error,
            "error_kind": result.error_kind,
            "n_rows": len(result.rows),
            "truncated": result.truncated,
            "columns": result.columns,
            "elapsed_s": result.elapsed_s,
        }
        call = ToolCall(len(turn.calls), turn.steps, EXEC_SQL, sql, summary)
        turn.calls.append(call)
        self._last_exec = call
        self._last_exec_sql = sql
        info["sql"] = sql
        info["exec"] = summary
        content = self.templates.render(
            "exec_reply",
            question=turn.question,
            sql=sql,
            result=result_text(result, self.result_chars),
            after_pass=self._after_pass[turn.index > 0],
            turn_number=turn.index + 1,
        )
        return {"role": "tool", "name": EXEC_SQL, "content": content}

    def _memory_retrieve(self, code: str | None, info: dict[str, Any]) -> Message:
        """Check the SQL executed last against the memory. Only that SQL can be checked: a check of anything else
        would be judged on SQL the agent neither executed nor answers (a decoy), and running new SQL here would
        be an execution outside ``exec_sql``'s accounting. Refused (an error observation, counted malformed):
        a check on the first question, before any execution, or of other SQL than the last executed."""
        turn = self._turn
        sql = self._last_exec_sql
        refusal = None
        if turn.index == 0:
            refusal = ErrorKind.MEMORY_FIRST_QUESTION, "the first question has no earlier questions to check against"
        elif not sql:
            refusal = ErrorKind.MEMORY_BEFORE_EXEC, f"memory_retrieve checks the SQL executed last {self._no_sql}"
        elif code is not None and " ".join(code.split()) != " ".join(sql.split()):
            refusal = (
                ErrorKind.MEMORY_UNEXECUTED,
                "memory_retrieve checks the SQL executed last in this question; execute other SQL with exec_sql first",
            )
        if refusal is not None:
            return self._refuse(*refusal, info)
        call = ToolCall(len(turn.calls), turn.steps, MEMORY_RETRIEVE, sql)
        turn.calls.append(call)
        turn.memory_retrieved = True
        self._last_memory = call
        info["sql"] = sql
        content = self.templates.render(
            "memory_reply",
            question=turn.question,
            sql=sql,
            result=result_text(self._results[sql], self.result_chars),
            memory=self._memory_text(),
            history_note=self._history_note,
            turn_number=turn.index + 1,
        )
        return {"role": "tool", "name": MEMORY_RETRIEVE, "content": content}

    def _refuse(self, kind: ErrorKind, message: str, info: dict[str, Any]) -> Message:
        """An error observation for a message that cannot be used (counted as malformed, like a parse error)."""
        assert self.record is not None
        self._turn.malformed += 1
        self.record.malformed += 1
        self._turn.errors.append(kind.value)
        info.update(action=None, error_kind=kind.value, error=message, malformed=self.record.malformed)
        return {"role": "user", "content": self.templates.render("error", error=message, error_kind=kind.value)}

    def _memory_text(self) -> str:
        if len(self._memory_lines) < len(self._memory):
            render = self.templates.render
            for entry in self._memory.entries()[len(self._memory_lines) :]:
                self._memory_lines.append(
                    render(
                        "memory_turn",
                        turn_number=entry.index + 1,
                        question=entry.question,
                        sql=entry.sql,
                        parsed=entry.parsed,
                        preview=entry.preview,
                    )
                )
        return "\n\n".join(self._memory_lines)  # never empty: checks start on the second question

    def _judge(self, verdict: Verdict) -> dict[str, Any]:
        """Attach a verdict to the latest call of its kind in this turn unless that call is judged already."""
        target = self._last_exec if verdict.tag is VerdictTag.EXEC else self._last_memory
        judged = None
        if target is not None and target.verdict is None:
            target.verdict = verdict.value
            judged = target.index
        else:
            self._turn.stray_verdicts += 1
        return {"tag": verdict.tag.value, "value": verdict.value, "call": judged}

    # --- turns --------------------------------------------------------------------------------------------

    def _start_turn(self, index: int) -> None:
        assert self._dialogue is not None and self.record is not None
        gold = self._dialogue.turns[index]
        self._turn = TurnRecord(index, gold.utterance, gold.query)
        self.record.turns.append(self._turn)
        self._results: dict[str, ExecResult] = {}
        self._last_exec: ToolCall | None = None
        self._last_memory: ToolCall | None = None
        self._last_exec_sql = ""

    def _close_turn(self, final_sql: str, *, truncated: bool) -> TurnRecord:
        turn = self._turn
        turn.final_sql = final_sql
        turn.answered = not truncated
        turn.truncated = truncated
        turn.memory_expected = turn.index > 0 and any(
            call.name == EXEC_SQL and call.verdict == "pass" for call in turn.calls
        )
        return turn

    def _end_turn(
        self, final_sql: str, messages: list[Message], info: dict[str, Any], *, truncated: bool = False
    ) -> tuple[list[Message], float, bool, bool, dict[str, Any]]:
        assert self._dialogue is not None and self.record is not None
        turn = self._close_turn(final_sql, truncated=truncated)
        info.update(turn_done=True, turn_truncated=truncated, final_sql=final_sql)
        # the datasets' gold splits "! =", which SQLite rejects
        remembered = postprocess(turn.gold_sql).strip() if self.history_mode == "oracle" else final_sql
        self._memory.add(turn.question, remembered, self._results.get(remembered))
        following = turn.index + 1
        if following == len(self._dialogue.turns):
            self._done = True
            info["episode"] = self.record
            return messages, 0.0, True, truncated, info
        self._start_turn(following)
        question = self.templates.render(
            "user_next", question=self._turn.question, turn_number=following + 1, max_steps=self.max_steps
        )
        _add_user(messages, question)
        return messages, 0.0, False, False, info

    def _run(self, sql: str) -> ExecResult:
        start = time.perf_counter()
        result = self._execute(self._db_path, sql, timeout=self.timeout, max_rows=self.max_rows)
        self.stats.sqlite_time_s += time.perf_counter() - start
        self.stats.sqlite_calls += 1
        return result


def _add_user(messages: list[Message], text: str) -> None:
    """Append a user message, merged into a preceding one so roles keep alternating for strict templates."""
    if messages and messages[-1]["role"] == "user":
        messages[-1] = {"role": "user", "content": messages[-1]["content"] + "\n\n" + text}
    else:
        messages.append({"role": "user", "content": text})


# --- scripted policies --------------------------------------------------------------------------------------

Policy = Callable[[list[Message], dict[str, Any]], str]


class GoldPolicy:
    """Replays a dialogue's gold SQL through the reference protocol: ``exec_sql`` the gold, judge the result
    truthfully (``pass`` when it executes), ``memory_retrieve`` and ``pass`` from the second question on, then
    answer the gold. For smoke tests, benchmarks and synthesised ideal trajectories."""

    def __init__(self, dialogue: Dialogue) -> None:
        self._gold = [turn.query for turn in dialogue.turns]

    def __call__(self, observation: list[Message], info: dict[str, Any]) -> str:
        if "step" not in info or info["turn_done"]:
            question = info["turn"] + 1 if "step" in info else 0
            return format_tool_call(EXEC_SQL, {"code": self._gold[question]})
        turn, gold = info["turn"], self._gold[info["turn"]]
        if info["action"] == EXEC_SQL:
            passed = bool(info["exec"]["ok"])
            verdict = format_verdict(VerdictTag.EXEC, passed)
            if passed and turn > 0:
                return verdict + "\n" + format_tool_call(MEMORY_RETRIEVE, {})
            return verdict + "\n" + format_answer(gold)
        if info["action"] == MEMORY_RETRIEVE:
            return format_verdict(VerdictTag.MEMORY, True) + "\n" + format_answer(gold)
        return format_tool_call(EXEC_SQL, {"code": gold})


def run_episode(env: DialogueEnv, dialogue: Dialogue, policy: Policy) -> EpisodeRecord:
    """Run one whole episode with ``policy(observation, info) -> assistant text``; returns its record."""
    observation, info = env.reset(dialogue)
    while True:
        observation, _, terminated, truncated, info = env.step(policy(observation, info))
        if terminated or truncated:
            return info["episode"]
