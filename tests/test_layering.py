"""The import-layering contract: data flows one way, and each package imports only the layers below it.

The layers are the ones docs/architecture.md draws, bottom first. A package may import its own layer and the
layers below; an import of a higher layer (also one inside a function or under ``TYPE_CHECKING``) fails here
with the file and line. Packages on one line share a layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mtsql"

#: Bottom first. ``mtsql/__init__.py`` and ``__main__`` are outside the layers.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("sql",),
    ("data", "examples"),  # the examples are data written for mtsql, built with the data layer
    ("eval",),
    ("env",),
    ("rewards", "models"),
    ("backends",),
    ("rollout",),
    ("integrations",),
    ("train", "serve"),
    ("cli",),
)


def layer_of(package: str, layers: tuple[tuple[str, ...], ...] = LAYERS) -> int:
    for rank, names in enumerate(layers):
        if package in names:
            return rank
    raise KeyError(package)


def _is_module(root: Path, name: str) -> bool:
    return (root / name / "__init__.py").is_file() or (root / f"{name}.py").is_file()


def imported_packages(path: Path, root: Path = SRC) -> list[tuple[int, str]]:
    """``(line, package)`` for every ``mtsql.<package>`` this file imports, at any depth of the code (names of
    ``mtsql`` itself, such as ``__version__``, are not packages)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "mtsql" else [f"mtsql.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "mtsql" and len(parts) > 1 and _is_module(root, parts[1]):
                found.append((node.lineno, parts[1]))
    return found


def back_imports(root: Path, layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[str]:
    """Every import of a higher layer under ``root`` (the ``mtsql`` package folder), as ``file:line: a -> b``."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        package = relative.parts[0].removesuffix(".py")
        if package in ("__init__", "__main__"):
            continue
        try:
            rank = layer_of(package, layers)
        except KeyError:
            problems.append(f"{relative}: package {package!r} is in no layer (add it to LAYERS and the docs)")
            continue
        for line, target in imported_packages(path, root):
            try:
                target_rank = layer_of(target, layers)
            except KeyError:
                problems.append(f"{relative}:{line}: imports mtsql.{target}, which is in no layer")
                continue
            if target_rank > rank:
                problems.append(f"{relative}:{line}: {package} (layer {rank}) imports {target} (layer {target_rank})")
    return problems


def test_no_package_imports_a_higher_layer() -> None:
    assert back_imports(SRC) == []


def test_every_package_is_in_a_layer() -> None:
    packages = {p.name.removesuffix(".py") for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    layered = {name for names in LAYERS for name in names}
    assert packages - {"__init__", "__main__"} == layered


def test_the_check_fails_on_a_back_import(tmp_path: Path) -> None:
    for name, code in {
        "low/__init__.py": "",
        "low/core.py": "def f():\n    from mtsql.high.top import g  # a lazy import counts too\n",
        "high/__init__.py": "",
        "high/top.py": "from mtsql.low import core\nimport mtsql.low.core\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(code, encoding="utf-8")
    layers = (("low",), ("high",))
    assert back_imports(tmp_path, layers) == ["low/core.py:2: low (layer 0) imports high (layer 1)"]


@pytest.mark.parametrize("package", ["sql", "data", "eval", "env"])
def test_the_core_does_not_import_training_or_serving(package: str) -> None:
    """The light core (no torch) never reaches the heavy layers, even lazily."""
    heavy = {"backends", "rollout", "integrations", "train", "serve", "cli"}
    for path in (SRC / package).rglob("*.py"):
        assert not {target for _, target in imported_packages(path)} & heavy, path
