"""A fine-tuned checkpoint back into a GGUF file, so that trained models run on the fast llama.cpp backend too.

The packaged models arrive as GGUF and are converted to checkpoints for training (:mod:`mtsql.models.packaged`);
after SFT or GRPO the checkpoint's weights go back into the layout of the GGUF it came from: every metadata key
of that file (architecture, tokenizer, chat template) is copied, every tensor is replaced by the trained one of
the same role, in 8-bit (``q8_0``, the default: near-lossless, and half the bytes of float16 to read for every
token, which is what CPU decoding waits on), float16 or float32, and norms stay float32 as llama.cpp wants them.
Only the Llama layout (SmolLM2) is mapped: another architecture is refused by name rather than written wrong.
The query and key projections are permuted back into llama.cpp's rotary layout, the inverse of what transformers'
GGUF loader undoes on the way in; ``tests/models/test_to_gguf.py`` checks that llama.cpp and transformers then
agree on the greedy tokens.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Final

from mtsql.models.packaged import ModelError

#: GGUF tensor name -> checkpoint parameter name, for the Llama layout (``{i}``: the block).
_LLAMA_NAMES: Final = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.attn_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
}
_BLOCK = re.compile(r"^blk\.(\d+)\.")
#: Export dtypes and their GGUF file types.
_FILE_TYPES: Final = {"q8_0": "MOSTLY_Q8_0", "f16": "MOSTLY_F16", "f32": "ALL_F32"}


def export_gguf(
    checkpoint: str | os.PathLike[str],
    like: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    dtype: str = "q8_0",
) -> Path:
    """Write the weights of ``checkpoint`` (a Hugging Face folder) as a GGUF file shaped like ``like`` (the GGUF
    the checkpoint was converted from). ``dtype``: ``q8_0``, ``f16`` or ``f32`` for the matrices. The file is
    written beside ``out`` and renamed into place, so an interrupted export never leaves a file that looks
    complete."""
    import gguf
    import gguf.quants
    import numpy as np
    from safetensors import safe_open

    if dtype not in _FILE_TYPES:
        raise ModelError(f"dtype must be one of {', '.join(_FILE_TYPES)}, not {dtype!r}")
    reader = gguf.GGUFReader(str(like))
    arch = reader.fields["general.architecture"].contents()
    if arch != "llama":
        raise ModelError(f"{like}: exporting the {arch!r} layout is not supported (only llama, e.g. SmolLM2)")
    weights = _checkpoint_weights(Path(checkpoint), safe_open)
    heads = int(reader.fields["llama.attention.head_count"].contents())
    kv_heads = int(reader.fields["llama.attention.head_count_kv"].contents())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    try:
        for key, field in reader.fields.items():
            if key.startswith("GGUF.") or key in ("general.architecture", "general.quantization_version"):
                continue
            if key == "general.file_type":
                writer.add_file_type(int(getattr(gguf.LlamaFileType, _FILE_TYPES[dtype])))
                continue
            sub_type = field.types[1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), field.types[0], sub_type)
        for tensor in reader.tensors:
            array = _tensor_for(tensor.name, weights, heads, kv_heads)
            if array.ndim == 1 or dtype == "f32":
                writer.add_tensor(tensor.name, array.astype(np.float32))
            elif dtype == "f16":
                writer.add_tensor(tensor.name, array.astype(np.float16))
            else:
                kind = gguf.GGMLQuantizationType.Q8_0
                packed = gguf.quants.quantize(array.astype(np.float32), kind)
                writer.add_tensor(tensor.name, packed, raw_shape=packed.shape, raw_dtype=kind)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, out)
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    return out


def _checkpoint_weights(folder: Path, safe_open: Any) -> dict[str, Any]:
    """Every tensor of the checkpoint's safetensors files as float32 numpy arrays (a 135M model: ~0.5 GB)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelError(f"{folder}: no .safetensors weights (a merged checkpoint is needed, not a LoRA adapter)")
    weights: dict[str, Any] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (a safetensors handle is not a mapping)
                weights[name] = handle.get_tensor(name).float().numpy()
    return weights


def _tensor_for(name: str, weights: dict[str, Any], heads: int, kv_heads: int) -> Any:
    """The checkpoint's tensor for the GGUF tensor ``name``, permuted for rotary layout where llama.cpp wants it."""
    match = _BLOCK.match(name)
    pattern = name.replace(f"blk.{match.group(1)}.", "blk.{i}.", 1) if match else name
    if pattern not in _LLAMA_NAMES:
        raise ModelError(f"no checkpoint tensor known for the GGUF tensor {name!r}")
    source = _LLAMA_NAMES[pattern].format(i=match.group(1) if match else "")
    if source not in weights and source == "lm_head.weight":
        source = "model.embed_tokens.weight"  # tied embeddings
    if source not in weights:
        raise ModelError(f"the checkpoint has no {source!r} (for the GGUF tensor {name!r})")
    array = weights[source]
    if pattern == "blk.{i}.attn_q.weight":
        return _rotary_permute(array, heads)
    if pattern == "blk.{i}.attn_k.weight":
        return _rotary_permute(array, kv_heads)
    return array


def _rotary_permute(weight: Any, heads: int) -> Any:
    """Transformers' half-split rotary rows into llama.cpp's interleaved pairs (per head)."""
    half = weight.shape[0] // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def checkpoint_gguf(checkpoint: str | os.PathLike[str], like: str) -> Path:
    """The GGUF of a checkpoint folder, exported (``q8_0``) on first use as ``<checkpoint>/mtsql-q8_0.gguf`` and
    again when the weights are newer; ``like`` is the GGUF it descends from (a packaged model's name or a file)."""
    from mtsql.models.packaged import resolve_gguf

    folder = Path(checkpoint)
    target = folder / "mtsql-q8_0.gguf"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise ModelError(f"{folder}: no .safetensors weights (a merged checkpoint is needed, not a LoRA adapter)")
    if not target.is_file() or target.stat().st_mtime < max(w.stat().st_mtime for w in weights):
        export_gguf(folder, resolve_gguf(like), target)
    return target
