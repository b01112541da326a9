"""The training loop: build model → data → step → log → checkpoint.

One loop serves the base pretraining, the reference fine-tune and every CPT variant; they differ in
their data and in ``TrainConfig.selection``. On CPU it runs the megatron-core ``GPTModel`` with gloo and
a plain torch AdamW; with CUDA it wraps the same model in Megatron's DistributedDataParallel with the
distributed optimizer and bf16.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rhocluster.data.atomic import save_json
from rhocluster.model.checkpoint import load_into_model, load_mcore, save_mcore
from rhocluster.model.megatron import build_gpt_model, init_distributed, lm_forward
from rhocluster.model.shape import LlamaShape
from rhocluster.training.checkpoint import checkpoint_dirs, load_checkpoint, save_checkpoint
from rhocluster.training.config import TrainConfig
from rhocluster.training.data import Batch, TokenStream
from rhocluster.training.flops import train_flops_per_token
from rhocluster.training.schedule import cosine_lr
from rhocluster.training.selection import slm_keep

log = logging.getLogger(__name__)


def _model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    inner = getattr(model, "module", model)
    return {k: v.detach().to("cpu", torch.float32) for k, v in inner.state_dict().items() if torch.is_tensor(v)}


class _Optimizer:
    """torch AdamW on CPU, Megatron's distributed optimizer on GPU, behind one small interface."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, cuda: bool):
        self.cuda = cuda
        self.cfg = cfg
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
            self.opt = get_megatron_optimizer(ocfg, [model])
        else:
            # No weight decay on 1-D parameters (RMSNorm weights), as Megatron's optimizer does.
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
            )

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr

    def zero_grad(self, model: torch.nn.Module) -> None:
        if self.cuda:
            model.zero_grad_buffer()
        self.opt.zero_grad()

    def step(self, model: torch.nn.Module) -> float:
        """Reduce gradients, clip, update; returns the gradient norm before clipping."""
        if self.cuda:
            model.finish_grad_sync()
            ok, grad_norm, _ = self.opt.step()
            if not ok:
                raise RuntimeError("Megatron optimizer step skipped (non-finite gradients)")
            return float(grad_norm)
        if torch.distributed.get_world_size() > 1:
            for p in self.params:
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= torch.distributed.get_world_size()
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.opt.step()
        return float(norm)

    def state_dict(self) -> dict:
        return self.opt.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state)


