"""Versioned texts of the environment: system and question prompts, tool replies, error and budget messages.

Every text the model reads comes from a template file, so prompts can be changed, compared and recorded
without touching code. A file is TOML::

    version = "mtsql-v1"                      # recorded in every environment record
    description = "..."                       # optional
    [templates]
    exec_reply = \"\"\"... $question ... $sql ... $result ... $after_pass\"\"\"
    ...

Placeholders are :class:`string.Template` fields (``$name`` or ``${name}``; ``$$`` is a literal dollar),
chosen over ``str.format`` because prompts quote JSON tool calls full of braces. Loading checks that every
template of :data:`TEMPLATE_FIELDS` is present, that nothing else is, and that each uses only the fields
the environment provides for it; rendering with a missing field raises :class:`TemplateError` naming it.
Built-in sets live in ``mtsql/env/templates/<name>.toml``; :func:`load_templates` takes such a name or the
path of a user's file.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Final

from mtsql.errors import MtsqlError

DEFAULT_TEMPLATES: Final = "mtsql-v1"

#: Each template and the fields it may use (a template need not use all of them).
TEMPLATE_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "system": frozenset({"max_steps"}),
    "user_first": frozenset({"question", "schema", "db_id", "turn_number", "max_steps"}),
    "user_next": frozenset({"question", "turn_number", "max_steps"}),
    "exec_reply": frozenset({"question", "sql", "result", "after_pass", "turn_number"}),
    "after_pass_first": frozenset(),
    "after_pass_later": frozenset(),
    "memory_reply": frozenset({"question", "sql", "result", "memory", "history_note", "turn_number"}),
    "memory_turn": frozenset({"turn_number", "question", "sql", "parsed", "preview"}),
    "history_predicted": frozenset(),
    "history_oracle": frozenset(),
    "no_sql_yet": frozenset(),
    "error": frozenset({"error", "error_kind"}),
    "continue": frozenset(),
    "budget_exhausted": frozenset({"max_steps", "final_sql"}),
}


class TemplateError(MtsqlError, ValueError):
    """A template file that cannot be used, or a render call missing a field."""


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """A loaded, checked set of templates; ``source`` is the built-in name or the file it came from.

    ``templates`` are the texts as written; rendering uses their translation to ``str.format`` strings,
    which substitutes in C (about twice as fast as ``Template.substitute``, and the environment renders on
    every step).
    """

    version: str
    source: str
    templates: Mapping[str, Template]
    formats: Mapping[str, str]

    def render(self, name: str, /, **fields: object) -> str:
        try:
            return self.formats[name].format_map(fields)
        except KeyError as err:
            if name not in self.formats:
                raise TemplateError(f"no template {name!r} in {self.version}") from None
            raise TemplateError(f"template {name!r} of {self.version} needs the field {err.args[0]!r}") from None


def available_templates() -> list[str]:
    """The names of the built-in template sets."""
    folder = resources.files("mtsql.env") / "templates"
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml"))


def is_template_path(name_or_path: str | Path) -> bool:
    """Whether :func:`load_templates` reads this as a file (a ``Path``, ``*.toml``, or with a separator)."""
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text or "\\" in text


def templates_relative_to(name_or_path: str, base: Path) -> str:
    """A run config's ``templates`` value: a file relative to the config's folder, a built-in name as written."""
    return str(base / name_or_path) if is_template_path(name_or_path) else name_or_path


def builtin_template_text(name: str = DEFAULT_TEMPLATES) -> str:
    """The TOML text of a built-in set: the starting point for a file of one's own."""
    resource = resources.files("mtsql.env") / "templates" / f"{name}.toml"
    if not resource.is_file():
        raise TemplateError(
            f"no built-in template set {name!r} (available: {', '.join(available_templates())}); "
            "give a path to use your own file"
        )
    return resource.read_text(encoding="utf-8")


def load_templates(name_or_path: str | Path = DEFAULT_TEMPLATES) -> TemplateSet:
    """A built-in set by name (``mtsql-v1``) or a TOML file by path; raises :class:`TemplateError`.

    A file may not reuse a built-in set's version with other texts: records name the version, and runs with
    different texts under one version could not be told apart (a copy from ``mtsql templates show`` keeps the
    version until it is changed).
    """
    if is_template_path(name_or_path):
        path = Path(name_or_path)
        try:
            content = path.read_text(encoding="utf-8")
        except OSError as err:
            raise TemplateError(f"cannot read template file {path}: {err.strerror or err}") from None
        loaded = parse_templates(content, str(path))
        if loaded.version in available_templates() and loaded.formats != _builtin_templates(loaded.version).formats:
            raise TemplateError(
                f"{path}: version {loaded.version!r} is a built-in set's, and these texts differ from it: "
                "give them a version of their own"
            )
        return loaded
    return _builtin_templates(str(name_or_path))


@functools.cache
def _builtin_templates(name: str) -> TemplateSet:
    """Parsed once per process: an environment is made per episode, and parsing costs more than its reset."""
    return parse_templates(builtin_template_text(name), name)


def parse_templates(content: str, source: str = "<string>") -> TemplateSet:
    """A template set from TOML text, checked as described in the module docstring."""
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as err:
        raise TemplateError(f"{source}: not valid TOML: {err}") from None
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise TemplateError(f'{source}: a non-empty string "version" is required (e.g. version = "my-v1")')
    texts = data.get("templates")
    if not isinstance(texts, dict):
        raise TemplateError(f"{source}: a [templates] table is required")
    missing = sorted(set(TEMPLATE_FIELDS) - set(texts))
    if missing:
        raise TemplateError(f"{source}: missing template(s): {', '.join(missing)}")
    unknown = sorted(set(texts) - set(TEMPLATE_FIELDS))
    if unknown:
        raise TemplateError(f"{source}: unknown template(s): {', '.join(unknown)}")
    templates = {}
    formats = {}
    for name, allowed in TEMPLATE_FIELDS.items():
        body = texts[name]
        if not isinstance(body, str):
            raise TemplateError(f"{source}: template {name!r} must be a string")
        template = Template(body)
        if not template.is_valid():
            raise TemplateError(f"{source}: template {name!r} has a bad placeholder (write $$ for a dollar)")
        used = set(template.get_identifiers())
        if not used <= allowed:
            bad = ", ".join(sorted(used - allowed))
            can = ", ".join(sorted(allowed)) or "none"
            raise TemplateError(f"{source}: template {name!r} uses unknown field(s) {bad} (available: {can})")
        templates[name] = template
        formats[name] = _format_string(template)
    return TemplateSet(version, source, templates, formats)


def _format_string(template: Template) -> str:
    """The ``str.format`` equivalent of a valid template: braces doubled, ``$$`` to ``$``, fields to ``{x}``."""
    parts = []
    last = 0
    for match in template.pattern.finditer(template.template):
        parts.append(template.template[last : match.start()].replace("{", "{{").replace("}", "}}"))
        name = match.group("named") or match.group("braced")
        parts.append("$" if name is None else "{" + name + "}")
        last = match.end()
    parts.append(template.template[last:].replace("{", "{{").replace("}", "}}"))
    return "".join(parts)
