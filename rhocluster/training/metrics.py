"""What the training loop measures: the counters a checkpoint carries (tokens seen and kept, per
ground-truth label too), the JSONL log of loss, kept fraction, tokens/s and MFU, and the run's summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rhocluster.training.config import TrainConfig
from rhocluster.training.data import Batch
from rhocluster.training.distributed import all_reduce


def new_counters(n_labels: int) -> dict:
    """Counters of a fresh run: target tokens seen and kept, overall and per label."""
    return {"tokens_seen": 0, "tokens_kept": 0, "label_valid": [0] * n_labels, "label_kept": [0] * n_labels}


def count_step(
    counters: dict, n_tokens: int, kept: float, batches: list[Batch], keeps: list[torch.Tensor], n_labels: int, group
) -> None:
    """Add one step's ``n_tokens`` seen and ``kept`` kept target tokens (global batch) to ``counters``,
    and with labels the global batch's counts per label (an all-reduce over the data-parallel ``group``)."""
    counters["tokens_seen"] += n_tokens
    counters["tokens_kept"] += int(kept)
    if n_labels:
        _count_labels(counters, batches, keeps, n_labels, group)


def _count_labels(counters: dict, batches: list[Batch], keeps: list[torch.Tensor], n_labels: int, group) -> None:
    """Add the global batch's target tokens and kept tokens per ground-truth label to ``counters``."""
    valid = np.zeros(n_labels, np.int64)
    kept = np.zeros(n_labels, np.int64)
    for b, keep in zip(batches, keeps):
        lab = b.labels[:, 1:].ravel()
        valid += np.bincount(lab, minlength=n_labels)[:n_labels]
        kept += np.bincount(lab[keep.cpu().numpy().ravel()], minlength=n_labels)[:n_labels]
    both = all_reduce(torch.from_numpy(np.concatenate([valid, kept])).to(keeps[0].device), group).tolist()
    counters["label_valid"] = [a + b for a, b in zip(counters["label_valid"], both[:n_labels])]
    counters["label_kept"] = [a + b for a, b in zip(counters["label_kept"], both[n_labels:])]


class TrainLog:
    """One JSON line per logged step (every ``cfg.log_every`` steps, the first and the last), written
    by the rank given a ``path``; throughput counts only step work (no hooks, no checkpointing) since
    the last logged step."""

    def __init__(self, path: Path | None, cfg: TrainConfig, n_tokens: int, flops_per_token: float, world: int):
        self.cfg, self.n_tokens, self.flops_per_token, self.world = cfg, n_tokens, flops_per_token, world
        self.fh = open(path, "a") if path is not None else None
        self.busy, self.steps = 0.0, 0  # seconds of step work and steps since the last log

    def step(self, done: int, loss: float, loss_kept: float, kept: float, lr: float, grad_norm: float, seconds: float) -> dict:
        """The record of step ``done`` (``kept`` target tokens of the global batch kept, ``seconds`` of
        work), written when the step is one to log."""
        self.steps += 1
        self.busy += seconds
        tps = self.steps * self.n_tokens / max(self.busy, 1e-9)
        record = {
            "step": done,
            "loss": loss,
            "loss_kept": loss_kept,
            "kept_fraction": kept / self.n_tokens,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens_per_s": tps,
            "mfu": tps * self.flops_per_token / (self.world * self.cfg.peak_tflops * 1e12),
        }
        if done % self.cfg.log_every == 0 or done in (1, self.cfg.steps):
            if self.fh is not None:
                self.fh.write(json.dumps(record) + "\n")
                self.fh.flush()
            self.busy, self.steps = 0.0, 0
        return record

    def close(self) -> None:
        """Close the log file (on the writing rank)."""
        if self.fh is not None:
            self.fh.close()


def run_summary(
    cfg: TrainConfig, counters: dict, final_loss: float, data_parallel: int, label_names: list[str] | None
) -> dict:
    """The run's totals for ``summary.json``: steps, config, tokens seen and kept, final loss, the
    parallel layout and, with labels, the kept fraction and token count of every label."""
    summary = {
        "steps": cfg.steps,
        "config": cfg.to_dict(),
        "tokens_seen": counters["tokens_seen"],
        "tokens_kept": counters["tokens_kept"],
        "kept_fraction": counters["tokens_kept"] / max(1, counters["tokens_seen"]),
        "final_loss": final_loss,
        "data_parallel": data_parallel,
        "tensor_parallel": cfg.tensor_parallel,
        "pipeline_parallel": cfg.pipeline_parallel,
    }
    if label_names:
        summary["kept_fraction_by_label"] = {
            name: (k / v if v else None)
            for name, k, v in zip(label_names, counters["label_kept"], counters["label_valid"])
        }
        summary["tokens_by_label"] = dict(zip(label_names, counters["label_valid"]))
    return summary
