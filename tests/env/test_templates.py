from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from mtsql.data import Dialogue
from mtsql.env import (
    DEFAULT_TEMPLATES,
    TEMPLATE_FIELDS,
    DialogueEnv,
    TemplateError,
    available_templates,
    load_templates,
    parse_templates,
)
from mtsql.env.templates import builtin_template_text, is_template_path


def builtin_text(name: str = DEFAULT_TEMPLATES) -> str:
    return (resources.files("mtsql.env") / "templates" / f"{name}.toml").read_text(encoding="utf-8")


def minimal_toml(version: str = "test-v1", **overrides: str) -> str:
    """A complete template file: every template is its name followed by all its fields."""
    lines = [f'version = "{version}"', "[templates]"]
    for name, fields in TEMPLATE_FIELDS.items():
        body = overrides.get(name, name + "".join(f" ${field}" for field in sorted(fields)))
        lines.append(f"{name} = '''{body}'''")
    return "\n".join(lines) + "\n"


def test_load_builtin_by_name() -> None:
    templates = load_templates()
    assert templates.version == "mtsql-v1" == DEFAULT_TEMPLATES
    assert templates.source == "mtsql-v1"
    assert set(templates.templates) == set(TEMPLATE_FIELDS)
    assert DEFAULT_TEMPLATES in available_templates()


def test_builtin_texts_carry_the_protocol() -> None:
    templates = load_templates()
    system = templates.render("system", max_steps=4)
    for tag in ("<think>", "<tool_call>", "exec_sql", "memory_retrieve", "<exec_verify>pass</exec_verify>",
                "<memory_verify>no_pass</memory_verify>", "<answer_sql>", "4 messages"):  # fmt: skip
        assert tag in system
    reply = templates.render(
        "exec_reply", question="Q?", sql="SELECT 1", result="1 row", after_pass="ANSWER NOW", turn_number=1
    )
    assert "Q?" in reply and "SELECT 1" in reply and "ANSWER NOW" in reply and "<exec_verify>no_pass" in reply
    assert '{"name": "exec_sql"' in templates.render("error", error="bad", error_kind="bad_json")


def test_every_builtin_set_loads_and_is_complete() -> None:
    for name in available_templates():
        data = tomllib.loads(builtin_text(name))
        assert load_templates(name).version == data["version"]


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(minimal_toml("mine-v2"), encoding="utf-8")
    for source in (path, str(path)):
        templates = load_templates(source)
        assert (templates.version, templates.source) == ("mine-v2", str(path))
    assert load_templates(path).render("user_next", question="Q", turn_number=2, max_steps=4) == "user_next 4 Q 2"


