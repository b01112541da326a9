"""Which tokens a training step learns from: all, a static mask, or Rho-1's dynamic SLM."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist


def _gather_ragged(local: torch.Tensor, group) -> torch.Tensor:
    """Concatenation of the 1-D ``local`` tensors of every rank of ``group``, in rank order."""
    world = dist.get_world_size(group)
    sizes = [torch.zeros(1, dtype=torch.int64, device=local.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([local.numel()], dtype=torch.int64, device=local.device), group=group)
    counts = [int(s) for s in sizes]
    padded = torch.full((max(counts),), float("-inf"), dtype=local.dtype, device=local.device)
    padded[: local.numel()] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([p[:n] for p, n in zip(parts, counts)])


def slm_keep(
    excess: list[torch.Tensor], valid: list[torch.Tensor], ratio: float, group=None
) -> list[torch.Tensor]:
    """Rho-1 Selective Language Modeling: keep the top ``ratio`` of valid tokens by excess loss.

    ``excess`` (float32) and ``valid`` (bool) are this rank's micro-batches, each [b, s]. The ranking is
    over the whole global batch: the valid excess values of every data-parallel rank of ``group`` are
    gathered, ``k = ceil(ratio * n_valid)`` and the k-th largest value is the threshold; every valid token
    at or above it is kept (ties with the threshold are all kept, so ties may keep more than k).
    Returns bool masks shaped like ``valid``.
    """
    local = torch.cat([e[v].float().reshape(-1) for e, v in zip(excess, valid)])
    if dist.is_initialized() and dist.get_world_size(group) > 1:
        pooled = _gather_ragged(local, group)
    else:
        pooled = local
    if pooled.numel() == 0:
        return [torch.zeros_like(v) for v in valid]
    k = min(pooled.numel(), max(1, math.ceil(ratio * pooled.numel() - 1e-9)))
    threshold = torch.topk(pooled, k, sorted=False).values.min()
    return [(e >= threshold) & v for e, v in zip(excess, valid)]
