"""One training step's forward and backward over a rank's micro-batches, learning from the target
tokens the selector keeps (:mod:`.selection`): the loss is the mean over the kept tokens of the global
batch.

A live selector (SLM) with several micro-batches per rank first ranks the whole global batch in a
forward-only pass under the current weights (no graph kept), then trains; with one micro-batch, the
training forward's own losses rank. With pipeline parallelism the micro-batches go through
:class:`~rhocluster.training.pipeline.PipelineSchedule` and the last stage, which alone sees the
losses, chooses the tokens and broadcasts its choice and sums to the other stages.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from rhocluster.model.shape import LlamaShape
from rhocluster.training.config import TrainConfig
from rhocluster.training.data import Batch, TokenStream
from rhocluster.training.distributed import all_reduce
from rhocluster.training.pipeline import PipelineSchedule, Stage
from rhocluster.training.selectors import make_selector


class SelectiveStep:
    """Forward and backward of one optimizer step (the caller zeroes the gradients and steps)."""

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: TrainConfig,
        stream: TokenStream,
        shape: LlamaShape,
        params_dtype: torch.dtype,
        device: torch.device,
        accum: int,
    ):
        from megatron.core import parallel_state

        self.device, self.micro_batch, self.seq = device, cfg.micro_batch, stream.seq_len - 1
        self.dp_group = parallel_state.get_data_parallel_group()
        self.dp_size = parallel_state.get_data_parallel_world_size()
        self.selector = make_selector(cfg, stream.group_tree, self.dp_group, device)
        self.two_pass = self.selector.live and accum > 1  # see the module docstring
        self.stage = Stage.current()
        self.pp_group = parallel_state.get_pipeline_model_parallel_group()
        self.last_rank = parallel_state.get_pipeline_model_parallel_last_rank() if self.stage.count > 1 else None
        self.schedule = PipelineSchedule(
            model, self.stage, (self.seq, cfg.micro_batch, shape.hidden_size), params_dtype, device
        )

    def __call__(self, batches: list[Batch]) -> tuple[list[torch.Tensor], list[float]]:
        """Accumulate the gradients of this rank's micro-batches ``batches``; returns ``(keeps, sums)``:
        keeps bool [micro_batch, S-1] per micro-batch, the targets learned from; sums over the global
        batch of the loss, of the kept tokens' loss and of the kept tokens."""
        device, selector = self.device, self.selector
        tokens = [torch.from_numpy(b.tokens).to(device) for b in batches]
        valid = [torch.from_numpy(b.valid[:, 1:]).to(device) for b in batches]
        micro = [(t[:, :-1], t[:, 1:]) for t in tokens]
        keeps: list[torch.Tensor | None] = selector.fixed(batches, valid) or [None] * len(batches)
        if self.two_pass:
            losses = self.schedule.forward_only(micro)
            if self.stage.last:
                keeps = selector.rank(losses, batches, valid)
        step_sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, kept loss sum, kept count
        scale = 0.0

        def kept_loss(i: int, loss: torch.Tensor) -> torch.Tensor:
            """Micro-batch i's share of the mean loss over the kept tokens of the global batch (last
            stage only). Gradients are averaged over data-parallel ranks (Megatron DDP, or our
            all-reduce on CPU), hence the factor dp_size in ``scale``."""
            nonlocal scale
            if keeps[i] is None:
                # a live selector with one micro-batch per rank: rank and train on the same forward
                keeps[:] = selector.rank([loss.detach()], batches, valid)
            if i == 0:
                step_sums[2] = torch.stack([k.sum() for k in keeps]).sum()
                scale = self.dp_size / max(float(all_reduce(step_sums[2].clone(), self.dp_group)), 1.0)
            kept = torch.where(keeps[i], loss, torch.zeros((), device=device))
            step_sums[0] += loss.detach().sum().double()
            step_sums[1] += kept.detach().sum().double()
            return kept.sum() * scale

        self.schedule.forward_backward(micro, kept_loss)
        if self.stage.count > 1:
            # The last stage knows the losses, SLM's choice and its count; every stage logs and counts them.
            kept_all = torch.stack(keeps).to(torch.uint8) if self.stage.last else torch.empty(
                (len(batches), self.micro_batch, self.seq), dtype=torch.uint8, device=device
            )
            dist.broadcast(kept_all, self.last_rank, group=self.pp_group)
            dist.broadcast(step_sums, self.last_rank, group=self.pp_group)
            keeps = list(kept_all.bool().unbind(0))
        return keeps, all_reduce(step_sums, self.dp_group).tolist()

