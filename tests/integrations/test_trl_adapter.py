"""The TRL adapter: dataset rows, the environment as TRL drives it, the reward function, and real GRPOTrainer steps.

Tests that need transformers or TRL skip without them; the real trainer runs on CPU with a tiny random Qwen3
model and a tokenizer trained here on a few hundred strings (nothing is downloaded).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mtsql.data import Dialogue, load_dialogues, resolve_database_path
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
    tool_schemas,
)
from mtsql.integrations.trl import SQLToolEnvironment, TRLReward, question_rows
from mtsql.rewards import RewardScorer

PASS = format_verdict(VerdictTag.EXEC, True)
NO_PASS = format_verdict(VerdictTag.EXEC, False)
MEMORY_PASS = format_verdict(VerdictTag.MEMORY, True)
WRONG = "SELECT name FROM singer WHERE age > 40"  # runs, returns rows, is not the gold
BROKEN = "SELECT nme FROM singer"  # fails


def assistant(content: str = "", *calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """An assistant message as TRL's response parser returns it."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"type": "function", "function": {"name": name, "arguments": arguments}} for name, arguments in calls
        ]
    return message


def trl_tools(env: SQLToolEnvironment) -> dict[str, Callable[..., Any]]:
    """The tools TRL takes from an environment instance (``GRPOTrainer._generate_and_score_completions``)."""
    return {
        name: getattr(env, name)
        for name, _ in inspect.getmembers(type(env), predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    }


def rollout(env: SQLToolEnvironment, *messages: dict[str, Any]) -> list[dict[str, Any]]:
    """Run assistant messages through the environment as TRL's tool loop does; returns the completion."""
    tools = trl_tools(env)
    completion = []
    for message in messages:
        completion.append(message)
        for call in message.get("tool_calls", ()):
            function = call["function"]
            try:
                result: Any = tools[function["name"]](**function["arguments"])
            except Exception as err:  # TRL turns a failing call into an error reply
                result = {"error": str(err)}
            completion.append({"role": "tool", "name": function["name"], "content": str(result)})
    return completion


@pytest.fixture
def rows(db_dir: Path, dialogue: Dialogue) -> list[dict[str, Any]]:
    return question_rows([dialogue], db_dir, history_mode="oracle")


# --- rows -------------------------------------------------------------------------------------------------------


def test_rows_hold_the_prompt_and_history(db_dir: Path, dialogue: Dialogue, rows: list[dict[str, Any]]) -> None:
    assert [row["turn_index"] for row in rows] == [0, 1, 2]
    first, _, third = rows
    assert first["prompt"] == DialogueEnv(db_dir).reset(dialogue)[0]
    assert [m["role"] for m in third["prompt"]] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert third["prompt"][2]["content"] == format_answer(dialogue.turns[0].query)
    assert third["prompt"][-1]["content"] == "Question 3: How many are there?"
    assert third["history_sql"] == [t.query for t in dialogue.turns[:2]] and third["history_mode"] == "oracle"
    assert (third["utterance"], third["query"], third["db_id"]) == (
        dialogue.turns[2].utterance,
        dialogue.turns[2].query,
        "concert",
    )
    json.dumps(rows)  # plain data, ready for datasets.Dataset.from_list


def test_predicted_rows(db_dir: Path, dialogue: Dialogue) -> None:
    rows = question_rows([dialogue], db_dir, history_mode="predicted", predictions={dialogue.id: [WRONG, ""]})
    assert rows[2]["history_sql"] == [WRONG, "SELECT"]  # an empty prediction as a prediction file writes it
    assert rows[2]["prompt"][2]["content"] == format_answer(WRONG)
    env = SQLToolEnvironment(db_dir)
    env.reset(**rows[2])
    env.exec_sql(code=rows[2]["query"])
    memory = env.memory_retrieve()
    assert f"SQL: {WRONG}" in memory and "your own final answer" in memory
    with pytest.raises(ValueError, match="needs the predictions"):
        question_rows([dialogue], db_dir, history_mode="predicted")
    with pytest.raises(ValueError, match="fewer predictions"):
        question_rows([dialogue], db_dir, history_mode="predicted", predictions={dialogue.id: [WRONG]})
    with pytest.raises(ValueError, match="history_mode"):
        question_rows([dialogue], db_dir, history_mode="gold")  # type: ignore[arg-type]


# --- the environment and the reward ----------------------------------------------------------------------------


def test_tool_replies_and_memory_are_the_dialogue_envs(
    db_dir: Path, dialogue: Dialogue, rows: list[dict[str, Any]]
) -> None:
    env = SQLToolEnvironment(db_dir)
    assert env.reset(**rows[1]) is None  # the row's prompt is complete
    assert set(trl_tools(env)) == {EXEC_SQL, MEMORY_RETRIEVE}
    reply = env.exec_sql(code=rows[1]["query"])
    memory = env.memory_retrieve()
    # the same replies as a whole-dialogue episode in oracle mode whose first question was answered at once
    whole = DialogueEnv(db_dir, history_mode="oracle")
    whole.reset(dialogue)
    whole.step(format_answer(rows[0]["query"]))
    assert reply == whole.step(format_tool_call(EXEC_SQL, {"code": rows[1]["query"]}))[0][0]["content"]
    assert memory == whole.step(PASS + format_tool_call(MEMORY_RETRIEVE, {}))[0][0]["content"]
    assert "2 rows" in reply and "SQL: SELECT name FROM singer" in memory


def test_scripted_rollouts_are_rewarded(db_dir: Path, rows: list[dict[str, Any]]) -> None:
    gold = rows[1]["query"]
    good, bad = SQLToolEnvironment(db_dir), SQLToolEnvironment(db_dir)
    good.reset(**rows[1])
    bad.reset(**rows[1])
    completions = [
        rollout(
            good,
            assistant("", (EXEC_SQL, {"code": BROKEN})),
            assistant(NO_PASS, (EXEC_SQL, {"code": gold})),
            assistant(PASS, (MEMORY_RETRIEVE, {})),
            assistant(MEMORY_PASS + "\n" + format_answer(gold)),
        ),
        rollout(bad, assistant("", (EXEC_SQL, {"code": WRONG})), assistant(PASS + format_answer(WRONG))),
    ]
    metrics: dict[str, float] = {}
    extra: dict[str, list[Any]] = {}
    reward = TRLReward(db_dir)
    totals = reward(
        prompts=[rows[1]["prompt"]] * 2,
        completions=completions,
        environments=[good, bad],
        log_metric=metrics.__setitem__,
        log_extra=extra.__setitem__,
    )
    first, second = reward.last_rewards
    # clause F1: the mean of the unparsable and the right proposal
    assert first.components() == {
        "exec": 1.0, "exact": 1.0, "exec_verify": 1.0, "coherence": 1.0, "clause_f1": 0.5, "format": 1.0
    }  # fmt: skip
    # the wrong query returns rows: "pass" is the right execution verdict, the outcome is what it misses
    assert (second.exec, second.exact, second.exec_verify, second.memory_checks) == (0.0, 0.0, 1.0, 0)
    assert totals == [first.total, second.total] and totals[0] > totals[1] + 2
    assert metrics["mtsql/exec"] == 0.5 and extra["mtsql_exact"] == [1.0, 0.0]
    # scoring replays the rollout: the environment is reset, nothing of the live state leaks into the next one
    assert reward(completions=completions[:1], environments=[good]) == totals[:1]


def test_rollouts_without_answer_and_with_several_calls(db_dir: Path, rows: list[dict[str, Any]]) -> None:
    env = SQLToolEnvironment(db_dir)
    reward = TRLReward(db_dir)
    env.reset(**rows[0])
    completion = rollout(env, assistant("", (EXEC_SQL, {"code": WRONG})), assistant("let me think"))
    reward(completions=[completion], environments=[env])
    last = reward.last_rewards[0]
    assert last.format == 0.0 and last.exec_calls == 1 and last.outcome.exec == 0  # the last executed SQL
    # two calls in one message: both run live, the record counts the message as malformed
    env.reset(**rows[0])
    both = assistant("", (EXEC_SQL, {"code": WRONG}), (EXEC_SQL, {"code": rows[0]["query"]}))
    completion = rollout(env, both, assistant(format_answer(rows[0]["query"])))
    assert all("Execution result" in m["content"] for m in completion if m["role"] == "tool")
    reward(completions=[completion], environments=[env])
    assert reward.last_rewards[0].format == 0.0 and reward.last_rewards[0].exec == 1.0


def test_budget_and_bad_arguments(db_dir: Path, rows: list[dict[str, Any]]) -> None:
    env = SQLToolEnvironment(db_dir, max_steps=2)
    env.reset(**rows[0])
    completion = rollout(
        env,
        assistant("", (EXEC_SQL, {"code": WRONG})),
        assistant(PASS, (EXEC_SQL, {"code": rows[0]["query"]}), (EXEC_SQL, {"code": "SELECT 1"})),
        assistant(format_answer(WRONG)),
    )
    replies = [m["content"] for m in completion if m["role"] == "tool"]
    assert "messages for this question are used up" in replies[1] and "used up" in replies[2]
    reward = TRLReward(db_dir)
    reward(completions=[completion], environments=[env])
    assert reward.last_rewards[0].exec == 0.0  # the second message was malformed, the budget ended the question
    env.reset(**rows[0])
    completion = rollout(env, assistant("", (EXEC_SQL, {"sql": "SELECT 1"})))
    assert "error" in completion[-1]["content"]  # TRL reports the bad call; nothing ran
    with pytest.raises(RuntimeError, match="reset"):
        SQLToolEnvironment(db_dir).exec_sql("SELECT 1")


def test_gold_rollouts_score_as_whole_dialogues_on_real_data(data_dir: Path) -> None:
    """Per-question rollouts in oracle mode get the rewards of whole-dialogue gold episodes in oracle mode."""
    db_dir = data_dir / "database"
    dialogues = [
        d for d in load_dialogues("sparc", "dev", data_dir) if resolve_database_path(db_dir, d.db_id).is_file()
    ]
    dialogues = dialogues[:60]
    environments, completions = [], []
    for row in question_rows(dialogues, db_dir, history_mode="oracle"):
        env = SQLToolEnvironment(db_dir)
        env.reset(**row)
        gold = row["query"].strip()
        completion = rollout(env, assistant("", (EXEC_SQL, {"code": gold})))
        passed = "Execution result: error" not in completion[-1]["content"]
        verdict = format_verdict(VerdictTag.EXEC, passed)
        if passed and row["turn_index"] > 0:
            completion += rollout(env, assistant(verdict, (MEMORY_RETRIEVE, {})))
            completion.append(assistant(MEMORY_PASS + format_answer(gold)))
        else:
            completion.append(assistant(verdict + format_answer(gold)))
        environments.append(env)
        completions.append(completion)
    reward = TRLReward(db_dir)
    reward(completions=completions, environments=environments)
    whole = DialogueEnv(db_dir, history_mode="oracle")
    scorer = RewardScorer(db_dir)
    expected = [q.to_dict() for d in dialogues for q in scorer.episode(run_episode(whole, d, GoldPolicy(d))).questions]
    assert [q.to_dict() for q in reward.last_rewards] == expected
    assert len(expected) > 100 and sum(q["exact"] for q in expected) == len(expected)


# --- with transformers and TRL ----------------------------------------------------------------------------------


def test_tool_schemas_as_trl_builds_them(db_dir: Path) -> None:
    utils = pytest.importorskip("transformers.utils")
    env = SQLToolEnvironment(db_dir)
    built = {name: utils.get_json_schema(method)["function"] for name, method in trl_tools(env).items()}
    for schema in tool_schemas():
        expected = schema["function"]
        function = built[expected["name"]]
        assert function["description"] == expected["description"]
        assert function["parameters"].get("required", []) == expected["parameters"]["required"]
        for name, spec in expected["parameters"]["properties"].items():
            assert function["parameters"]["properties"][name]["description"] == spec["description"]


SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ADDED_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]


