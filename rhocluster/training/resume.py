"""Checkpointing and exact resumption for the training loop (the files: :mod:`.checkpoint`).

A checkpoint resumes only the run that wrote it; resuming restores the weights, the optimizer state,
the counters and every rank's RNG states, and cuts the log back to the checkpoint's step, so the
resumed run reaches bitwise the same weights and log as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.distributed as dist

from rhocluster.common.atomic import atomic_path
from rhocluster.model.mcore_format import load_into_model
from rhocluster.model.shape import LlamaShape
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
from rhocluster.training.distributed import full_model_state
from rhocluster.training.optimizer import Optimizer

log = logging.getLogger(__name__)


def latest_checkpoint(root: Path, rank: int) -> TrainCheckpoint | None:
    """The newest complete checkpoint under ``root`` (None when there is none), after rank 0 has removed
    what killed saves left behind. Collective."""
    if rank == 0:
        for stale in remove_stale(root):
            log.warning("removed the unfinished checkpoint %s", stale)
    dist.barrier()
    existing = checkpoint_dirs(root)
    return load_checkpoint(existing[-1]) if existing else None


def check_resume(ckpt: TrainCheckpoint, cfg: TrainConfig, data_layout: dict) -> None:
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


def load_weights(model: torch.nn.Module, state: dict, ckpt_shape: LlamaShape, shape: LlamaShape, source: Path) -> None:
    """Load full weights of shape ``ckpt_shape`` into ``model`` (this rank's part); errors name ``source``."""
    try:
        load_into_model(model, state, ckpt_shape, shape)
    except ValueError as err:
        raise ValueError(f"checkpoint {source}: {err}") from err


def resume_from(ckpt: TrainCheckpoint, optimizer: Optimizer, rank: int) -> tuple[int, dict]:
    """Restore the optimizer state and this rank's RNG states from ``ckpt``; returns the step it was
    written after and the counters it holds."""
    optimizer.load_checkpoint_state(ckpt)
    restore_rng_state(ckpt.rng_states[rank] if rank < len(ckpt.rng_states) else ckpt.rng_states[0])
    log.info("resumed from %s at step %d", ckpt.path, ckpt.step)
    return ckpt.step, ckpt.trainer_state["counters"]


def truncate_log(path: Path, upto: int) -> None:
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


def save_step(
    root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: Optimizer,
    shape: LlamaShape,
    counters: dict,
    cfg: TrainConfig,
    data_layout: dict,
) -> None:
    """Checkpoint ``step``: every rank contributes its optimizer shard and RNG state, rank 0 writes."""
    opt_state, opt_shards = optimizer.state_for_checkpoint()
    rng_states: list = [None] * dist.get_world_size()
    dist.all_gather_object(rng_states, capture_rng_state())
    model_state = full_model_state(model)
    if dist.get_rank() == 0:
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


def last_good(root: Path) -> str:
    """What a run stopped by a non-finite value can resume from."""
    last = checkpoint_dirs(root)
    return f"training stopped; last good checkpoint: {last[-1] if last else 'none (initial weights)'}"
