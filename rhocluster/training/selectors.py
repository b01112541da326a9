"""Which tokens a training step learns from: all, a static mask, or Rho-1's live SLM (optionally ranked
inside cluster groups), behind one selector interface the trainer's loop calls."""

from __future__ import annotations

import math

import numpy as np
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


def slm_budget(ratio: float, n_valid: int) -> int:
    """Tokens a global batch of ``n_valid`` valid targets keeps: ``ceil(ratio * n_valid)`` (1e-9 absorbs
    floating-point excess such as 0.6 * 10 = 6.000000000000001), at least 1 and at most ``n_valid``."""
    return min(n_valid, max(1, math.ceil(ratio * n_valid - 1e-9)))


def _gather_with_offset(local: torch.Tensor, group) -> tuple[torch.Tensor, int]:
    """(concatenation over the ranks of ``group``, this rank's offset in it)."""
    if not (dist.is_initialized() and dist.get_world_size(group) > 1):
        return local, 0
    sizes = [torch.zeros(1, dtype=torch.int64, device=local.device) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, torch.tensor([local.numel()], dtype=torch.int64, device=local.device), group=group)
    offset = int(sum(int(s) for s in sizes[: dist.get_rank(group)]))
    return _gather_ragged(local, group), offset


def _unpack(local_keep: torch.Tensor, valid: list[torch.Tensor]) -> list[torch.Tensor]:
    """This rank's kept flags (bool [n_valid], in the order of ``valid``'s valid tokens) as bool masks
    shaped like ``valid``."""
    out, start = [], 0
    for v in valid:
        m = torch.zeros_like(v)
        count = int(v.sum())
        m[v] = local_keep[start : start + count]
        start += count
        out.append(m)
    return out


def slm_keep(
    excess: list[torch.Tensor], valid: list[torch.Tensor], ratio: float, group=None
) -> list[torch.Tensor]:
    """Rho-1 Selective Language Modeling: keep exactly the ``slm_budget(ratio, n_valid)`` valid tokens
    of the global batch with the highest excess loss.

    ``excess`` (float32) and ``valid`` (bool) are this rank's micro-batches, each [b, s]. The ranking is
    over the whole global batch: the valid excess values of every data-parallel rank of ``group`` are
    gathered in rank order (rank, micro-batch, row, position: the global batch's window order, since each
    rank holds a contiguous slice of it). Ties at the threshold go to the earlier tokens in that order, as
    in ``grouped_slm_keep``, so every batch keeps exactly its budget whatever the number of ranks.
    Returns bool masks shaped like ``valid``.
    """
    local = torch.cat([e[v].float().reshape(-1) for e, v in zip(excess, valid)])
    pooled, offset = _gather_with_offset(local, group)
    n = pooled.numel()
    if n == 0:
        return [torch.zeros_like(v) for v in valid]
    top = torch.sort(pooled, descending=True, stable=True).indices[: slm_budget(ratio, n)]
    keep_pooled = torch.zeros(n, dtype=torch.bool, device=pooled.device)
    keep_pooled[top] = True
    return _unpack(keep_pooled[offset : offset + local.numel()], valid)