@pytest.fixture
def tokenizer(rows: list[dict[str, Any]]) -> Any:
    """A byte-level BPE tokenizer trained on the rows, with the Qwen3 chat template TRL knows."""
    pytest.importorskip("trl")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen3_chat_template

    texts = [json.dumps(row["prompt"]) for row in rows] * 20
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=1000, special_tokens=SPECIAL_TOKENS, initial_alphabet=alphabet, show_progress=False
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )
    tokenizer.add_tokens(ADDED_TOKENS)
    tokenizer.chat_template = qwen3_chat_template
    return tokenizer


def test_rollout_parsed_by_trl(db_dir: Path, rows: list[dict[str, Any]], tokenizer: Any) -> None:
    """Assistant messages parsed from tokens by TRL's own response parser, tools called as TRL calls them."""
    from trl.chat_template_utils import add_response_schema, parse_response, supports_tool_calling

    assert supports_tool_calling(tokenizer)
    add_response_schema(tokenizer)
    env = SQLToolEnvironment(db_dir)
    env.reset(**rows[2])
    prefix = tokenizer.apply_chat_template(
        rows[2]["prompt"],
        tools=list(trl_tools(env).values()),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    gold = rows[2]["query"]
    texts = [
        "<think>\ncount them\n</think>\n\n" + format_tool_call(EXEC_SQL, {"code": gold}),
        PASS + "\n" + format_tool_call(MEMORY_RETRIEVE, {}),
        MEMORY_PASS + "\n" + format_answer(gold),
    ]
    messages = [parse_response(tokenizer, tokenizer(text + "<|im_end|>")["input_ids"], prefix=prefix) for text in texts]
    assert messages[0]["reasoning_content"] == "count them" and messages[1]["content"] == PASS
    reward = TRLReward(db_dir)
    # every component at its maximum, format included
    (total,) = reward(completions=[rollout(env, *messages)], environments=[env])
    assert total == pytest.approx(3.1) and reward.last_rewards[0].memory_checks == 1


def _tiny_model(tokenizer: Any) -> Any:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=8192,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    return Qwen3ForCausalLM(config)


def _trainer(db_dir: Path, rows: list[dict[str, Any]], tokenizer: Any, model: Any, tmp_path: Path, **args: Any) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    config = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_steps=1,
        max_tool_calling_iterations=3,  # max_steps - 1 of the environment: the last message answers
        beta=0.0,
        learning_rate=1e-2,
        bf16=False,
        use_cpu=True,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        seed=0,
        **args,
    )
    return GRPOTrainer(
        model=model,
        reward_funcs=TRLReward(db_dir),
        args=config,
        train_dataset=Dataset.from_list(rows[:2]),
        processing_class=tokenizer,
        environment_factory=functools.partial(SQLToolEnvironment, db_dir),
    )