def test_relative_path_with_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "local.toml").write_text(minimal_toml("local-v1"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_templates("local.toml").version == "local-v1"


def test_missing_field_at_render_names_it() -> None:
    templates = load_templates()
    with pytest.raises(
        TemplateError, match=r"'exec_reply' of mtsql-v1 needs the field '(question|sql|result|after_pass|turn_number)'"
    ):
        templates.render("exec_reply", sql="SELECT 1")
    with pytest.raises(TemplateError, match="no template 'nope'"):
        templates.render("nope")


def test_dollars_and_braces() -> None:
    templates = parse_templates(minimal_toml(error='{"json": "$error"} costs $$5 ${error_kind}x'))
    assert templates.render("error", error="E", error_kind="K") == '{"json": "E"} costs $5 Kx'
    # substituted values are never re-interpreted
    assert templates.render("error", error="$error {x}", error_kind="{}") == '{"json": "$error {x}"} costs $5 {}x'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("version = [", "not valid TOML"),
        ("[templates]\nsystem = 'x'", 'non-empty string "version"'),
        ('version = ""\n[templates]', 'non-empty string "version"'),
        ('version = "v"', r"\[templates\] table is required"),
        ('version = "v"\n[templates]\nsystem = "x"', "missing template"),
        (minimal_toml() + "extra = 'x'\n", "unknown template.*extra"),
        (minimal_toml(user_next="Question $number"), r"'user_next' uses unknown field\(s\) number \(available:"),
        (minimal_toml(error="cost $5"), "bad placeholder"),
        (minimal_toml().replace("continue = '''continue'''", "continue = 3"), "'continue' must be a string"),
    ],
)
def test_bad_files(content: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse_templates(content, "f.toml")


def test_a_file_may_not_reuse_a_builtin_version_with_other_texts(tmp_path: Path) -> None:
    """Records name the version: changed texts under a built-in's version would pass for the built-in."""
    path = tmp_path / "copy.toml"
    path.write_text(builtin_text(), encoding="utf-8")
    assert load_templates(path).version == DEFAULT_TEMPLATES  # an unchanged copy is the built-in set
    changed = builtin_text().replace("You are an expert in SQLite.", "You are a SQLite expert.")
    assert changed != builtin_text()
    path.write_text(changed, encoding="utf-8")
    with pytest.raises(TemplateError, match=f"version '{DEFAULT_TEMPLATES}' is a built-in set's, and these texts"):
        load_templates(path)
    path.write_text(changed.replace(f'version = "{DEFAULT_TEMPLATES}"', 'version = "mine-v1"'), encoding="utf-8")
    assert load_templates(path).version == "mine-v1"


def test_builtin_text_and_what_reads_as_a_path() -> None:
    assert builtin_template_text() == builtin_text()
    with pytest.raises(TemplateError, match="no built-in template set 'nope'"):
        builtin_template_text("nope")
    assert [is_template_path(v) for v in ("mtsql-v1", "my.toml", "dir/x", Path("x"), "a\\b")] == [
        False,
        True,
        True,
        True,
        True,
    ]


def test_unknown_name_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"no built-in template set 'mtsql-v0' \(available: .*mtsql-v1"):
        load_templates("mtsql-v0")
    with pytest.raises(TemplateError, match="cannot read template file"):
        load_templates(tmp_path / "absent.toml")


def test_environment_records_the_version_and_uses_the_texts(db_dir: Path, dialogue: Dialogue, tmp_path: Path) -> None:
    path = tmp_path / "custom.toml"
    path.write_text(minimal_toml("custom-v3"), encoding="utf-8")
    env = DialogueEnv(db_dir, templates=path)
    observation, info = env.reset(dialogue)
    assert info["template_version"] == "custom-v3"
    assert observation[0]["content"] == "system 4"
    assert re.fullmatch(r"user_first concert 4 Show all singers\. CREATE TABLE .* 1", observation[1]["content"], re.S)
    observation, _, _, _, info = env.step(
        '<tool_call>{"name": "exec_sql", "arguments": {"code": "SELECT 1"}}</tool_call>'
    )
    assert info["template_version"] == "custom-v3"
    assert observation[0]["content"].startswith("exec_reply after_pass_first Show all singers. 1 row")
    assert env.record is not None and env.record.template_version == "custom-v3"
    # a loaded set can be shared between environments
    assert DialogueEnv(db_dir, templates=env.templates).templates is env.templates


def test_the_documented_fields_and_error_kinds_are_the_code_s() -> None:
    """docs/environment.md's tables are what users edit templates and read records by: they must not drift."""
    from mtsql.env.protocol import ErrorKind

    doc = (Path(__file__).resolve().parents[2] / "docs" / "environment.md").read_text(encoding="utf-8")
    documented: dict[str, set[str]] = {}
    for line in doc.splitlines():
        cells = line.split("|")
        if len(cells) == 5 and cells[1].strip().startswith("`"):
            names = re.findall(r"`(\w+)`", cells[1])
            for name in names:
                documented[name] = set(re.findall(r"\$(\w+)", cells[3]))
    templates = {name: fields for name, fields in documented.items() if name in TEMPLATE_FIELDS}
    assert templates == {name: set(fields) for name, fields in TEMPLATE_FIELDS.items()}
    error_rows = {cells.split("|")[1].strip().strip("`") for cells in doc.splitlines() if cells.count("|") == 3}
    assert {kind.value for kind in ErrorKind} <= error_rows