def grouped_slm_keep(
    excess: list[torch.Tensor],
    valid: list[torch.Tensor],
    groups: list[torch.Tensor],
    ratio: float,
    tree: np.ndarray,
    group=None,
) -> list[torch.Tensor]:
    """SLM ranked inside cluster groups (the cluster_slm variant): the live excess loss competes only
    with the same group's tokens of the global batch.

    ``excess`` (float32), ``valid`` (bool) and ``groups`` (int64 group id, >= 0 at valid tokens) are this
    rank's micro-batches, each [b, s]; ``tree`` is int [G, L'] with column 0 the group ids 0..G-1 and the
    others their ancestors up the cluster tree. The batch budget ``k = slm_budget(ratio, n_valid)`` is split
    among the groups present in the global batch by Vo et al.'s balanced water-filling down the tree
    (``balanced_leaf_quotas`` on the batch's group counts), and every group keeps exactly its quota of
    highest-excess tokens (ties to the lower position in rank order). Returns bool masks shaped like
    ``valid``.
    """
    from rhocluster.selection.balanced import balanced_leaf_quotas

    local_x = torch.cat([e[v].float().reshape(-1) for e, v in zip(excess, valid)])
    local_g = torch.cat([g[v].reshape(-1) for g, v in zip(groups, valid)]).to(torch.float32)
    pooled_x, offset = _gather_with_offset(local_x, group)
    pooled_g = _gather_with_offset(local_g, group)[0].to(torch.int64)  # group ids < 2**24: exact in float32
    n = pooled_x.numel()
    if n == 0:
        return [torch.zeros_like(v) for v in valid]
    n_groups = tree.shape[0]
    if int(pooled_g.min()) < 0 or int(pooled_g.max()) >= n_groups:
        raise ValueError(f"cluster group ids must lie in [0, {n_groups}) at every target token")
    k = slm_budget(ratio, n)
    counts = torch.bincount(pooled_g, minlength=n_groups).cpu().numpy()
    quotas = torch.from_numpy(balanced_leaf_quotas(counts, tree, k)).to(pooled_x.device)
    # Order by (group, excess descending), ties by position: two stable sorts.
    by_excess = torch.sort(pooled_x, descending=True, stable=True).indices
    order = by_excess[torch.sort(pooled_g[by_excess], stable=True).indices]
    sorted_g = pooled_g[order]
    first = torch.searchsorted(sorted_g, sorted_g, side="left")
    rank = torch.arange(n, device=pooled_x.device) - first
    keep_pooled = torch.zeros(n, dtype=torch.bool, device=pooled_x.device)
    keep_pooled[order[rank < quotas[sorted_g]]] = True
    return _unpack(keep_pooled[offset : offset + local_x.numel()], valid)


class TokenSelector:
    """Which target tokens of a global batch the loss uses (``TrainConfig.tokens``).

    A fixed selector knows them from the data (``fixed``); a live one ranks this rank's per-token
    losses of the batch, each [b, s] (``rank``), gathering over the data-parallel group."""

    live = False

    def __init__(self, device: torch.device):
        self.device = device

    def fixed(self, batches, valid: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """The kept tokens known before any forward pass (None: the selector ranks losses)."""
        return None

    def rank(self, losses: list[torch.Tensor], batches, valid: list[torch.Tensor]) -> list[torch.Tensor]:
        raise TypeError(f"{type(self).__name__} does not rank losses")

    def _side(self, batches, name: str) -> list[torch.Tensor]:
        return [torch.from_numpy(getattr(b, name)[:, 1:]).to(self.device) for b in batches]


class AllTokens(TokenSelector):
    """Every target token (ct, the reference model, base pretraining)."""

    def fixed(self, batches, valid):
        return list(valid)


class StaticMask(TokenSelector):
    """The static mask of the data (the batches' ``keep``)."""

    def fixed(self, batches, valid):
        return self._side(batches, "keep")


class LiveSLM(TokenSelector):
    """Rho-1's SLM: live excess loss (loss - reference loss) ranked over the global batch, or, with a
    cluster ``tree``, inside the batch's cluster groups with balanced quotas (cluster_slm)."""

    live = True

    def __init__(self, device: torch.device, ratio: float, group, tree: np.ndarray | None = None):
        super().__init__(device)
        self.ratio, self.group, self.tree = ratio, group, tree

    def rank(self, losses, batches, valid):
        excess = [loss - ref for loss, ref in zip(losses, self._side(batches, "ref_loss"))]
        if self.tree is None:
            return slm_keep(excess, valid, self.ratio, self.group)
        return grouped_slm_keep(excess, valid, self._side(batches, "groups"), self.ratio, self.tree, self.group)


def make_selector(cfg, tree: np.ndarray | None, group, device: torch.device) -> TokenSelector:
    """The selector of a ``TrainConfig``; ``tree`` is the cluster tree above the groups (grouped SLM)."""
    if cfg.tokens == "all":
        return AllTokens(device)
    if cfg.tokens == "mask":
        return StaticMask(device)
    return LiveSLM(device, cfg.budget, group, tree if cfg.group_level else None)
