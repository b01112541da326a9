"""The optimizer of the training loop: torch AdamW on CPU, Megatron's distributed optimizer on GPU.

Both decay only the parameters with two or more dimensions; the CPU path averages gradients over the
data-parallel ranks and clips the norm over the whole model itself. The optimizer state travels in
checkpoints one entry per model-parallel rank (:meth:`Optimizer.state_for_checkpoint`).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from rhocluster.training.checkpoint import TrainCheckpoint
from rhocluster.training.config import TrainConfig
from rhocluster.training.distributed import gather_to_first


class Optimizer:
    """torch AdamW (fused CPU kernel) on CPU, Megatron's distributed optimizer on GPU, behind one small
    interface."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, cuda: bool):
        self.cuda = cuda
        self.cfg = cfg
        self.max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        if cuda:
            from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

            ocfg = OptimizerConfig(
                optimizer="adam",
                lr=cfg.lr,
                min_lr=cfg.min_lr,
                weight_decay=cfg.weight_decay,
                adam_beta1=cfg.adam_beta1,
                adam_beta2=cfg.adam_beta2,
                adam_eps=cfg.adam_eps,
                clip_grad=cfg.grad_clip,
                bf16=cfg.bf16,
                params_dtype=torch.bfloat16 if cfg.bf16 else torch.float32,
                use_distributed_optimizer=True,
            )
            # Default overrides: no weight decay on 1-D parameters (wd_mult 0), as on CPU below.
            self.opt = get_megatron_optimizer(ocfg, [model])
        else:
            decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
            no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
            self.params = decay + no_decay
            self.opt = torch.optim.AdamW(
                [
                    {"params": decay, "weight_decay": cfg.weight_decay},
                    {"params": no_decay, "weight_decay": 0.0},
                ],
                lr=cfg.lr,
                betas=(cfg.adam_beta1, cfg.adam_beta2),
                eps=cfg.adam_eps,
                # torch's fused CPU kernel: the same update (bitwise, see tests/test_trainer.py) in one
                # pass per parameter instead of ~10 elementwise kernels.
                fused=True,
            )

    def _chained(self) -> list:
        return list(getattr(self.opt, "chained_optimizers", [self.opt]))

    def set_lr(self, lr: float) -> None:
        """Set this step's learning rate on every parameter group."""
        for group in self.opt.param_groups:
            group["lr"] = lr
            if self.cuda:
                # Megatron's param-group scheduler would apply wd_mult; we drive the groups directly.
                group["weight_decay"] = self.cfg.weight_decay * group.get("wd_mult", 1.0)

    def zero_grad(self, model: torch.nn.Module) -> None:
        """Clear the gradients (and on GPU the DDP gradient buffers) before a step's backward passes."""
        if self.cuda:
            model.zero_grad_buffer()
        self.opt.zero_grad()

    def step(self, model: torch.nn.Module) -> float:
        """Average gradients over data-parallel ranks, clip, update; returns the gradient norm before
        clipping. A non-finite norm on CPU skips the update (the caller stops the run)."""
        if self.cuda:
            model.finish_grad_sync()
            ok, grad_norm, _ = self.opt.step()
            return float(grad_norm) if ok and grad_norm is not None else float("nan")
        from megatron.core import parallel_state

        dp_size = parallel_state.get_data_parallel_world_size()
        if dp_size > 1:
            grads = [p.grad for p in self.params if p.grad is not None]
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, group=parallel_state.get_data_parallel_group())
            flat /= dp_size
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()
        if dist.get_world_size(parallel_state.get_model_parallel_group()) == 1:
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.max_norm))
        else:
            norm = self._clip_model_parallel()
        if math.isfinite(norm):
            self.opt.step()
        return norm

    def _clip_model_parallel(self) -> float:
        """``clip_grad_norm_`` over the whole model when each rank holds a part: squared norms of the
        tensor-parallel shards and of one copy of the replicated tensors (the norms) summed over the
        model-parallel group (tensor-parallel ranks x pipeline stages), as Megatron's optimizer does on
        GPU."""
        from megatron.core import parallel_state
        from megatron.core.tensor_parallel import param_is_not_tensor_parallel_duplicate

        with_grad = [p for p in self.params if p.grad is not None]
        sq = torch.zeros((), dtype=torch.float64)
        for p in with_grad:
            if param_is_not_tensor_parallel_duplicate(p):
                sq += torch.linalg.vector_norm(p.grad, dtype=torch.float64) ** 2
        dist.all_reduce(sq, group=parallel_state.get_model_parallel_group())
        norm = float(sq.sqrt())
        if math.isfinite(norm):
            torch.nn.utils.clip_grads_with_norm_(with_grad, self.max_norm, torch.tensor(norm))
        return norm

    def state_for_checkpoint(self) -> tuple[list | None, list | None]:
        """``(states, shards)`` on global rank 0 (None, None elsewhere), one entry per model-parallel
        rank (tensor-parallel ranks x pipeline stages, in the model-parallel group's order): the torch
        optimizer states on CPU (shards None); on GPU the distributed optimizer's common
        states and its parameter shards gathered on data-parallel rank 0. Collective, so every rank must
        call it."""
        from megatron.core import parallel_state

        shards = [o.get_parameter_state_dp_zero() for o in self._chained()] if self.cuda else None  # collective
        if parallel_state.get_data_parallel_rank() != 0:  # the same state as data-parallel rank 0's
            return None, None
        state = self.opt.state_dict()
        states = gather_to_first((state, shards), parallel_state.get_model_parallel_group())
        if states is None:
            return None, None
        return [s for s, _ in states], ([sh for _, sh in states] if self.cuda else None)

    def load_checkpoint_state(self, ckpt: TrainCheckpoint) -> None:
        """Inverse of :meth:`state_for_checkpoint`; collective on GPU (data-parallel rank 0 reads and
        scatters the shards, so the full state is never in every rank's memory)."""
        from megatron.core import parallel_state

        group = parallel_state.get_model_parallel_group()
        mp_rank = dist.get_rank(group)
        states = ckpt.optimizer_state
        if not isinstance(states, list) or len(states) != dist.get_world_size(group):
            raise ValueError(
                f"checkpoint {ckpt.path}: optimizer.pt does not hold one state per model-parallel rank "
                f"(written by an older version?); delete {ckpt.path.parent} to start afresh"
            )
        self.opt.load_state_dict(states[mp_rank])
        if not self.cuda:
            return
        first = parallel_state.get_data_parallel_rank() == 0
        shards = ckpt.optimizer_shards() if first else None
        if first and shards is None:
            raise ValueError(f"checkpoint {ckpt.path}: optimizer_shards.pt is missing (written by a CPU run?)")
        for i, o in enumerate(self._chained()):
            o.load_parameter_state_from_dp_zero(shards[mp_rank][i] if first else None)
