"""The training loop: build model → data → step → log → checkpoint.

One loop serves the base pretraining, the reference fine-tune and every CPT variant; they differ in
their data and in ``TrainConfig.selection``. On CPU it runs the megatron-core ``GPTModel`` with gloo and
a plain torch AdamW; with CUDA it wraps the same model in Megatron's DistributedDataParallel with the
distributed optimizer (bf16 when configured). Under torchrun every rank runs this function; rank 0
writes the log, the checkpoints and the outputs. With tensor parallelism each rank holds shards of every
layer; with pipeline parallelism each rank holds a stage's layers and the step's micro-batches go through
:class:`~rhocluster.training.pipeline.PipelineSchedule` (one stage: forward and backward of each
micro-batch in turn), the last stage choosing the tokens and broadcasting its choice to the others.

Resumption is exact: the data position follows from the step, and a checkpoint holds the weights, the
optimizer state, every rank's RNG states and the counters, so a run killed after checkpoint k and
resumed reaches bitwise the same weights as an uninterrupted run (on the same hardware and world size).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from rhocluster.data.atomic import atomic_path, save_json
from rhocluster.model.checkpoint import is_extra_state, load_into_model, load_mcore, save_mcore
from rhocluster.model.megatron import build_gpt_model, init_distributed
from rhocluster.model.pipeline_layout import check_pipeline_parallel, to_global_names
from rhocluster.model.shape import LlamaShape
from rhocluster.model.tensor_parallel import check_tensor_parallel, gather_state_dict
from rhocluster.training.checkpoint import (
    TrainCheckpoint,
    capture_rng_state,
    checkpoint_dirs,
    load_checkpoint,
    remove_stale,
    restore_rng_state,
    save_checkpoint,
)
from rhocluster.training.config import TrainConfig
from rhocluster.training.data import Batch, TokenStream
from rhocluster.training.flops import forward_flops_per_token, train_flops_per_token
from rhocluster.training.pipeline import PipelineSchedule, Stage
from rhocluster.training.schedule import cosine_lr
from rhocluster.training.selection import make_selector

log = logging.getLogger(__name__)


@dataclass
class StepInfo:
    """What an ``on_step`` hook sees after each optimizer step, before that step's checkpoint is saved."""

    step: int  # optimizer steps completed (1-based, as in the log and checkpoint names)
    window_ids: np.ndarray  # int64 [windows per rank]: this rank's windows, in micro-batch order
    keep: list[np.ndarray]  # bool [micro_batch, S-1] per micro-batch: the targets this step learned from
    record: dict  # the step's log record (loss, loss_kept, kept_fraction, lr, grad_norm, ...)
    model: torch.nn.Module


StepHook = Callable[[StepInfo], None]