def test_grpo_trainer_step(db_dir: Path, rows: list[dict[str, Any]], tokenizer: Any, tmp_path: Path) -> None:
    """A real GRPOTrainer step over the environment, with scripted generations so the rollouts use the tools:
    one sample per prompt answers the gold, the other a wrong query, so the group's advantages are not zero."""
    import torch

    gold = {row["utterance"]: row["query"] for row in rows}
    model = _tiny_model(tokenizer)
    first_call = [True]

    def policy(text: str, index: int) -> str:
        question = [q for q in gold if q in text][-1]
        reply = text.rsplit("<|im_start|>user\n", 1)[1]
        if "Coherence check" in reply:
            return MEMORY_PASS + "\n" + format_answer(reply.split("Proposed SQL: ", 1)[1].split("\n", 1)[0])
        if "Executed SQL" in reply:
            executed = reply.split("Executed SQL: ", 1)[1].split("\n", 1)[0]
            follow = (
                format_tool_call(MEMORY_RETRIEVE, {}) if question != rows[0]["utterance"] else format_answer(executed)
            )
            return PASS + "\n" + follow
        sql = gold[question] if index % 2 == 0 else WRONG
        return "<think>\nlet me try\n</think>\n\n" + format_tool_call(EXEC_SQL, {"code": sql})

    def generate(input_ids: Any, attention_mask: Any, **_: Any) -> Any:
        outputs = []
        for index, (ids, mask) in enumerate(zip(input_ids, attention_mask, strict=True)):
            text = policy(tokenizer.decode(ids[mask.bool()]), index if first_call[0] else 0)
            outputs.append(tokenizer(text + "<|im_end|>", add_special_tokens=False)["input_ids"])
        first_call[0] = False
        block = torch.full((len(outputs), max(map(len, outputs))), tokenizer.pad_token_id)
        for row, output in enumerate(outputs):
            block[row, : len(output)] = torch.tensor(output)
        return torch.cat([input_ids, block], dim=1)

    model.generate = generate
    trainer = _trainer(db_dir, rows, tokenizer, model, tmp_path, max_completion_length=2048)
    masks = []
    score = trainer._generate_and_score_completions

    def spy(inputs: Any) -> Any:
        output = score(inputs)
        masks.append(output["tool_mask"])
        return output

    trainer._generate_and_score_completions = spy
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer.train()
    log = trainer.state.log_history[0]
    assert log["tools/call_frequency"] > 1 and log["tools/failure_frequency"] == 0
    assert log["mtsql/exec"] == 0.5 and log["mtsql/exec_verify"] == 1.0 and log["mtsql/format"] == 1.0
    rewards = trainer.reward_funcs[0].last_rewards
    assert sorted(r.exec for r in rewards) == [0.0, 0.0, 1.0, 1.0]
    assert log["reward"] == pytest.approx(sum(r.total for r in rewards) / 4, abs=1e-5)
    assert masks and (masks[0] == 0).any()  # the tool replies are masked out of the loss
    assert any(not torch.equal(before[name], p) for name, p in model.named_parameters())


def test_grpo_trainer_step_with_free_generation(
    db_dir: Path, rows: list[dict[str, Any]], tokenizer: Any, tmp_path: Path
) -> None:
    """The random model writes garbage: every rollout is scored (unanswered, malformed) and the step completes."""
    trainer = _trainer(db_dir, rows, tokenizer, _tiny_model(tokenizer), tmp_path, max_completion_length=24)
    trainer.train()
    rewards = trainer.reward_funcs[0].last_rewards
    assert len(rewards) == 4 and all(r.format == 0.0 and r.exec == 0.0 for r in rewards)
