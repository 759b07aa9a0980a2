"""The tiny local model: a normal Hugging Face checkpoint that loads, renders Qwen3 tool conversations, tokenizes
them reversibly, generates and trains on CPU, is reproducible, and is recognised by TRL as Qwen3."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mtsql.cli.models import register
from mtsql.env import EXEC_SQL, VerdictTag, format_answer, format_verdict, tool_schemas
from mtsql.models import (
    ADDED_TOKENS,
    CHAT_SPECIAL_TOKENS,
    CHAT_TAG_TOKENS,
    EOS_TOKEN,
    PROTOCOL_TAG_TOKENS,
    QWEN3_SHAPES,
    ModelShape,
    build_model,
    build_tiny_model,
    protocol_texts,
    train_tokenizer,
)

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")

SQL = "SELECT name FROM artist WHERE country = 'Ireland'"
REPLY = "Question 1: Which artists are from Ireland?\nExecuted SQL: ...\nExecution result: 3 rows"
THINKING = "The artist table has a country column."
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are an expert in SQLite."},
    {"role": "user", "content": "Question 1: Which artists are from Ireland?"},
    {
        "role": "assistant",
        "content": f"<think>\n{THINKING}\n</think>\n\n",
        "tool_calls": [{"type": "function", "function": {"name": EXEC_SQL, "arguments": {"code": SQL}}}],
    },
    {"role": "tool", "name": EXEC_SQL, "content": REPLY},
    {"role": "assistant", "content": format_verdict(VerdictTag.EXEC, True) + "\n" + format_answer(SQL)},
]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny matrices gain nothing from threads, and on a busy small machine torch's threads wait on each other
    (a forward and backward pass here: 0.03 s on one thread, up to 1 s on two with one core busy)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer(checkpoint: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(checkpoint)


def test_a_normal_hugging_face_checkpoint(checkpoint: Path, tokenizer: Any, model: Any) -> None:
    files = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    assert files | {"chat_template.jinja"} <= {p.name for p in checkpoint.iterdir()}
    assert (type(model).__name__, type(tokenizer).__name__) == ("Qwen3ForCausalLM", "Qwen2Tokenizer")
    config = model.config
    assert config.vocab_size == len(tokenizer) and config.tie_word_embeddings
    assert config.max_position_embeddings == 8192 == tokenizer.model_max_length
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (64, 2, 4)
    assert model.num_parameters() < 1_000_000
    end, pad = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert (config.eos_token_id, config.pad_token_id) == (end, pad)
    generation = model.generation_config
    assert (generation.eos_token_id, generation.pad_token_id) == ([end, pad], pad)


def test_importing_mtsql_models_needs_no_torch() -> None:
    heavy = "{'torch', 'transformers', 'tokenizers', 'trl'}"
    code = f"import sys, mtsql.models, mtsql.cli.models; print(sorted({heavy} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_added_tokens_are_single_tokens_with_qwen3_flags(tokenizer: Any) -> None:
    ids = tokenizer.convert_tokens_to_ids(list(ADDED_TOKENS))
    # after the BPE vocabulary, in Qwen3's order, then the protocol's tags
    assert ids == list(range(len(tokenizer) - len(ADDED_TOKENS), len(tokenizer)))
    decoder = tokenizer.added_tokens_decoder
    assert all(decoder[i].special for i in ids[: len(CHAT_SPECIAL_TOKENS)])
    assert not any(decoder[i].special for i in ids[len(CHAT_SPECIAL_TOKENS) :])
    for token, token_id in zip(ADDED_TOKENS, ids, strict=True):
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id]
    text = "<memory_verify>no_pass</memory_verify>\n<answer_sql>SELECT 1</answer_sql>"
    tokens = tokenizer.convert_ids_to_tokens(tokenizer.encode(text, add_special_tokens=False))
    assert [t for t in tokens if t.startswith("<")] == ["<memory_verify>", "</memory_verify>", *PROTOCOL_TAG_TOKENS[4:]]
    # special tokens go with skip_special_tokens, the tags that TRL's response parser reads stay
    content = "<think>\nx\n</think>\n\n<tool_call>\n{}\n</tool_call>"
    rendered = f"<|im_start|>assistant\n{content}<|im_end|>"
    assert tokenizer.decode(tokenizer.encode(rendered), skip_special_tokens=True) == "assistant\n" + content
    assert set(CHAT_TAG_TOKENS[:2] + CHAT_TAG_TOKENS[4:]) <= set(
        tokenizer.convert_ids_to_tokens(tokenizer.encode(rendered))
    )


def test_chat_template_renders_a_tool_conversation(tokenizer: Any) -> None:
    from trl.chat_template_utils import qwen3_chat_template

    assert tokenizer.chat_template == qwen3_chat_template  # byte-identical: TRL knows it as Qwen3's
    text = tokenizer.apply_chat_template(CONVERSATION, tools=tool_schemas(), tokenize=False)
    tools = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tool_schemas())
    call = json.dumps({"name": EXEC_SQL, "arguments": {"code": SQL}})
    assert text == (
        f"<|im_start|>system\n{CONVERSATION[0]['content']}\n\n# Tools\n\nYou may call one or more functions to "
        "assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:"
        f"\n<tools>\n{tools}\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        f"<|im_start|>user\n{CONVERSATION[1]['content']}<|im_end|>\n"
        f"<|im_start|>assistant\n<think>\n{THINKING}\n</think>\n\n<tool_call>\n{call}\n</tool_call><|im_end|>\n"
        f"<|im_start|>user\n<tool_response>\n{REPLY}\n</tool_response><|im_end|>\n"
        f"<|im_start|>assistant\n<think>\n\n</think>\n\n{CONVERSATION[4]['content']}<|im_end|>\n"
    )
    prompt = tokenizer.apply_chat_template(CONVERSATION[:2], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>user\n" + CONVERSATION[1]["content"] + "<|im_end|>\n<|im_start|>assistant\n")
    no_thinking = tokenizer.apply_chat_template(
        CONVERSATION[:2], add_generation_prompt=True, tokenize=False, enable_thinking=False
    )
    assert no_thinking == prompt + "<think>\n\n</think>\n\n"


def test_tokenization_round_trips_exactly(tokenizer: Any) -> None:
    text = tokenizer.apply_chat_template(CONVERSATION, tools=tool_schemas(), tokenize=False)
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    rendered = tokenizer.apply_chat_template(CONVERSATION, tools=tool_schemas(), tokenize=True, return_dict=True)
    assert rendered["input_ids"] == ids
    for other in ("Café, Zürich — 東京 🎸 '$x' \t\r\n  ", "SELECT count(*) FROM t WHERE a  >=  1.5e3"):
        assert tokenizer.decode(tokenizer.encode(other, add_special_tokens=False)) == other
    assert len(ids) < len(text) / 2.5  # trained on these texts: a real compression, not bytes


def test_trl_treats_it_as_qwen3(tokenizer: Any) -> None:
    """Tool calls parse with TRL's Qwen3 schema; its training template (used by GRPO's tool loop and SFT's
    assistant-only loss) is prefix preserving and masks exactly the assistant's tokens, end of turn included."""
    import copy

    from trl.chat_template_utils import (
        add_response_schema,
        get_training_chat_template,
        is_chat_template_prefix_preserving,
        is_chat_template_stop_token_trained,
        parse_response,
        qwen3_training_chat_template,
        supports_tool_calling,
    )

    tokenizer = copy.deepcopy(tokenizer)
    assert supports_tool_calling(tokenizer)
    add_response_schema(tokenizer)
    # return_dict=False: transformers >= 5.25 returns a dict from a tokenizing call by default.
    prefix = tokenizer.apply_chat_template(
        CONVERSATION[:2], tools=tool_schemas(), add_generation_prompt=True, return_dict=False
    )
    output = "<think>\nplan\n</think>\n\n<tool_call>\n" + json.dumps({"name": EXEC_SQL, "arguments": {"code": SQL}})
    message = parse_response(tokenizer, tokenizer.encode(output + "\n</tool_call><|im_end|>"), prefix=prefix)
    assert message["reasoning_content"] == "plan"
    assert message["tool_calls"][0]["function"] == {"name": EXEC_SQL, "arguments": {"code": SQL}}

    assert not is_chat_template_prefix_preserving(tokenizer)  # Qwen3's own template: TRL swaps it for training
    template = get_training_chat_template(tokenizer)
    assert template == qwen3_training_chat_template
    assert is_chat_template_stop_token_trained(tokenizer, chat_template=template)
    tokenizer.chat_template = template
    assert is_chat_template_prefix_preserving(tokenizer)
    out = tokenizer.apply_chat_template(
        CONVERSATION, tools=tool_schemas(), return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    last = CONVERSATION[4]["content"]
    assert tokenizer.decode(masked) == (
        f"<think>\n{THINKING}\n</think>\n\n<tool_call>\n{json.dumps({'name': EXEC_SQL, 'arguments': {'code': SQL}})}"
        f"\n</tool_call><|im_end|>\n<think>\n\n</think>\n\n{last}<|im_end|>\n"
    )


def test_generates_and_trains_on_cpu(checkpoint: Path, tokenizer: Any, model: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    inputs = tokenizer.apply_chat_template(
        CONVERSATION[:2], tools=tool_schemas(), add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    prompt_length = inputs["input_ids"].shape[1]
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert prompt_length < output.shape[1] <= prompt_length + 8
    assert isinstance(tokenizer.decode(output[0, prompt_length:]), str)
    torch.manual_seed(0)
    sampled = model.generate(**inputs, max_new_tokens=8, do_sample=True, temperature=1.0)
    assert sampled.shape[1] <= prompt_length + 8

    fresh = AutoModelForCausalLM.from_pretrained(checkpoint)
    ids = tokenizer.apply_chat_template(CONVERSATION, tools=tool_schemas(), return_tensors="pt", return_dict=True)
    optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = fresh(input_ids=ids["input_ids"], labels=ids["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 2  # from uniform (ln of the vocabulary size) towards memorising


def test_same_seed_same_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    import torch

    state = torch.random.get_rng_state()
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is left alone
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (again / name).read_bytes() == (checkpoint / name).read_bytes(), name
    assert (other / "tokenizer.json").read_bytes() == (checkpoint / "tokenizer.json").read_bytes()
    assert (other / "model.safetensors").read_bytes() != (checkpoint / "model.safetensors").read_bytes()


def test_own_corpus_and_sizes() -> None:
    tokenizer = train_tokenizer(["SELECT name FROM singer", "How many singers are there?"], vocab_size=300)
    assert len(tokenizer) <= 300
    for token in ADDED_TOKENS:
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1
    text = "\n".join(protocol_texts())
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer([], vocab_size=100)
    with pytest.raises(ValueError, match="multiple of"):
        build_tiny_model("unused", hidden_size=60, num_heads=4)


# --- real-size shapes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "total", "non_embedding"),
    # the parameter counts Qwen publishes for each model (billions, as rounded on the model cards)
    [("qwen3-0.6b", 0.6, 0.44), ("qwen3-1.7b", 1.7, 1.4), ("qwen3-4b", 4.0, 3.6)],
)
def test_qwen3_shapes_have_the_published_parameter_counts(name: str, total: float, non_embedding: float) -> None:
    import torch
    from transformers import Qwen3ForCausalLM

    shape = QWEN3_SHAPES[name]
    with torch.device("meta"):  # shapes only, no memory
        model = Qwen3ForCausalLM(shape.qwen3_config(151_936, 0, 1))
    count = model.num_parameters()  # the tied embedding counted once
    decimals = len(str(non_embedding).split(".")[1])
    assert round(count / 1e9, 1) == total
    assert round((count - 151_936 * shape.hidden_size) / 1e9, decimals) == non_embedding


def test_a_shaped_model_pads_its_vocabulary_with_reserved_tokens(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shape = ModelShape(32, 80, 1, 4, 2, 16, vocab_size=2_000, max_position_embeddings=1024)
    path = build_model(tmp_path / "shaped", shape, dtype="bfloat16")
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = model.config
    assert (config.intermediate_size, config.head_dim, config.num_key_value_heads) == (80, 16, 2)
    assert len(tokenizer) == config.vocab_size == 2_000 and model.dtype == torch.bfloat16
    first = min(i for token, i in tokenizer.get_vocab().items() if token.startswith("<|reserved_"))
    assert tokenizer.decode([1_999]) == "<|reserved_1999|>" and tokenizer.decode([first]) == f"<|reserved_{first}|>"
    assert tokenizer.convert_tokens_to_ids(EOS_TOKEN) == config.eos_token_id < first  # the chat tokens come first
    messages = [{"role": "user", "content": "How many singers are there?"}]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=False)
    assert max(ids) < first and tokenizer.decode(ids).endswith("<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="unknown model shape"):
        build_model(tmp_path / "x", "qwen3-1000b")
    with pytest.raises(ValueError, match="below the tokenizer"):
        build_model(tmp_path / "x", ModelShape(32, 80, 1, 4, 2, 16, vocab_size=100))
    with pytest.raises(ValueError, match="multiple of num_key_value_heads"):
        build_model(tmp_path / "x", ModelShape(32, 80, 1, 4, 3, 16))
    with pytest.raises(ValueError, match="dtype"):
        build_model(tmp_path / "x", shape, dtype="int8")


# --- the command ------------------------------------------------------------------------------------------------


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _main() -> None:  # keeps "tiny-model" a sub-command
        """test app"""

    register(app)
    return app


def test_cli_builds_a_checkpoint(tmp_path: Path) -> None:
    from transformers import AutoConfig

    out = tmp_path / "tiny"
    args = ["tiny-model", str(out), "--seed", "3", "--vocab-size", "1000", "--hidden-size", "32", "--layers", "1"]
    result = CliRunner().invoke(make_app(), args)
    assert result.exit_code == 0, result.output
    assert "Qwen3ForCausalLM" in result.output and "1,000 tokens" in result.output and str(out) in result.output
    config = AutoConfig.from_pretrained(out)
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (32, 1, 1000)


def test_cli_with_benchmark_data(data_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(make_app(), ["tiny-model", str(tmp_path / "tiny"), "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "4,096 tokens" in result.output  # the dev sets give BPE more than enough pairs


def test_cli_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    result = CliRunner().invoke(app, ["tiny-model", str(tmp_path / "a"), "--hidden-size", "60"])
    assert result.exit_code == 2 and "multiple of" in result.output
    result = CliRunner().invoke(app, ["tiny-model", str(tmp_path / "a"), "--shape", "qwen3-1000b"])
    assert result.exit_code == 2 and "unknown model shape" in result.output
    result = CliRunner().invoke(app, ["tiny-model", str(tmp_path / "a"), "--dtype", "bfloat16"])
    assert result.exit_code == 2 and "--dtype applies to --shape" in result.output
    result = CliRunner().invoke(app, ["tiny-model", str(tmp_path / "b"), "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no SParC, CoSQL or Spider dev set" in result.output
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    result = CliRunner().invoke(app, ["tiny-model", str(tmp_path / "c")])
    assert result.exit_code == 2 and "install mtsql[train]" in result.output
    assert not (tmp_path / "c").exists()
