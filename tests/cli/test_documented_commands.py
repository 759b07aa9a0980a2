"""Every ``mtsql`` command shown in README.md and docs/ parses with the CLI as it is, so the documentation cannot
drift from the options again. Each command line of a shell block is run through the command's own argument
parsing (option names, types, choices, required arguments), without running it; lines with ``...`` placeholders
are left out, and ``python -m mtsql``, ``accelerate launch -m mtsql`` and ``torchrun -m mtsql`` lines are
included. Commands quoted in the text (`` `mtsql rollout --out FILE.jsonl` ``) name a command and some of its
options: the command must exist and the options must be its own (required arguments may be left out there).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
import typer.main

from mtsql.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```(?:bash|sh|shell|console)\n(.*?)```", re.S)
_MTSQL = re.compile(r"(?:^|\s)(?:-m\s+)?mtsql\s+(.*)$")


def quoted_commands() -> list[tuple[str, str]]:
    """(where, the arguments after ``mtsql``) of every command quoted in the documents' text."""
    found = []
    for document in DOCUMENTS:
        text = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.S)
        for span in re.findall(r"`mtsql ([^`]+)`", text):
            if "..." not in span and "…" not in span and "/" not in span.split()[0]:
                found.append((document.name, " ".join(span.split())))
    return found


def documented_commands() -> list[tuple[str, str]]:
    """(where, the arguments after ``mtsql``) of every command line in the documents' shell blocks."""
    found = []
    for document in DOCUMENTS:
        for block in _BLOCK.findall(document.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s+#.*$", "", line).strip()
                for part in line.split("&&"):
                    match = _MTSQL.search(part.strip())
                    if match and "..." not in part:
                        found.append((document.name, re.split(r"\s[>|]\s", match.group(1))[0].strip()))
    return found


COMMANDS = documented_commands()
QUOTED = quoted_commands()


def parse(args: list[str], *, partial: bool = False) -> typer.Context | None:
    """The context the command line would run with (its arguments parsed and checked), without running it.
    ``partial``: the line may stop at a group's name and leave out required arguments."""
    command = typer.main.get_command(app)
    name, parent = "mtsql", None
    while hasattr(command, "get_command"):  # a group: the next word names the command
        parent = typer.Context(command, info_name=name, parent=parent)
        if not args:
            if partial:
                return None
            raise AssertionError(f"{name}: no command given")
        name, args = args[0], args[1:]
        sub = command.get_command(parent, name)
        if sub is None:
            raise AssertionError(f"no command {name!r}")
        command = sub
    if partial:  # the options named must be the command's own; values and required ones are not checked
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        unknown = [arg.split("=")[0] for arg in args if arg.startswith("-") and arg.split("=")[0] not in known]
        if unknown:
            raise AssertionError(f"mtsql {name} has no option {', '.join(unknown)}")
        return typer.Context(command, info_name=name, parent=parent)
    return command.make_context(name, args, parent=parent)


def test_the_documents_show_commands() -> None:
    assert len(COMMANDS) >= 30
    assert {where for where, _ in COMMANDS} >= {"README.md", "rl.md"}


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=[f"{w}: {c[:60]}" for w, c in COMMANDS])
def test_a_documented_command_parses(where: str, line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MTSQL_DATA_DIR", raising=False)
    try:
        parse(shlex.split(line))
    except Exception as err:  # the parser's own usage errors, as the user would see them
        pytest.fail(f"{where}: `mtsql {line}` does not parse: {err}")


@pytest.mark.parametrize(("where", "line"), QUOTED, ids=[f"{w}: {c[:60]}" for w, c in QUOTED])
def test_a_quoted_command_names_a_command_and_its_options(where: str, line: str) -> None:
    try:
        parse(shlex.split(line), partial=True)
    except Exception as err:
        pytest.fail(f"{where}: `mtsql {line}` names what the CLI does not have: {err}")


def test_the_parser_check_catches_a_wrong_option() -> None:
    with pytest.raises(Exception, match="--plain"):
        parse(["evaluate", "--gold", "g.txt", "--pred", "p.txt", "--plain"])
    with pytest.raises(AssertionError, match="no command 'nope'"):
        parse(["data", "nope"])
    with pytest.raises(AssertionError, match="no option --plain"):
        parse(["evaluate", "--plain"], partial=True)
    assert parse(["rollout", "--out", "x.jsonl"], partial=True) is not None
