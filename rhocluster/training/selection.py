"""Which tokens a training step learns from: all, a static mask, or Rho-1's dynamic SLM."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist


def slm_keep(
    excess: list[torch.Tensor], valid: list[torch.Tensor], ratio: float, group=None
) -> list[torch.Tensor]:
    """Rho-1 Selective Language Modeling: keep the top ``ratio`` of valid tokens by excess loss.

    ``excess`` and ``valid`` are this rank's micro-batches ([b, s] float32 / bool). The ranking is over the
    whole global batch: the valid excess values of every data-parallel rank are gathered and the k-th
    largest becomes the threshold (tokens tied with it are all kept). Returns bool masks like ``valid``.
    """
    local = torch.cat([e[v].float() for e, v in zip(excess, valid)])
    if dist.is_initialized() and dist.get_world_size(group) > 1:
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
        # Every rank holds the same number of valid tokens (full windows), so plain all_gather works.
        dist.all_gather(parts, local, group=group)
        pooled = torch.cat(parts)
    else:
        pooled = local
    if pooled.numel() == 0:
        return [torch.zeros_like(v) for v in valid]
    k = max(1, math.ceil(ratio * pooled.numel()))
    threshold = torch.topk(pooled, k, sorted=False).values.min()
    return [(e >= threshold) & v for e, v in zip(excess, valid)]
