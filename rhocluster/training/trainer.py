"""The training loop: build model → data → step → log → checkpoint.

One loop serves the base pretraining, the reference fine-tune and every CPT variant; they differ in
their data and in ``TrainConfig.tokens``. On CPU it runs the megatron-core ``GPTModel`` with gloo and
a plain torch AdamW; with CUDA it wraps the same model in Megatron's DistributedDataParallel with the
distributed optimizer (bf16 when configured). Under torchrun every rank runs this function; rank 0
writes the log, the checkpoints and the outputs. With tensor parallelism each rank holds shards of every
layer; with pipeline parallelism each rank holds a stage's layers and the step's micro-batches go through
:class:`~rhocluster.training.pipeline.PipelineSchedule` (one stage: forward and backward of each
micro-batch in turn), the last stage choosing the tokens and broadcasting its choice to the others.

Resumption is exact: the data position follows from the step, and a checkpoint holds the weights, the
optimizer state, every rank's RNG states and the counters, so a run killed after checkpoint k and
resumed reaches bitwise the same weights as an uninterrupted run (on the same hardware and world size).

The loop's parts live beside it: :mod:`.step` (a step's forward and backward with token selection),
:mod:`.optimizer`, :mod:`.resume` (checkpoints and resumption), :mod:`.metrics` (counters, log, summary)
and :mod:`.distributed` (the collectives they share).
"""

from __future__ import annotations

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

from rhocluster.common.atomic import save_json
from rhocluster.model.mcore_format import load_mcore, save_mcore
from rhocluster.model.megatron import build_gpt_model, init_distributed
from rhocluster.model.pipeline_layout import check_pipeline_parallel
from rhocluster.model.shape import LlamaShape
from rhocluster.model.tensor_parallel import check_tensor_parallel
from rhocluster.training.checkpoint import TrainCheckpoint
from rhocluster.training.config import TrainConfig
from rhocluster.training.data import TokenStream
from rhocluster.training.distributed import full_model_state
from rhocluster.training.flops import forward_flops_per_token, train_flops_per_token
from rhocluster.training.metrics import TrainLog, count_step, new_counters, run_summary
from rhocluster.training.optimizer import Optimizer
from rhocluster.training.resume import (
    check_resume,
    last_good,
    latest_checkpoint,
    load_weights,
    resume_from,
    save_step,
    truncate_log,
)
from rhocluster.training.schedule import cosine_lr
from rhocluster.training.step import SelectiveStep

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
    world = _check_inputs(shape, cfg, stream)
    device = init_distributed(cfg.seed, cfg.tensor_parallel, cfg.pipeline_parallel)
    from megatron.core import parallel_state

    rank = dist.get_rank()
    dp_group = parallel_state.get_data_parallel_group()
    dp_rank = parallel_state.get_data_parallel_rank()
    dp_size = parallel_state.get_data_parallel_world_size()
    accum = cfg.grad_accumulation(dp_size)
    per_rank = cfg.micro_batch * accum
    seq = stream.seq_len - 1
    ckpt_root, log_path = Path(ckpt_root), Path(log_path)
    data_layout = {"n_windows": stream.n_windows, "seq_len": stream.seq_len}

    resume = latest_checkpoint(ckpt_root, rank)
    if resume is not None:
        check_resume(resume, cfg, data_layout)
    params_dtype = torch.bfloat16 if cfg.bf16 else torch.float32
    model = _build_model(shape, cfg, params_dtype, device, resume, init_from)
    optimizer = Optimizer(model, cfg, device.type == "cuda")

    # Like Megatron: the host RNGs start from the seed too, so a fresh run is reproducible and a resumed
    # one continues the same streams.
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    n_labels = len(label_names) if label_names else 0
    start, counters = 0, new_counters(n_labels)
    if resume is not None:
        start, counters = resume_from(resume, optimizer, rank)
        del resume
    if rank == 0:
        truncate_log(log_path, start)
    dist.barrier()

    forward_backward = SelectiveStep(model, cfg, stream, shape, params_dtype, device, accum)
    flops_per_token = train_flops_per_token(shape, seq) + (
        forward_flops_per_token(shape, seq) if forward_backward.two_pass else 0.0
    )
    n_tokens = cfg.global_batch * seq
    last_loss = float("nan")
    train_log = TrainLog(log_path if rank == 0 else None, cfg, n_tokens, flops_per_token, world)
    try:
        for step in range(start, cfg.steps):
            t0 = time.perf_counter()
            done = step + 1
            lr = cosine_lr(step, lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps, total_steps=cfg.steps)
            optimizer.set_lr(lr)
            ids = stream.sample_ids(cfg.seed, step * cfg.global_batch + dp_rank * per_rank, per_rank)
            batches = [stream.batch(ids[i : i + cfg.micro_batch]) for i in range(0, per_rank, cfg.micro_batch)]

            optimizer.zero_grad(model)
            keeps, (loss_sum, kept_loss_sum, kept) = forward_backward(batches)
            loss_all, loss_kept = loss_sum / n_tokens, kept_loss_sum / max(kept, 1.0)
            if not (math.isfinite(loss_all) and math.isfinite(loss_kept)):
                raise FloatingPointError(
                    f"step {done}: non-finite loss {loss_all} (kept tokens {loss_kept}); {last_good(ckpt_root)}"
                )
            grad_norm = optimizer.step(model)
            if not math.isfinite(grad_norm):
                raise FloatingPointError(f"step {done}: non-finite gradient norm {grad_norm}; {last_good(ckpt_root)}")

            last_loss = loss_all
            count_step(counters, n_tokens, kept, batches, keeps, n_labels, dp_group)
            record = train_log.step(done, loss_all, loss_kept, kept, lr, grad_norm, time.perf_counter() - t0)
            if on_step is not None:
                on_step(StepInfo(done, ids, [k.cpu().numpy() for k in keeps], record, model))
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
                save_step(ckpt_root, done, model, optimizer, shape, counters, cfg, data_layout)
    finally:
        train_log.close()

    summary = run_summary(cfg, counters, last_loss, dp_size, label_names)
    final_state = full_model_state(model)
    if rank == 0:
        save_mcore(final_state, shape, Path(out_dir))
        save_json(summary_path, summary)
    dist.barrier()
    return summary