def _model_state(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
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
    parts = _gather_to_first(
        to_global_names(stage, num_layers, parallel_state.get_pipeline_model_parallel_rank(), stages),
        parallel_state.get_pipeline_model_parallel_group(),
    )
    return {k: v for part in parts for k, v in part.items()} if parts is not None and dist.get_rank() == 0 else None


class _Optimizer:
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
        for group in self.opt.param_groups:
            group["lr"] = lr
            if self.cuda:
                # Megatron's param-group scheduler would apply wd_mult; we drive the groups directly.
                group["weight_decay"] = self.cfg.weight_decay * group.get("wd_mult", 1.0)

    def zero_grad(self, model: torch.nn.Module) -> None:
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
        states = _gather_to_first((state, shards), parallel_state.get_model_parallel_group())
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


def _gather_to_first(obj, group) -> list | None:
    """``obj`` of every rank of ``group``, in group-rank order, on the group's first rank (None on the
    others)."""
    size = dist.get_world_size(group)
    if size == 1:
        return [obj]
    first = dist.get_global_rank(group, 0)
    out: list | None = [None] * size if dist.get_rank() == first else None
    dist.gather_object(obj, out, dst=first, group=group)
    return out


def _load_weights(model: torch.nn.Module, state: dict, ckpt_shape: LlamaShape, shape: LlamaShape, source: Path) -> None:
    try:
        load_into_model(model, state, ckpt_shape, shape)
    except ValueError as err:
        raise ValueError(f"checkpoint {source}: {err}") from err


def _check_resume(ckpt: TrainCheckpoint, cfg: TrainConfig, data_layout: dict) -> None:
    """A checkpoint resumes only the run that wrote it: same trajectory settings, same data."""
    problems = cfg.resume_mismatches(ckpt.trainer_state.get("config", {}))
    saved_data = ckpt.trainer_state.get("data", {})
    problems += [
        f"data {k}: checkpoint {saved_data.get(k)!r} vs run {v!r}"
        for k, v in data_layout.items()
        if saved_data.get(k, v) != v
    ]
    if problems:
        raise ValueError(
            f"checkpoint {ckpt.path} belongs to another run ({'; '.join(problems)}); "
            f"delete {ckpt.path.parent} to start afresh"
        )
    if ckpt.step > cfg.steps:
        raise ValueError(f"checkpoint {ckpt.path} is at step {ckpt.step}, beyond training.steps={cfg.steps}")


def _truncate_log(path: Path, upto: int) -> None:
    """Keep the log records of steps <= ``upto`` (those a resumed run does not redo); a line cut short
    by a kill is dropped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = []
    if upto > 0 and path.exists():
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= upto:
                    keep.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    with atomic_path(path, ".jsonl") as tmp:
        tmp.write_text("".join(line + "\n" for line in keep))


def _all_reduce(t: torch.Tensor, group) -> torch.Tensor:
    if dist.get_world_size(group) > 1:
        dist.all_reduce(t, group=group)
    return t


def _selection_inputs_present(cfg: TrainConfig, stream: TokenStream) -> None:
    if cfg.selection == "mask" and stream.masks is None:
        raise ValueError("training.selection='mask' needs a mask file for every shard")
    if cfg.selection == "slm" and stream.ref_losses is None:
        raise ValueError("training.selection='slm' needs a reference-loss file for every shard")
    if cfg.group_level and stream.groups is None:
        raise ValueError(f"training.group_level={cfg.group_level} needs every token's cluster group (leaf files)")


def train(
    shape: LlamaShape,
    cfg: TrainConfig,
    stream: TokenStream,
    out_dir: Path,
    ckpt_root: Path,
    log_path: Path,
    summary_path: Path,
    init_from: Path | None = None,
    label_names: Sequence[str] | None = None,
    on_step: StepHook | None = None,
) -> dict:
    """Train and write the final weights (mcore format) to ``out_dir``; resume from the newest complete
    checkpoint under ``ckpt_root`` if there is one (``init_from`` is then ignored).

    ``log_path`` gets one JSON line per logged step; ``summary_path`` the run's totals, including the kept
    fraction of every ground-truth label when the shards carry labels. A non-finite loss or gradient
    norm raises ``FloatingPointError`` naming the step, before the update and before any checkpoint of it.
    """
    _selection_inputs_present(cfg, stream)
    check_tensor_parallel(shape, cfg.tensor_parallel)
    check_pipeline_parallel(shape, cfg.pipeline_parallel)
    world = dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))
    model_parallel = cfg.tensor_parallel * cfg.pipeline_parallel
    if world % model_parallel:
        raise ValueError(
            f"training.tensor_parallel={cfg.tensor_parallel} x pipeline_parallel={cfg.pipeline_parallel} "
            f"does not divide the {world} processes"
        )
    device = init_distributed(cfg.seed, cfg.tensor_parallel, cfg.pipeline_parallel)
    from megatron.core import parallel_state

    cuda = device.type == "cuda"
    rank = dist.get_rank()
    dp_group = parallel_state.get_data_parallel_group()
    dp_rank = parallel_state.get_data_parallel_rank()
    dp_size = parallel_state.get_data_parallel_world_size()
    accum = cfg.grad_accumulation(dp_size)
    per_rank = cfg.micro_batch * accum
    seq = stream.seq_len - 1
    ckpt_root, log_path = Path(ckpt_root), Path(log_path)
    data_layout = {"n_windows": stream.n_windows, "seq_len": stream.seq_len}

    if rank == 0:
        for stale in remove_stale(ckpt_root):
            log.warning("removed the unfinished checkpoint %s", stale)
    dist.barrier()
    existing = checkpoint_dirs(ckpt_root)
    resume = load_checkpoint(existing[-1]) if existing else None

    params_dtype = torch.bfloat16 if cfg.bf16 else torch.float32
    model = build_gpt_model(shape, params_dtype=params_dtype, recompute=cfg.recompute)
    if resume is not None:
        _check_resume(resume, cfg, data_layout)
        _load_weights(model, resume.model_state, resume.shape, shape, resume.path)
    elif init_from is not None:
        state, ckpt_shape = load_mcore(Path(init_from))
        _load_weights(model, state, ckpt_shape, shape, Path(init_from))
    model.to(device)
    if cuda:
        from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig

        model = DistributedDataParallel(
            model.config,
            DistributedDataParallelConfig(grad_reduce_in_fp32=True, use_distributed_optimizer=True),
            model,
        )
    optimizer = _Optimizer(model, cfg, cuda)

    # Like Megatron: the host RNGs start from the seed too, so a fresh run is reproducible and a resumed
    # one continues the same streams.
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    n_labels = len(label_names) if label_names else 0
    counters = {"tokens_seen": 0, "tokens_kept": 0, "label_valid": [0] * n_labels, "label_kept": [0] * n_labels}
    start = 0
    if resume is not None:
        optimizer.load_checkpoint_state(resume)
        counters = resume.trainer_state["counters"]
        start = resume.step
        restore_rng_state(resume.rng_states[rank] if rank < len(resume.rng_states) else resume.rng_states[0])
        log.info("resumed from %s at step %d", resume.path, start)
        del resume
    if rank == 0:
        _truncate_log(log_path, start)
    dist.barrier()

    selector = make_selector(cfg, stream.group_tree, dp_group, device)
    # Several micro-batches per rank: a live selector ranks the whole global batch in a forward-only
    # pass under the current weights first (no graph kept), then trains; with one, the training
    # forward's own losses rank.
    two_pass = selector.live and accum > 1

    stage = Stage.current()
    pp_group = parallel_state.get_pipeline_model_parallel_group()
    schedule = PipelineSchedule(model, stage, (seq, cfg.micro_batch, shape.hidden_size), params_dtype, device)
    flops_per_token = train_flops_per_token(shape, seq) + (forward_flops_per_token(shape, seq) if two_pass else 0.0)
    n_tokens = cfg.global_batch * seq
    last_loss = float("nan")
    log_fh = open(log_path, "a") if rank == 0 else None
    busy, steps_since_log = 0.0, 0  # seconds of step work (no hooks, no checkpointing) since the last log
    try:
        for step in range(start, cfg.steps):
            t0 = time.perf_counter()
            done = step + 1
            lr = cosine_lr(step, lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps, total_steps=cfg.steps)
            optimizer.set_lr(lr)
            ids = stream.sample_ids(cfg.seed, step * cfg.global_batch + dp_rank * per_rank, per_rank)
            batches = [stream.batch(ids[i : i + cfg.micro_batch]) for i in range(0, per_rank, cfg.micro_batch)]
            tokens = [torch.from_numpy(b.tokens).to(device) for b in batches]
            valid = [torch.from_numpy(b.valid[:, 1:]).to(device) for b in batches]

            optimizer.zero_grad(model)
            micro = [(t[:, :-1], t[:, 1:]) for t in tokens]
            keeps: list[torch.Tensor | None] = selector.fixed(batches, valid) or [None] * len(batches)
            if two_pass:
                losses = schedule.forward_only(micro)
                if stage.last:
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
                    scale = dp_size / max(float(_all_reduce(step_sums[2].clone(), dp_group)), 1.0)
                kept = torch.where(keeps[i], loss, torch.zeros((), device=device))
                step_sums[0] += loss.detach().sum().double()
                step_sums[1] += kept.detach().sum().double()
                return kept.sum() * scale

            schedule.forward_backward(micro, kept_loss)
            if stage.count > 1:
                # The last stage knows the losses, SLM's choice and its count; every stage logs and
                # counts them.
                kept_all = torch.stack(keeps).to(torch.uint8) if stage.last else torch.empty(
                    (len(batches), cfg.micro_batch, seq), dtype=torch.uint8, device=device
                )
                last_rank = parallel_state.get_pipeline_model_parallel_last_rank()
                dist.broadcast(kept_all, last_rank, group=pp_group)
                dist.broadcast(step_sums, last_rank, group=pp_group)
                keeps = list(kept_all.bool().unbind(0))
            stats = _all_reduce(step_sums, dp_group).tolist()
            kept_total = stats[2]
            loss_all, loss_kept = stats[0] / n_tokens, stats[1] / max(kept_total, 1.0)
            if not (math.isfinite(loss_all) and math.isfinite(loss_kept)):
                raise FloatingPointError(
                    f"step {done}: non-finite loss {loss_all} (kept tokens {loss_kept}); {_last_good(ckpt_root)}"
                )
            grad_norm = optimizer.step(model)
            if not math.isfinite(grad_norm):
                raise FloatingPointError(f"step {done}: non-finite gradient norm {grad_norm}; {_last_good(ckpt_root)}")

            last_loss = loss_all
            counters["tokens_seen"] += n_tokens
            counters["tokens_kept"] += int(stats[2])
            if n_labels:
                _count_labels(counters, batches, keeps, n_labels, dp_group)

            steps_since_log += 1
            busy += time.perf_counter() - t0
            tps = steps_since_log * n_tokens / max(busy, 1e-9)
            record = {
                "step": done,
                "loss": loss_all,
                "loss_kept": loss_kept,
                "kept_fraction": stats[2] / n_tokens,
                "lr": lr,
                "grad_norm": grad_norm,
                "tokens_per_s": tps,
                "mfu": tps * flops_per_token / (world * cfg.peak_tflops * 1e12),
            }
            if done % cfg.log_every == 0 or done in (1, cfg.steps):
                if log_fh is not None:
                    log_fh.write(json.dumps(record) + "\n")
                    log_fh.flush()
                busy, steps_since_log = 0.0, 0
            if on_step is not None:
                on_step(StepInfo(done, ids, [k.cpu().numpy() for k in keeps], record, model))
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
                _save(ckpt_root, done, model, optimizer, shape, rank, counters, cfg, data_layout)
    finally:
        if log_fh is not None:
            log_fh.close()

    summary = {
        "steps": cfg.steps,
        "config": cfg.to_dict(),
        "tokens_seen": counters["tokens_seen"],
        "tokens_kept": counters["tokens_kept"],
        "kept_fraction": counters["tokens_kept"] / max(1, counters["tokens_seen"]),
        "final_loss": last_loss,
        "data_parallel": dp_size,
        "tensor_parallel": cfg.tensor_parallel,
        "pipeline_parallel": cfg.pipeline_parallel,
    }
    if n_labels:
        summary["kept_fraction_by_label"] = {
            name: (k / v if v else None)
            for name, k, v in zip(label_names, counters["label_kept"], counters["label_valid"])
        }
        summary["tokens_by_label"] = dict(zip(label_names, counters["label_valid"]))
    final_state = _model_state(model)
    if rank == 0:
        save_mcore(final_state, shape, Path(out_dir))
        save_json(summary_path, summary)
    dist.barrier()
    return summary


def _last_good(root: Path) -> str:
    last = checkpoint_dirs(root)
    return f"training stopped; last good checkpoint: {last[-1] if last else 'none (initial weights)'}"


def _count_labels(counters: dict, batches: list[Batch], keeps: list[torch.Tensor], n_labels: int, group) -> None:
    """Add the global batch's target tokens and kept tokens per ground-truth label to ``counters``."""
    valid = np.zeros(n_labels, np.int64)
    kept = np.zeros(n_labels, np.int64)
    for b, keep in zip(batches, keeps):
        lab = b.labels[:, 1:].ravel()
        valid += np.bincount(lab, minlength=n_labels)[:n_labels]
        kept += np.bincount(lab[keep.cpu().numpy().ravel()], minlength=n_labels)[:n_labels]
    both = _all_reduce(torch.from_numpy(np.concatenate([valid, kept])).to(keeps[0].device), group).tolist()
    counters["label_valid"] = [a + b for a, b in zip(counters["label_valid"], both[:n_labels])]
    counters["label_kept"] = [a + b for a, b in zip(counters["label_kept"], both[n_labels:])]


def _save(
    root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: _Optimizer,
    shape: LlamaShape,
    rank: int,
    counters: dict,
    cfg: TrainConfig,
    data_layout: dict,
) -> None:
    """Checkpoint ``step``: every rank contributes its optimizer shard and RNG state, rank 0 writes."""
    opt_state, opt_shards = optimizer.state_for_checkpoint()
    rng_states: list = [None] * dist.get_world_size()
    dist.all_gather_object(rng_states, capture_rng_state())
    model_state = _model_state(model)
    if rank == 0:
        save_checkpoint(
            root,
            step,
            model_state,
            shape,
            opt_state,
            rng_states,
            {"counters": counters, "config": cfg.to_dict(), "data": data_layout, "world_size": len(rng_states)},
            optimizer_shards=opt_shards,
        )
    dist.barrier()
