"""Collectives the training loop needs beyond Megatron's: sums over a group, objects gathered on a
group's first rank, and the full model weights gathered from the model-parallel ranks."""

from __future__ import annotations

import torch
import torch.distributed as dist

from rhocluster.model.mcore_format import is_extra_state
from rhocluster.model.pipeline_layout import to_global_names
from rhocluster.model.tensor_parallel import gather_state_dict


def all_reduce(t: torch.Tensor, group) -> torch.Tensor:
    """Sum ``t`` in place over ``group`` (nothing to do for a group of one); returns ``t``."""
    if dist.get_world_size(group) > 1:
        dist.all_reduce(t, group=group)
    return t


def gather_to_first(obj, group) -> list | None:
    """``obj`` of every rank of ``group``, in group-rank order, on the group's first rank (None on the
    others)."""
    size = dist.get_world_size(group)
    if size == 1:
        return [obj]
    first = dist.get_global_rank(group, 0)
    out: list | None = [None] * size if dist.get_rank() == first else None
    dist.gather_object(obj, out, dst=first, group=group)
    return out


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The full float32 weights on the host of global rank 0, None on the other ranks. Collective over
    the model-parallel group of data-parallel rank 0: its tensor-parallel ranks each hold a shard of a
    stage, its pipeline stages each hold some layers."""
    from megatron.core import parallel_state

    if parallel_state.get_data_parallel_rank() != 0:
        return None
    inner = getattr(model, "module", model)
    local = {k: v for k, v in inner.state_dict().items() if torch.is_tensor(v) and not is_extra_state(k)}
    stage = gather_state_dict(
        local,
        parallel_state.get_tensor_model_parallel_group(),
        parallel_state.get_tensor_model_parallel_world_size(),
    )
    stages = parallel_state.get_pipeline_model_parallel_world_size()
    if stages == 1:
        return stage if dist.get_rank() == 0 else None
    if parallel_state.get_tensor_model_parallel_rank() != 0:
        return None
    num_layers = inner.config.num_layers
    parts = gather_to_first(
        to_global_names(stage, num_layers, parallel_state.get_pipeline_model_parallel_rank(), stages),
        parallel_state.get_pipeline_model_parallel_group(),
    )
    return {k: v for part in parts for k, v in part.items()} if parts is not None and dist.get_rank() == 0 else None