def _check_inputs(shape: LlamaShape, cfg: TrainConfig, stream: TokenStream) -> int:
    """Refuse a selection without its inputs or a model-parallel layout that does not fit; returns the
    number of processes."""
    if cfg.tokens == "mask" and stream.masks is None:
        raise ValueError("training.tokens='mask' needs a mask file for every shard")
    if cfg.tokens == "slm" and stream.ref_losses is None:
        raise ValueError("training.tokens='slm' needs a reference-loss file for every shard")
    if cfg.group_level and stream.groups is None:
        raise ValueError(f"training.group_level={cfg.group_level} needs every token's cluster group (leaf files)")
    check_tensor_parallel(shape, cfg.tensor_parallel)
    check_pipeline_parallel(shape, cfg.pipeline_parallel)
    world = dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))
    model_parallel = cfg.tensor_parallel * cfg.pipeline_parallel
    if world % model_parallel:
        raise ValueError(
            f"training.tensor_parallel={cfg.tensor_parallel} x pipeline_parallel={cfg.pipeline_parallel} "
            f"does not divide the {world} processes"
        )
    return world


def _build_model(
    shape: LlamaShape,
    cfg: TrainConfig,
    params_dtype: torch.dtype,
    device: torch.device,
    resume: TrainCheckpoint | None,
    init_from: Path | None,
) -> torch.nn.Module:
    """This rank's part of the model on ``device``, with the weights of ``resume`` or else of
    ``init_from`` (else freshly initialised); on GPU wrapped in Megatron's DistributedDataParallel."""
    model = build_gpt_model(shape, params_dtype=params_dtype, recompute=cfg.recompute)
    if resume is not None:
        load_weights(model, resume.model_state, resume.shape, shape, resume.path)
    elif init_from is not None:
        state, ckpt_shape = load_mcore(Path(init_from))
        load_weights(model, state, ckpt_shape, shape, Path(init_from))
    model.to(device)
    if device.type == "cuda":
        from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig

        model = DistributedDataParallel(
            model.config,
            DistributedDataParallelConfig(grad_reduce_in_fp32=True, use_distributed_optimizer=True),
            model,
        )
    return model