def _keep_masks(
    model: torch.nn.Module,
    batches: list[Batch],
    cfg: TrainConfig,
    device: torch.device,
) -> list[torch.Tensor]:
    """Per micro-batch bool [b, S-1] masks of the target tokens this step learns from."""
    valid = [torch.from_numpy(b.valid[:, 1:]).to(device) for b in batches]
    if cfg.selection == "all":
        return valid
    if cfg.selection == "mask":
        if any(b.keep is None for b in batches):
            raise ValueError("selection 'mask' needs a mask file for every shard")
        return [torch.from_numpy(b.keep[:, 1:]).to(device) for b in batches]
    if any(b.ref_loss is None for b in batches):
        raise ValueError("selection 'slm' needs a reference-loss file for every shard")
    excess = []
    with torch.no_grad():
        for b in batches:
            tokens = torch.from_numpy(b.tokens).to(device)
            loss = lm_forward(model, tokens[:, :-1], tokens[:, 1:]).float()
            excess.append(loss - torch.from_numpy(b.ref_loss[:, 1:]).to(device))
    from megatron.core import parallel_state

    return slm_keep(excess, valid, cfg.slm_ratio, parallel_state.get_data_parallel_group())


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
) -> dict:
    """Train and write the final weights (mcore format) to ``out_dir``; resume from ``ckpt_root`` if it holds a checkpoint.

    ``log_path`` gets one JSON line per logged step; ``summary_path`` the run's totals, including the kept
    fraction of every ground-truth label when the shards carry labels.
    """
    if cfg.tensor_parallel * cfg.pipeline_parallel != 1:
        raise ValueError(
            "tensor_parallel/pipeline_parallel > 1 are not supported by the trainer's checkpointing yet; "
            "set both to 1 (data parallel scales across GPUs and nodes)"
        )
    device = init_distributed(cfg.seed, cfg.tensor_parallel, cfg.pipeline_parallel)
    from megatron.core import parallel_state

    cuda = device.type == "cuda"
    dp_rank = parallel_state.get_data_parallel_rank()
    dp_size = parallel_state.get_data_parallel_world_size()
    accum = cfg.grad_accumulation(dp_size)
    per_rank = cfg.micro_batch * accum
    seq = stream.seq_len - 1

    torch.manual_seed(cfg.seed)
    model = build_gpt_model(shape, params_dtype=torch.bfloat16 if cfg.bf16 else torch.float32, recompute=cfg.recompute)
    if init_from is not None:
        state, ckpt_shape = load_mcore(Path(init_from))
        load_into_model(model, state, ckpt_shape, shape)
    model.to(device)
    if cuda:
        from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig

        model = DistributedDataParallel(
            model.config,
            DistributedDataParallelConfig(grad_reduce_in_fp32=True, use_distributed_optimizer=True),
            model,
        )
    optimizer = _Optimizer(model, cfg, cuda)

    n_labels = len(label_names) if label_names else 0
    counters = {
        "tokens_seen": 0,
        "tokens_kept": 0,
        "label_valid": [0] * n_labels,
        "label_kept": [0] * n_labels,
    }
    start = 0
    existing = checkpoint_dirs(ckpt_root)
    if existing:
        state, ckpt_shape, opt_state, trainer_state = load_checkpoint(existing[-1])
        load_into_model(getattr(model, "module", model), state, ckpt_shape, shape)
        optimizer.load_state_dict(opt_state)
        counters = trainer_state["counters"]
        start = trainer_state["step"]
        log.info("resumed from %s at step %d", existing[-1], start)

    flops_per_token = train_flops_per_token(shape, seq)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    mode = "a" if start > 0 and log_path.exists() else "w"
    last_loss = float("nan")
    with open(log_path, mode) as log_fh:
        for step in range(start, cfg.steps):
            t0 = time.perf_counter()
            lr = cosine_lr(step, lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps, total_steps=cfg.steps)
            optimizer.set_lr(lr)
            ids = stream.sample_ids(cfg.seed, step * cfg.global_batch + dp_rank * per_rank, per_rank)
            batches = [stream.batch(ids[i : i + cfg.micro_batch]) for i in range(0, per_rank, cfg.micro_batch)]
            keeps = _keep_masks(model, batches, cfg, device)
            kept_local = torch.tensor(float(sum(int(k.sum()) for k in keeps)), device=device)
            kept_total = kept_local.clone()
            if torch.distributed.get_world_size() > 1:
                torch.distributed.all_reduce(kept_total)
            denom = max(float(kept_total), 1.0)

            optimizer.zero_grad(model)
            sum_loss_all = torch.zeros((), device=device)
            sum_loss_kept = torch.zeros((), device=device)
            for b, keep in zip(batches, keeps):
                tokens = torch.from_numpy(b.tokens).to(device)
                loss = lm_forward(model, tokens[:, :-1], tokens[:, 1:]).float()
                # Mean over the kept tokens of the whole global batch; gradients are averaged over
                # data-parallel ranks, hence the factor dp_size.
                objective = (loss * keep).sum() * (dp_size / denom)
                objective.backward()
                sum_loss_all += loss.detach().sum()
                sum_loss_kept += (loss.detach() * keep).sum()
            grad_norm = optimizer.step(model)

            stats = torch.stack([sum_loss_all, sum_loss_kept, kept_local])
            if torch.distributed.get_world_size() > 1:
                torch.distributed.all_reduce(stats)
            n_tokens = cfg.global_batch * seq
            loss_all = float(stats[0]) / n_tokens
            loss_kept = float(stats[1]) / denom
            if not (np.isfinite(loss_all) and np.isfinite(grad_norm)):
                last = checkpoint_dirs(ckpt_root)
                raise FloatingPointError(
                    f"step {step}: non-finite loss {loss_all} / grad norm {grad_norm}; "
                    f"last good checkpoint: {last[-1] if last else 'none (initial weights)'}"
                )
            last_loss = loss_all
            counters["tokens_seen"] += n_tokens
            counters["tokens_kept"] += int(float(stats[2]))
            if n_labels:
                for b, keep in zip(batches, keeps):
                    lab = b.labels[:, 1:].ravel()
                    counters["label_valid"] = (
                        np.asarray(counters["label_valid"]) + np.bincount(lab, minlength=n_labels)
                    ).tolist()
                    counters["label_kept"] = (
                        np.asarray(counters["label_kept"])
                        + np.bincount(lab[keep.cpu().numpy().ravel()], minlength=n_labels)
                    ).tolist()
            elapsed = time.perf_counter() - t0
            if step % cfg.log_every == 0 or step == cfg.steps - 1:
                tps = n_tokens / elapsed
                record = {
                    "step": step + 1,
                    "loss": loss_all,
                    "loss_kept": loss_kept,
                    "kept_fraction": float(stats[2]) / n_tokens,
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "tokens_per_s": tps,
                    "mfu": tps * flops_per_token / (dp_size * cfg.peak_tflops * 1e12),
                }
                if dp_rank == 0:
                    log_fh.write(json.dumps(record) + "\n")
                    log_fh.flush()
            done = step + 1
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps and dp_rank == 0:
                save_checkpoint(
                    ckpt_root,
                    done,
                    _model_state(model),
                    shape,
                    optimizer.state_dict(),
                    {"counters": counters, "config": cfg.to_dict()},
                )

    summary = {
        "steps": cfg.steps,
        "config": cfg.to_dict(),
        "tokens_seen": counters["tokens_seen"],
        "tokens_kept": counters["tokens_kept"],
        "kept_fraction": counters["tokens_kept"] / max(1, counters["tokens_seen"]),
        "final_loss": last_loss,
        "data_parallel": dp_size,
    }
    if n_labels:
        summary["kept_fraction_by_label"] = {
            name: (k / v if v else None)
            for name, k, v in zip(label_names, counters["label_kept"], counters["label_valid"])
        }
        summary["tokens_by_label"] = dict(zip(label_names, counters["label_valid"]))
    if dp_rank == 0:
        save_mcore(_model_state(model), shape, Path(out_dir))
        save_json(summary_path, summary)
    return summary
