"""``mtsql rollout`` end to end, through the installed console command with the tiny model: the records, their
masks and environment tokens, resuming after a rerun and after a SIGKILL, and the argument errors."""

from __future__ import annotations

import itertools
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtsql.cli.main import app
from mtsql.data import load_dialogues
from mtsql.rollout import Trajectory, read_episodes

_BESIDE_PYTHON = Path(sys.executable).with_name("mtsql")
MTSQL = str(_BESIDE_PYTHON) if _BESIDE_PYTHON.is_file() else shutil.which("mtsql")
END = "<|im_end|>"
# Small and quick: a few tokens a message, one message a question.
QUICK = ("--max-tokens", "8", "--max-steps", "1")


def normalise(output: str) -> str:
    """The text of a CLI message without rich's box and line wrapping."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", output).split())


def command(*args: str) -> list[str]:
    if MTSQL is None:
        pytest.skip("the mtsql console command is not installed (pip install -e .)")
    return [MTSQL, *args]


def mtsql(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess, in the tests' environment (their private cache)."""
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint, written by ``mtsql tiny-model`` as a user would."""
    pytest.importorskip("transformers")
    pytest.importorskip("trl")
    path = tmp_path_factory.mktemp("tiny") / "model"
    proc = mtsql("tiny-model", str(path))
    assert proc.returncode == 0, proc.stderr
    return path


def complete_records(path: Path) -> int:
    return len(read_episodes(path)) if path.exists() else 0


def template_tail(tokenizer: Any, observation: Sequence[dict[str, Any]]) -> str:
    """What the checkpoint's own chat template writes after an assistant message's text for ``observation``,
    the generation prompt included (starting with the assistant message's closing token)."""
    mark = "MODEL-SEGMENT-TEXT"
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": mark}, *observation]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text[text.rindex(mark) + len(mark) :]


def check_record(record: Trajectory, tokenizer: Any) -> None:
    """Equal lengths, mask 1 exactly on model segments and 0 on environment segments, which are the template's."""
    ids, mask = record.completion_ids, record.completion_mask
    assert len(ids) == len(mask) == len(record.logprobs) > 0
    segments = record.segments
    assert segments[0].start == 0 and segments[-1].end == len(ids)
    assert all(a.end == b.start for a, b in itertools.pairwise(segments))
    assert [s.kind for s in segments] == [("model", "env")[i % 2] for i in range(len(segments))]
    for segment in segments:
        assert set(mask[segment.start : segment.end]) == {int(segment.kind == "model")}
    # Each step is one model segment; a step the episode went on after is followed by the environment's reply.
    model_segments = segments[::2]
    assert len(model_segments) == len(record.steps)
    env_segments = iter(segments[1::2])
    for segment, step in zip(model_segments, record.steps, strict=True):
        if step.observation is None:
            continue
        reply = next(env_segments)
        expected = template_tail(tokenizer, step.observation)
        if ids[segment.end - 1] == tokenizer.convert_tokens_to_ids(END):
            expected = expected.removeprefix(END)
        assert tokenizer.decode(ids[reply.start : reply.end], skip_special_tokens=False) == expected
    assert next(env_segments, None) is None


@pytest.mark.slow
def test_rollout_resumes_after_a_kill_and_writes_masked_records(model: Path, data_dir: Path, tmp_path: Path) -> None:
    """The issue's acceptance test: 8 SParC dev dialogues × 2 samples. A run killed (SIGKILL) after its first
    records resumes to exactly the 16 records, with their masks and the template's environment tokens; running
    it again adds nothing."""
    from transformers import AutoTokenizer

    out = tmp_path / "rollouts.jsonl"
    run = ("rollout", "--model", str(model), "--dataset", "sparc", "--split", "dev", "--data-dir", str(data_dir),
           "--limit", "8", "--samples", "2", *QUICK, "--out", str(out))  # fmt: skip
    expected = {f"{d.id}#{s}" for d in load_dialogues("sparc", "dev", data_dir)[:8] for s in (0, 1)}

    # Two episodes in flight, so the records come two at a time: killed after the first, well before the last.
    killed = subprocess.Popen(
        command(*run, "--concurrency", "2"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while complete_records(out) == 0 and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.kill()
    _, stderr = killed.communicate()
    assert killed.returncode == -signal.SIGKILL, stderr
    assert 0 < complete_records(out) < 16

    proc = mtsql(*run)
    assert proc.returncode == 0, proc.stderr
    records = read_episodes(out)
    assert len(records) == 16 and {r.id for r in records} == expected
    assert out.read_text(encoding="utf-8").count("\n") == 16  # nothing left of a line cut by the kill
    tokenizer = AutoTokenizer.from_pretrained(model)
    for record in records:
        check_record(record, tokenizer)
    assert all(record.stats.env_tokens > 0 for record in records)

    before = out.read_bytes()
    proc = mtsql(*run)
    assert proc.returncode == 0, proc.stderr
    assert "episodes written now 0 episodes already there (resumed) 16" in normalise(proc.stdout)
    assert out.read_bytes() == before


@pytest.mark.slow
def test_an_output_file_with_other_settings_is_refused(model: Path, tmp_path: Path) -> None:
    """In process (the model is the slow part, and it is built already): refused before anything is written."""
    out = tmp_path / "festival.jsonl"
    run = ["rollout", "--model", str(model), "--example", "festival", "--limit", "1", *QUICK, "--out", str(out)]
    assert CliRunner().invoke(app, run).exit_code == 0
    before = out.read_bytes()
    result = CliRunner().invoke(app, [*run, "--history", "oracle"])
    assert result.exit_code == 2
    assert "holds episodes with history_mode='predicted', this run has 'oracle': write to another file" in normalise(
        result.output
    )
    assert out.read_bytes() == before


@pytest.mark.slow
def test_templates_from_a_file_are_what_the_model_reads_and_recorded(model: Path, tmp_path: Path) -> None:
    """--templates swaps the environment's texts without code; a file keeps to its own version."""
    from mtsql.env.templates import builtin_template_text

    custom = tmp_path / "terse.toml"
    text = builtin_template_text().replace('version = "mtsql-v1"', 'version = "terse-v1"')
    custom.write_text(text.replace("You are an expert in SQLite.", "You write SQLite for a living."), encoding="utf-8")
    out = tmp_path / "festival.jsonl"
    run = ["rollout", "--model", str(model), "--example", "festival", "--limit", "1", *QUICK, "--out", str(out)]
    assert CliRunner().invoke(app, [*run, "--templates", str(custom)]).exit_code == 0
    (record,) = read_episodes(out)
    assert record.settings.template_version == "terse-v1"
    assert record.prompt_messages[0]["content"].startswith("You write SQLite for a living.")
    result = CliRunner().invoke(app, run)  # the default set: another version, so another file
    assert result.exit_code == 2 and "template_version='terse-v1'" in normalise(result.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--example", "festival", "--dataset", "sparc"), "Invalid value for --dataset: give exactly one of"),
        (("--dataset", "sparc"), "Invalid value for --data-dir: required with --dataset (or set MTSQL_DATA_DIR)"),
        (("--example", "festival", "--backend-option", "seed"), "expected KEY=VALUE, got 'seed'"),
        (("--example", "festival", "--templates", "absent.toml"), "--templates: cannot read template file absent.toml"),
    ],
)
def test_argument_errors_exit_2(
    args: tuple[str, ...], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before any model is loaded (there is none at --model) and before OUT is created."""
    monkeypatch.delenv("MTSQL_DATA_DIR", raising=False)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["rollout", "--model", str(tmp_path / "none"), "--out", str(out), *args])
    assert result.exit_code == 2
    assert message in normalise(result.output)
    assert not out.exists()


def test_an_out_file_that_is_not_a_records_file_is_refused_before_the_model_loads(tmp_path: Path) -> None:
    """The reproduction of a file destroyed by --out: a copy of the README given as --out is refused (exit 2) and
    left as it was; the model named does not even exist, so nothing was loaded before the refusal."""
    notes = tmp_path / "notes.md"
    shutil.copy(Path(__file__).resolve().parents[2] / "README.md", notes)
    before = notes.read_bytes()
    args = ["rollout", "--model", str(tmp_path / "no-such-model"), "--example", "festival", "--out", str(notes)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "line 1: not an episode record" in normalise(result.output)
    assert notes.read_bytes() == before
    folder = CliRunner().invoke(app, ["rollout", "--model", "x", "--example", "festival", "--out", str(tmp_path)])
    assert folder.exit_code == 2 and "is a directory" in normalise(folder.output)
