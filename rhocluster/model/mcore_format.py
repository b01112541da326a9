"""Our "mcore" checkpoint format: a directory with ``model.safetensors`` (full, unsharded tensors under
Megatron parameter names, local-spec layout) and ``shape.json`` (:class:`LlamaShape`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from rhocluster.common.atomic import atomic_dir
from rhocluster.model.shape import LlamaShape
from rhocluster.model.pipeline_layout import stage_state_dict
from rhocluster.model.tensor_parallel import shard_state_dict

WEIGHTS_FILE = "model.safetensors"
SHAPE_FILE = "shape.json"
_FORMAT = "rhocluster-mcore-v1"

# The TE layer spec fuses each pre-norm into the following linear layer; the local spec keeps it separate.
_LOCAL_TO_TE_NORMS = {
    "input_layernorm.weight": "self_attention.linear_qkv.layer_norm_weight",
    "pre_mlp_layernorm.weight": "mlp.linear_fc1.layer_norm_weight",
}


def is_extra_state(key: str) -> bool:
    """Megatron/TE bookkeeping entries (None or bytes on the local spec) that hold no weights."""
    return key.endswith("_extra_state")


def is_te_layout(state_dict: Mapping[str, object]) -> bool:
    """True when the pre-norm weights are stored fused into linear_qkv / linear_fc1 (TE layer spec)."""
    return any(k.endswith(".linear_qkv.layer_norm_weight") for k in state_dict)


def to_layout(state_dict: Mapping[str, torch.Tensor], *, transformer_engine: bool) -> dict[str, torch.Tensor]:
    """Rename the per-layer norm weights to TE-spec (True) or local-spec (False) names; other keys pass."""
    renames = _LOCAL_TO_TE_NORMS if transformer_engine else {te: local for local, te in _LOCAL_TO_TE_NORMS.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        parts = key.split(".", 3)  # decoder . layers . <i> . <rest>
        if len(parts) == 4 and parts[:2] == ["decoder", "layers"] and parts[3] in renames:
            key = ".".join([*parts[:3], renames[parts[3]]])
        out[key] = value
    return out


def mcore_tensor_shapes(shape: LlamaShape, *, transformer_engine: bool = False) -> dict[str, tuple[int, ...]]:
    """Every weight of the Megatron GPTModel for ``shape`` (tensor_parallel=1) with its shape."""
    h, kv = shape.hidden_size, shape.num_query_groups * shape.head_dim
    out: dict[str, tuple[int, ...]] = {"embedding.word_embeddings.weight": (shape.vocab_size, h)}
    for i in range(shape.num_layers):
        p = f"decoder.layers.{i}."
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "self_attention.linear_qkv.weight"] = (h + 2 * kv, h)
        out[p + "self_attention.linear_proj.weight"] = (h, h)
        out[p + "pre_mlp_layernorm.weight"] = (h,)
        out[p + "mlp.linear_fc1.weight"] = (2 * shape.ffn_hidden_size, h)
        out[p + "mlp.linear_fc2.weight"] = (h, shape.ffn_hidden_size)
    out["decoder.final_layernorm.weight"] = (h,)
    out["output_layer.weight"] = (shape.vocab_size, h)
    return to_layout(out, transformer_engine=transformer_engine)


def check_tensors(tensors: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], what: str) -> None:
    """Raise ValueError on missing/unexpected keys or the first tensor whose shape differs."""
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{what}: {len(missing)} missing tensor(s) {missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}"
        )
    for key, want in expected.items():
        got = tuple(tensors[key].shape)
        if got != tuple(want):
            raise ValueError(f"{what}: tensor {key} has shape {got}, expected {tuple(want)}")


def save_mcore(state_dict: Mapping[str, torch.Tensor | None], shape: LlamaShape, out_dir: Path) -> None:
    """Write ``state_dict`` (a full GPTModel state dict, either layer spec) and ``shape`` to ``out_dir``
    atomically. ``_extra_state`` entries are dropped; weights are stored in the local-spec layout."""
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if is_extra_state(key):
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] is {type(value).__name__}, not a tensor")
        # A copy on the host: safetensors refuses tensors that share storage (e.g. views into a
        # contiguous parameter buffer).
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
    tensors = to_layout(tensors, transformer_engine=False)
    check_tensors(tensors, mcore_tensor_shapes(shape), f"state dict for {shape}")
    with atomic_dir(out_dir) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "rhocluster": _FORMAT})
        (tmp / SHAPE_FILE).write_text(json.dumps(shape.to_dict(), indent=2) + "\n")


def load_mcore(src_dir: Path) -> tuple[dict[str, torch.Tensor], LlamaShape]:
    """Read a checkpoint written by :func:`save_mcore` (tensors on the host, local-spec layout)."""
    src_dir = Path(src_dir)
    weights, shape_file = src_dir / WEIGHTS_FILE, src_dir / SHAPE_FILE
    for path in (weights, shape_file):
        if not path.is_file():
            raise FileNotFoundError(f"mcore checkpoint file not found: {path}")
    try:
        shape = LlamaShape.from_dict(json.loads(shape_file.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise ValueError(f"invalid {shape_file}: {err}") from err
    state_dict = load_file(str(weights), device="cpu")
    check_tensors(state_dict, mcore_tensor_shapes(shape), str(weights))
    return state_dict, shape


def _shape_diff(a: LlamaShape, b: LlamaShape) -> str:
    return ", ".join(
        f"{f.name} {getattr(a, f.name)} vs {getattr(b, f.name)}"
        for f in fields(LlamaShape)
        if getattr(a, f.name) != getattr(b, f.name)
    )


def load_into_model(
    model: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    shape_of_checkpoint: LlamaShape,
    expected_shape: LlamaShape,
) -> None:
    """Copy ``state_dict`` (full tensors) into ``model`` (casting to the model's dtype/device), after
    checking that the checkpoint has the expected architecture and every tensor matches the model
    (strict, ignoring ``_extra_state``). Either layer-spec layout loads into either kind of model; under
    tensor parallelism each rank takes its shard, under pipeline parallelism each stage its layers."""
    if shape_of_checkpoint != expected_shape:
        raise ValueError(
            f"checkpoint architecture {shape_of_checkpoint} does not match expected {expected_shape} "
            f"({_shape_diff(shape_of_checkpoint, expected_shape)})"
        )
    from megatron.core import parallel_state

    tp_size, tp_rank, pp_size, pp_rank = 1, 0, 1, 0
    if parallel_state.model_parallel_is_initialized():
        tp_size = parallel_state.get_tensor_model_parallel_world_size()
        tp_rank = parallel_state.get_tensor_model_parallel_rank()
        pp_size = parallel_state.get_pipeline_model_parallel_world_size()
        pp_rank = parallel_state.get_pipeline_model_parallel_rank()
    model_sd = {k: v for k, v in model.state_dict().items() if not is_extra_state(k)}
    te = is_te_layout(model_sd)
    source = to_layout({k: v for k, v in state_dict.items() if not is_extra_state(k)}, transformer_engine=te)
    if tp_size > 1 or pp_size > 1:
        check_tensors(source, mcore_tensor_shapes(shape_of_checkpoint, transformer_engine=te), "checkpoint")
    if pp_size > 1:
        source = stage_state_dict(source, shape_of_checkpoint.num_layers, pp_rank, pp_size)
    if tp_size > 1:
        source = shard_state_dict(source, tp_rank, tp_size)
    check_tensors(source, {k: tuple(v.shape) for k, v in model_sd.items()}, "checkpoint vs model")
    result = model.load_state_dict(source, strict=False)
    leftover = [k for k in result.missing_keys if not is_extra_state(k)] + list(result.unexpected_keys)
    if leftover:
        raise ValueError(f"checkpoint vs model: keys not loaded: {leftover[:5]}")
