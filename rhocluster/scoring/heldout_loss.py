"""Held-out loss of a trained model: its per-token loss on shards it never trained on, from the mcore
checkpoint with the trainer's own model and forward (the training loss, on other text), so a model
needs no HF export to be scored."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rhocluster.data.shards import Shard
from rhocluster.model.mcore_format import load_into_model, load_mcore
from rhocluster.model.megatron import build_gpt_model, init_distributed, lm_forward
from rhocluster.scoring.rows import NpyRowWriter


@torch.no_grad()
def score_heldout(
    model_dir: Path | str, shard_prefixes: Sequence[Path | str], out_paths: Sequence[Path | str], batch_size: int = 32
) -> list[dict]:
    """Write, for each shard, the per-token loss float16 [W, S] (NaN at position 0, which is never a
    target) of the mcore model in ``model_dir``; each file atomically. Returns per-shard statistics.

    A window of S tokens is fed as its first S - 1 tokens (positions 0 .. S - 2), as in training.
    """
    if len(shard_prefixes) != len(out_paths):
        raise ValueError(f"{len(shard_prefixes)} shards but {len(out_paths)} output paths")
    device = init_distributed(0)
    state, shape = load_mcore(Path(model_dir))
    model = build_gpt_model(shape)
    load_into_model(model, state, shape, shape)
    model.to(device).eval()
    stats = []
    for prefix, out in zip(shard_prefixes, out_paths):
        shard = Shard(prefix)
        if shard.seq_len - 1 > shape.max_position_embeddings:
            raise ValueError(f"{prefix}: windows of {shard.seq_len} tokens exceed the model's {shape.max_position_embeddings} positions")
        total, count = 0.0, 0
        with NpyRowWriter(out, shard.shape, np.float16) as writer:
            for start in range(0, shard.n_windows, batch_size):
                tokens = torch.from_numpy(shard.windows(range(start, min(start + batch_size, shard.n_windows)))).long()
                tokens = tokens.to(device)
                loss = lm_forward(model, tokens[:, :-1], tokens[:, 1:]).float().cpu().numpy()
                if not np.isfinite(loss).all():
                    raise ValueError(f"{prefix}: non-finite loss in windows {start}..{start + len(loss) - 1} from {model_dir}")
                rows = np.full(tokens.shape, np.nan, dtype=np.float32)
                rows[:, 1:] = loss
                writer.write(rows)
                total += float(loss.sum(dtype=np.float64))
                count += loss.size
        stats.append({"shard": str(prefix), "tokens": count, "mean_loss": total / max(count, 1)})
    return stats
