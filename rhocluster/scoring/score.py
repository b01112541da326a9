"""score stage: per-token loss of a model over a shard, and a seeded sample of token representations.

Each comes from its own streaming forward pass of ``seq_len`` positions
(:mod:`rhocluster.scoring.forward`): the loss pass (``score_reference``, ``score_base``) runs every
window and writes block by block, so memory does not grow with the shard; the sample pass
(``embed_sample``) runs only the windows that hold sampled tokens. The sample
records the layer and position it was drawn from; :func:`iter_samples` refuses to pool samples drawn
from different ones (they would live in different spaces).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from rhocluster.common.atomic import atomic_path
from rhocluster.scoring.forward import Layer, load_for_shard, resolve_layer, stream_shard
from rhocluster.scoring.rows import NpyRowWriter

_F16_MAX = float(np.finfo(np.float16).max)


def sample_positions(shape: tuple[int, int], n: int, seed: int, windows: int | None = None) -> np.ndarray:
    """Sorted flat indices (int64) of ``n`` distinct target positions (never position 0 of a window); seeded.

    ``windows``: draw the tokens from that many seeded windows only (so that a sample-only pass runs a
    fraction of the shard); None draws uniformly from every window.
    """
    w, s = shape
    n_valid = w * (s - 1)
    if n_valid == 0 or n <= 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    if windows is None or windows >= w:
        pick = np.sort(rng.choice(n_valid, size=min(n, n_valid), replace=False))
        return (pick // (s - 1)) * s + pick % (s - 1) + 1
    if windows < 1:
        raise ValueError(f"sample windows must be >= 1, got {windows}")
    chosen = np.sort(rng.choice(w, size=windows, replace=False))
    pool = windows * (s - 1)
    pick = np.sort(rng.choice(pool, size=min(n, pool), replace=False))
    return chosen[pick // (s - 1)] * s + pick % (s - 1) + 1


def score_shard(
    model_dir: Path,
    shard_prefix: Path,
    out_loss: Path | None,
    out_sample: Path | Sequence[Path] | None = None,
    *,
    batch_size: int = 32,
    layer: Layer = "middle",
    position: str = "read",
    sample_tokens: int = 0,
    sample_windows: int | None = None,
    seed: int | Sequence[int] = 0,
    device: str | None = None,
) -> dict:
    """Write the per-token loss (float16 [W, S], NaN at position 0), or embedding samples: one of the two.

    The sample (``.npz``: ``positions`` int64 sorted flat indices into [W, S], ``embeddings`` float16
    [n, d] (float32 if a value overflows float16), ``layer`` as given, ``hidden_index`` (the resolved
    ``hidden_states`` index), ``position``, ``shard``) holds the representation of ``sample_tokens``
    seeded target slots (:func:`~rhocluster.scoring.forward.forward_windows`: the state at ``layer``
    that has read (``read``) or predicts (``predict``) each token); only the windows holding sampled
    slots are run. Errors name the shard (and the layer).

    Several samples in one pass (one per cluster tree): ``out_sample`` and ``seed`` as equally long
    sequences; each file holds its own seeded draw, and the pass runs the union of their windows once.
    """
    if (out_loss is None) == (out_sample is None):
        raise ValueError(
            "score_shard: a loss path or sample paths, not both or neither: the loss and the samples are "
            "separate passes (score_reference and embed_sample)"
        )
    shard, model = load_for_shard(model_dir, shard_prefix, position, device=device)
    want_sample = out_sample is not None
    outs = [] if out_sample is None else [out_sample] if isinstance(out_sample, (str, Path)) else list(out_sample)
    seeds = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
    if want_sample and len(seeds) != len(outs):
        raise ValueError(f"score_shard: {len(outs)} sample paths but {len(seeds)} seeds ({shard_prefix})")
    draws = [sample_positions(shard.shape, sample_tokens, sd, sample_windows) for sd in seeds] if want_sample else []
    positions = np.unique(np.concatenate(draws)) if draws else np.zeros(0, np.int64)
    embed = positions.size > 0
    s = shard.seq_len
    sampled_windows = np.unique(positions // s)
    run_windows = None if out_loss is not None else sampled_windows
    hidden_index = resolve_layer(model, layer) if want_sample else None
    emb: list[np.ndarray] = []
    total, n_tokens = 0.0, 0
    with NpyRowWriter(out_loss, shard.shape, np.float16) if out_loss is not None else nullcontext() as writer:
        for batch in stream_shard(
            model,
            shard,
            batch_size,
            layer=layer if embed else None,
            position=position,
            need_loss=out_loss is not None,
            windows=run_windows,
            state_windows=sampled_windows,
        ):
            if embed and batch.hidden_windows.size:
                idx = batch.hidden_windows
                lo, hi = np.searchsorted(positions, [idx[0] * s, (idx[-1] + 1) * s])
                local = positions[lo:hi]
                rows = np.searchsorted(idx, local // s)
                h = batch.hidden  # row t - 1 represents slot t
                e = h[torch.from_numpy(rows).to(h.device), torch.from_numpy(local % s - 1).to(h.device)].cpu().numpy()
                if not np.isfinite(e).all():
                    raise ValueError(
                        f"shard {shard_prefix}: NaN/inf in the sampled hidden states of layer {layer} "
                        f"({position}; windows {int(idx[0])}-{int(idx[-1])}, model {model_dir})"
                    )
                emb.append(e)
            if writer is not None:
                loss = batch.loss
                finite = np.isfinite(loss[:, 1:])
                if not finite.all():
                    raise ValueError(
                        f"shard {shard_prefix}: {int((~finite).sum())} non-finite token losses in windows "
                        f"{int(batch.windows[0])}-{int(batch.windows[-1])} from {model_dir}"
                    )
                writer.write(loss.astype(np.float16))
                total += float(loss[:, 1:].sum(dtype=np.float64))
                n_tokens += loss[:, 1:].size
    stats: dict = {"windows_run": shard.n_windows if run_windows is None else int(run_windows.size)}
    if out_loss is not None:
        stats.update(n_tokens=n_tokens, mean_loss=total / max(1, n_tokens))
    if want_sample:
        embeddings = np.concatenate(emb) if emb else np.zeros((0, 0), np.float32)
        fits = bool(np.abs(embeddings).max(initial=0.0) <= _F16_MAX)
        for path, draw in zip(outs, draws):
            rows = np.searchsorted(positions, draw)  # each draw's rows of the union's embeddings
            with atomic_path(Path(path), ".npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(
                        fh,
                        positions=draw,
                        embeddings=embeddings[rows].astype(np.float16 if fits else np.float32),
                        layer=np.array(layer),
                        hidden_index=np.array(hidden_index),
                        position=np.array(position),
                        shard=np.array(str(shard_prefix)),
                    )
        stats.update(
            n_sampled=[int(len(d)) for d in draws] if len(draws) > 1 else int(len(positions)),
            sample_dtype="float16" if fits else "float32",
            hidden_index=hidden_index,
            position=position,
            sample_windows_run=int(sampled_windows.size),
        )
    return stats


def sample_space(path: Path | str) -> tuple[int, str] | None:
    """(hidden_states index, position) a sample file was drawn from; None for files that do not record it."""
    with np.load(path) as z:
        if "hidden_index" not in z or "position" not in z:
            return None
        return int(z["hidden_index"]), str(z["position"])


def iter_samples(sample_paths: Sequence[Path | str]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Per-shard samples one at a time: (shard index, embeddings float32 [n_i, d], flat positions int64 [n_i]).

    Raises ValueError naming the file, its shard and layer if a sample holds NaN/inf, disagrees in
    width, or was drawn from another layer or position than the first file.
    """
    width, space, first = None, None, None
    for i, path in enumerate(sample_paths):
        with np.load(path) as z:
            e = z["embeddings"].astype(np.float32)
            positions = z["positions"]
            where = f"shard {z['shard']}, layer {z['layer']}" if "layer" in z else "shard index " + str(i)
        here = sample_space(path)
        if here is not None:
            if space is not None and here != space:
                raise ValueError(
                    f"embedding sample {path} ({where}) is hidden_states[{here[0]}] at position {here[1]!r}, "
                    f"but {first} is hidden_states[{space[0]}] at {space[1]!r}: samples of one tree must share "
                    f"scoring.layer and scoring.position"
                )
            space, first = space or here, first or path
        if e.shape[0] != positions.shape[0]:
            raise ValueError(f"embedding sample {path} ({where}): {e.shape[0]} rows for {positions.shape[0]} positions")
        if not np.isfinite(e).all():
            raise ValueError(f"embedding sample {path} ({where}) contains NaN/inf")
        if e.shape[0]:
            if width is not None and e.shape[1] != width:
                raise ValueError(f"embedding sample {path} ({where}) has width {e.shape[1]}, others {width}")
            width = e.shape[1]
        yield i, e, positions
