"""A tiny random-init Qwen3 checkpoint built locally, used exactly as a user's checkpoint would be.

No model weights can be downloaded here, yet the backends, the rollout engine and both trainers must run on
a real Hugging Face checkpoint. :func:`build_tiny_model` writes one into a folder:

- a byte-level BPE tokenizer trained with ``tokenizers`` on mtsql's own texts (the bundled example's dialogues
  played through the environment, so prompts, schemas, tool replies and answers as the model sees them; the
  benchmarks' dev questions and SQL when a data folder is given; the protocol's fixed strings), in the
  pipeline of Qwen3's tokenizer class (``Qwen2Tokenizer``: NFC, Qwen's split regex, byte level), so
  ``AutoTokenizer`` loads it as it loads Qwen3's;
- Qwen3's added tokens with Qwen3's flags (:data:`CHAT_SPECIAL_TOKENS` special, :data:`CHAT_TAG_TOKENS` not),
  and the protocol's tags (:data:`PROTOCOL_TAG_TOKENS`) as single tokens too;
- the original Qwen3 chat template, byte-identical to the copy TRL ships, so TRL treats the checkpoint as
  Qwen3: it parses tool calls with its Qwen3 response schema and swaps in its training variant (prefix
  preserving, ``{% generation %}`` blocks) for GRPO's tool loop and SFT's assistant-only loss;
- ``Qwen3ForCausalLM`` with seeded random weights, tied embeddings, and Qwen3's token ids in the config and
  generation config (eos ``<|im_end|>`` then ``<|endoftext|>``, pad and bos ``<|endoftext|>``).

:func:`build_model` writes the same kind of checkpoint with any :class:`ModelShape`, among them Qwen3's published
architectures (:data:`QWEN3_SHAPES`), to measure memory and step times of real-size models without their weights.

torch, transformers, tokenizers and TRL (the ``[train]`` extra) are imported inside the functions, so importing
this module stays cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mtsql.data import DATASETS, DatasetNotFoundError, Dialogue, load_dialogues, read_dataset_file
from mtsql.env import DialogueEnv, GoldPolicy, Message, load_templates, tool_schemas
from mtsql.env.protocol import Action, VerdictTag
from mtsql.errors import ConfigError
from mtsql.examples import load_example

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: Qwen3's special tokens (``special=True``: dropped by ``decode(skip_special_tokens=True)``), in Qwen3's order.
CHAT_SPECIAL_TOKENS: Final = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
#: Qwen3's added tokens that are not special (kept by ``skip_special_tokens``, as TRL's response parser needs).
CHAT_TAG_TOKENS: Final = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>")
#: The protocol's verdict and answer tags; single tokens here (Qwen3 splits them into pieces).
PROTOCOL_TAG_TOKENS: Final = tuple(
    tag for name in (VerdictTag.EXEC, VerdictTag.MEMORY, Action.ANSWER) for tag in (f"<{name}>", f"</{name}>")
)
ADDED_TOKENS: Final = CHAT_SPECIAL_TOKENS + CHAT_TAG_TOKENS + PROTOCOL_TAG_TOKENS

EOS_TOKEN: Final = "<|im_end|>"
PAD_TOKEN: Final = "<|endoftext|>"

_MIN_VOCAB: Final = 256 + len(ADDED_TOKENS)
# Added tokens are cut out of the text before BPE sees it, as encoding does, so no merge is spent on them.
_ADDED_SPLIT: Final = re.compile("|".join(map(re.escape, ADDED_TOKENS)))


def tiny_corpus(data_dir: Path | str | None = None) -> list[str]:
    """The default training texts: the bundled ``festival`` example's dialogues replayed through the environment
    with their gold SQL (every message in Qwen3's chat framing), its database's SQL script, and with
    ``data_dir`` the questions and SQL of the SParC, CoSQL and Spider dev sets found there."""
    example = load_example("festival")
    dialogues = read_dataset_file(example.dialogues, "sparc", "example").dialogues
    env = DialogueEnv(example.db_dir)
    texts = [_chat_text(m) for dialogue in dialogues for m in _gold_episode(env, dialogue)]
    texts.append((resources.files("mtsql.examples") / "festival" / "festival.sql").read_text(encoding="utf-8"))
    if data_dir is not None:
        texts += benchmark_texts(data_dir)
    return texts


def benchmark_texts(data_dir: Path | str) -> list[str]:
    """Every dev question and gold SQL of the datasets under ``data_dir``; raises if none is there."""
    texts = []
    for dataset in DATASETS:
        try:
            dialogues = load_dialogues(dataset, "dev", data_dir)
        except DatasetNotFoundError:
            continue
        texts += [text for dialogue in dialogues for turn in dialogue.turns for text in (turn.utterance, turn.query)]
    if not texts:
        raise DatasetNotFoundError(f"no SParC, CoSQL or Spider dev set under {data_dir}")
    return texts


def protocol_texts() -> list[str]:
    """The protocol's fixed strings, always in the corpus: the tool-reply templates as written, the tool
    schemas as the chat template renders them, the verdicts and the chat roles."""
    templates = [template.template for template in load_templates().templates.values()]
    tools = [json.dumps(tool, ensure_ascii=False) for tool in tool_schemas()]
    return [*templates, *tools, "pass", "no_pass", "system", "user", "assistant"]


def train_tokenizer(
    texts: Iterable[str], *, vocab_size: int = 4096, model_max_length: int = 8192
) -> PreTrainedTokenizerBase:
    """A Qwen3-style tokenizer whose BPE is trained on ``texts``, with the added tokens and the Qwen3 chat template.

    ``vocab_size`` counts the added tokens; a small corpus yields fewer tokens (BPE runs out of pairs).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from trl.chat_template_utils import qwen3_chat_template

    if vocab_size < _MIN_VOCAB:
        raise ConfigError(
            f"vocab_size must be at least {_MIN_VOCAB} (256 bytes and the added tokens), not {vocab_size}"
        )
    # Train in exactly the pipeline Qwen2Tokenizer rebuilds when it loads the checkpoint.
    pipeline = Qwen2Tokenizer().backend_tokenizer
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = pipeline.normalizer
    bpe.pre_tokenizer = pipeline.pre_tokenizer
    bpe.decoder = pipeline.decoder
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(ADDED_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    pieces = (piece for text in [*texts, *protocol_texts()] for piece in _ADDED_SPLIT.split(text) if piece)
    bpe.train_from_iterator(pieces, trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(model["vocab"])
    # The added tokens take the ids after the BPE vocabulary, in Qwen3's order, as in Qwen3's tokenizer.
    vocab.update({token: len(model["vocab"]) + index for index, token in enumerate(ADDED_TOKENS)})
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[tuple(merge) for merge in model["merges"]],
        unk_token=None,
        bos_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        errors="replace",
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        model_max_length=model_max_length,
    )
    tokenizer.add_special_tokens({"extra_special_tokens": list(CHAT_SPECIAL_TOKENS[1:])})  # as Qwen3 lists them
    tokenizer.add_tokens(list(CHAT_TAG_TOKENS + PROTOCOL_TAG_TOKENS))
    tokenizer.chat_template = qwen3_chat_template
    return tokenizer


@dataclass(frozen=True)
class ModelShape:
    """The architecture of a random-init Qwen3: widths, depth, attention heads and the rows of the embedding.

    ``vocab_size`` ``None`` sizes the embedding to the tokenizer; a larger value pads the tokenizer with
    reserved special tokens (``<|reserved_N|>``) up to it, as Qwen3 pads its 151,669 tokens to 151,936 rows, so
    every id the model can sample still decodes.
    """

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int | None = None
    max_position_embeddings: int = 8192

    def check(self) -> None:
        if min(self.num_layers, self.num_heads, self.num_key_value_heads, self.intermediate_size) < 1:
            raise ConfigError(f"every size of the model must be at least 1: {self}")
        if self.head_dim < 2 or self.head_dim % 2:  # rotary embeddings need an even head size
            raise ConfigError(f"head_dim must be even and at least 2, not {self.head_dim}")
        if self.num_heads % self.num_key_value_heads:
            raise ConfigError(f"num_heads ({self.num_heads}) must be a multiple of num_key_value_heads")

    def qwen3_config(self, vocab_size: int, pad_token_id: int, eos_token_id: int, dtype: str = "float32") -> Any:
        """The ``Qwen3Config`` of this shape with ``vocab_size`` embedding rows (tied, as the small Qwen3s)."""
        from transformers import Qwen3Config

        return Qwen3Config(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            max_position_embeddings=self.max_position_embeddings,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
            tie_word_embeddings=True,
            bos_token_id=pad_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            dtype=dtype,
        )


#: Qwen3's published architectures (their ``config.json``), for memory and speed measurements with random weights.
QWEN3_SHAPES: Final = {
    "qwen3-0.6b": ModelShape(1024, 3072, 28, 16, 8, 128, 151_936, 40_960),
    "qwen3-1.7b": ModelShape(2048, 6144, 28, 16, 8, 128, 151_936, 40_960),
    "qwen3-4b": ModelShape(2560, 9728, 36, 32, 8, 128, 151_936, 40_960),
}


def build_tiny_model(
    out_dir: Path | str,
    *,
    corpus: Iterable[str] | None = None,
    data_dir: Path | str | None = None,
    vocab_size: int = 4096,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_position_embeddings: int = 8192,
    seed: int = 0,
) -> Path:
    """Write a tiny random-init Qwen3 checkpoint into ``out_dir`` and return its path.

    The tokenizer is trained on ``corpus`` (default: :func:`tiny_corpus`'s example texts), plus the benchmark
    texts of ``data_dir`` and :func:`protocol_texts`. Attention has ``num_heads`` query heads of
    ``hidden_size // num_heads`` dimensions and half as many key/value heads (grouped-query, as Qwen3). The
    same arguments give the same files: the tokenizer's training is deterministic and the weights are drawn
    after seeding torch with ``seed`` inside a forked random state, so the caller's stays untouched.
    """
    if num_layers < 1 or num_heads < 1:
        raise ConfigError(f"num_layers ({num_layers}) and num_heads ({num_heads}) must be at least 1")
    if hidden_size < 2 or hidden_size % (2 * num_heads):  # rotary embeddings need an even head size
        raise ConfigError(f"hidden_size ({hidden_size}) must be a multiple of 2 * num_heads ({num_heads})")
    shape = ModelShape(
        hidden_size=hidden_size,
        intermediate_size=3 * hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        head_dim=hidden_size // num_heads,
        max_position_embeddings=max_position_embeddings,
    )
    return build_model(out_dir, shape, corpus=corpus, data_dir=data_dir, vocab_size=vocab_size, seed=seed)


def build_model(
    out_dir: Path | str,
    shape: ModelShape | str,
    *,
    corpus: Iterable[str] | None = None,
    data_dir: Path | str | None = None,
    vocab_size: int = 4096,
    seed: int = 0,
    dtype: str = "float32",
) -> Path:
    """Write a random-init Qwen3 checkpoint of ``shape`` (a :class:`ModelShape` or a :data:`QWEN3_SHAPES` name)
    into ``out_dir`` and return its path; the tokenizer as in :func:`build_tiny_model` (``vocab_size`` is its
    BPE budget). ``dtype`` is the dtype the weights are saved in (``bfloat16`` halves a real-size checkpoint).
    """
    import torch
    from tokenizers import AddedToken
    from transformers import GenerationConfig, Qwen3ForCausalLM

    if isinstance(shape, str):
        if shape not in QWEN3_SHAPES:
            raise ConfigError(f"unknown model shape {shape!r}: one of {', '.join(QWEN3_SHAPES)}")
        shape = QWEN3_SHAPES[shape]
    shape.check()
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"dtype must be float32, bfloat16 or float16, not {dtype!r}")
    if corpus is None:
        texts = tiny_corpus(data_dir)
    else:
        texts = [*corpus, *(benchmark_texts(data_dir) if data_dir is not None else ())]
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, model_max_length=shape.max_position_embeddings)
    if shape.vocab_size is not None:
        if shape.vocab_size < len(tokenizer):
            raise ConfigError(f"vocab_size {shape.vocab_size} is below the tokenizer's {len(tokenizer)} tokens")
        reserved = range(len(tokenizer), shape.vocab_size)
        tokenizer.add_tokens(
            [AddedToken(f"<|reserved_{i}|>", special=True, normalized=False) for i in reserved], special_tokens=True
        )
    pad, eos = tokenizer.convert_tokens_to_ids([PAD_TOKEN, EOS_TOKEN])
    # no padding rows beyond the tokenizer: every id the model can sample decodes
    config = shape.qwen3_config(len(tokenizer), pad, eos, dtype)
    default_dtype = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_default_dtype(getattr(torch, dtype))  # drawn in the saved dtype: no float32 copy of a big model
        try:
            model = Qwen3ForCausalLM(config)
        finally:
            torch.set_default_dtype(default_dtype)
    model.generation_config = GenerationConfig(bos_token_id=pad, eos_token_id=[eos, pad], pad_token_id=pad)
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _gold_episode(env: DialogueEnv, dialogue: Dialogue) -> list[Message]:
    """Every message of a gold replay of ``dialogue``: the environment's and the assistant's, in order."""
    policy = GoldPolicy(dialogue)
    observation, info = env.reset(dialogue)
    messages = list(observation)
    done = False
    while not done:
        action = policy(observation, info)
        observation, _, terminated, truncated, info = env.step(action)
        messages += [{"role": "assistant", "content": action}, *observation]
        done = terminated or truncated
    return messages


def _chat_text(message: Message) -> str:
    """A message in Qwen3's chat framing (tool replies are user turns wrapped in ``<tool_response>``)."""
    if message["role"] == "tool":
        return f"<|im_start|>user\n<tool_response>\n{message['content']}\n</tool_response><|im_end|>\n"
    return f"<|im_start|>{message['role']}\n{message['content']}<|im_end|>\n"
