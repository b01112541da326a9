"""Full (unsharded) GPTModel state dicts <-> Megatron tensor-parallel shards, for the Llama layout.

Our checkpoints hold full tensors under Megatron names (:mod:`rhocluster.model.mcore_format`), so a run's
weights do not depend on its parallel layout and convert to HF directly. Megatron's dist-checkpointing
would store sharded tensors in its own format and needs CUDA; the reshuffle between full tensors and
the shards of Megatron's parallel layers is small enough to write here. The rules follow those layers:

* ``VocabParallelEmbedding`` and ``ColumnParallelLinear`` (embedding, output layer, ``linear_qkv``)
  hold contiguous slices of dim 0. ``linear_qkv`` rows are grouped per query group
  (``[groups, (q_per_group + 2) * head_dim]``), so rank r holds whole query groups;
* ``RowParallelLinear`` (``linear_proj``, ``linear_fc2``) holds contiguous slices of dim 1;
* ``linear_fc1`` of a gated MLP holds ``[gate; up]``, and each rank holds ``[gate_r; up_r]`` (Megatron's
  SwiGLU chunks the rank's own fc1 output in two);
* norms are replicated.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist

from rhocluster.model.shape import LlamaShape

_ROWS, _COLUMNS, _GATED = 0, 1, "gated"
_SPLITS: dict[str, int | str] = {
    "embedding.word_embeddings.weight": _ROWS,
    "output_layer.weight": _ROWS,
    "self_attention.linear_qkv.weight": _ROWS,
    "self_attention.linear_proj.weight": _COLUMNS,
    "mlp.linear_fc1.weight": _GATED,
    "mlp.linear_fc2.weight": _COLUMNS,
}


def split_rule(key: str) -> int | str | None:
    """How ``key`` is sharded: a dim (0 or 1), ``"gated"`` (fc1's two halves each split on dim 0) or
    None (replicated: the norms). An unknown key raises naming it."""
    for suffix, rule in _SPLITS.items():
        if key == suffix or key.endswith("." + suffix):
            return rule
    if key.endswith("layernorm.weight") or key.endswith("layer_norm_weight"):
        return None
    raise KeyError(f"no tensor-parallel rule for {key!r}")


def check_tensor_parallel(shape: LlamaShape, size: int) -> None:
    """Raise ValueError naming every dimension of ``shape`` that ``size`` ranks cannot split evenly."""
    if size < 1:
        raise ValueError(f"tensor_parallel={size} must be >= 1")
    dims = {
        "vocab_size": shape.vocab_size,
        "num_attention_heads": shape.num_attention_heads,
        "num_query_groups": shape.num_query_groups,
        "ffn_hidden_size": shape.ffn_hidden_size,
    }
    bad = [f"{name}={value}" for name, value in dims.items() if value % size]
    if bad:
        raise ValueError(f"tensor_parallel={size} does not divide {', '.join(bad)}")


def _chunk(t: torch.Tensor, rule: int | str | None, size: int, key: str) -> list[torch.Tensor]:
    if rule is None:
        return [t] * size
    if rule == _GATED:
        gate, up = t.chunk(2, dim=0)
        return [torch.cat(pair) for pair in zip(_chunk(gate, _ROWS, size, key), _chunk(up, _ROWS, size, key))]
    if t.shape[rule] % size:
        raise ValueError(f"tensor {key} of shape {tuple(t.shape)}: dim {rule} does not split into {size} ranks")
    return list(t.chunk(size, dim=rule))


def shard_state_dict(full: Mapping[str, torch.Tensor], rank: int, size: int) -> dict[str, torch.Tensor]:
    """Rank ``rank``'s shard (of ``size``) of every tensor of a full state dict (contiguous copies)."""
    if not 0 <= rank < size:
        raise ValueError(f"tensor-parallel rank {rank} outside 0..{size - 1}")
    return {k: _chunk(v, split_rule(k), size, k)[rank].contiguous() for k, v in full.items()}


def merge_shards(key: str, shards: list[torch.Tensor]) -> torch.Tensor:
    """Inverse of the split of ``key``: the full tensor from every rank's shard, in rank order."""
    rule = split_rule(key)
    if rule is None:
        return shards[0]
    if rule == _GATED:
        halves = [s.chunk(2, dim=0) for s in shards]
        return torch.cat([torch.cat([h[0] for h in halves]), torch.cat([h[1] for h in halves])])
    return torch.cat(shards, dim=rule)


def gather_state_dict(local: Mapping[str, torch.Tensor], group: dist.ProcessGroup | None, size: int) -> dict:
    """Full float32 tensors on the host from this rank's shards, one tensor at a time (collective over
    the tensor-parallel ``group`` of ``size`` ranks; every rank of it gets the result)."""
    out = {}
    for key, shard in local.items():
        if size > 1 and split_rule(key) is not None:
            parts = [torch.empty_like(shard) for _ in range(size)]
            dist.all_gather(parts, shard.contiguous(), group=group)
            shard = merge_shards(key, parts)
        out[key] = shard.detach().to("cpu", torch.float32)
    return out
