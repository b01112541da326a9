"""Streaming forward passes of a Hugging Face causal LM over a shard's windows.

A window holds ``S = seq_len + 1`` tokens ``x_0 .. x_{S-1}``; slot ``t >= 1`` is the target token
``x_t`` (slot 0 is never a target). Every pass feeds ``S - 1 = seq_len`` tokens, as training does, so
no position beyond the model's ``max_position_embeddings`` is ever fed (checked, an error otherwise):

- the **loss** of slot ``t`` is the cross-entropy of ``x_t`` from the final state at position ``t - 1``
  of the pass over ``tokens[:, :-1]`` (exactly the trainer's input);
- the **representation** of slot ``t`` (``scoring.layer``, ``scoring.position``) is row ``t - 1`` of
  ``hidden_states[layer]`` of the pass over ``tokens[:, 1:]`` (``read``: the state that has read
  ``x_t``, after the context ``x_1 .. x_t``) or over ``tokens[:, :-1]`` (``predict``: the state that
  predicts ``x_t``, after ``x_0 .. x_{t-1}``; the loss pass itself). See docs/representation.md.

Memory stays bounded by the batch, whatever the shard size: only the requested hidden layer is kept
(a hook, not ``output_hidden_states``, which would hold every layer), layers above it are not run
unless the loss needs them, and the loss is computed from the final hidden state through the LM head
a few windows at a time, so the ``[b, T, vocab]`` logits are never materialised at once (8 GB in fp32
for 32 windows of 2048 tokens at TinyLlama's vocab).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from rhocluster.data.shards import Shard

# Windows whose logits are materialised at once when computing the loss through the LM head.
_LOSS_CHUNK = 4
# scoring.position: which hidden state represents target slot t.
POSITIONS = ("read", "predict")
# scoring.layer may name a layer by its depth instead of an index.
LAYER_NAMES = ("middle",)

Layer = int | str


def load_causal_lm(model_dir: Path | str, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load an exported model (safetensors) for inference: fp32 on CPU, bf16 on GPU."""
    from transformers import AutoModelForCausalLM

    device = torch.device(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, use_safetensors=True)
    return model.to(device).eval()


def default_device() -> torch.device:
    """cuda when present, else cpu."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Batch:
    """One batch of consecutive (or selected) windows.

    windows: int64 [b] window indices; loss: float32 [b, S] (NaN at slot 0) or None; hidden: float32
    tensor [h, S - 1, d] on the model's device (row ``t - 1`` represents slot ``t``) of the windows
    ``hidden_windows`` (int64 [h], a subset of ``windows``), or None.
    """

    windows: np.ndarray
    loss: np.ndarray | None
    hidden: torch.Tensor | None
    hidden_windows: np.ndarray | None = None


class _Stop(Exception):
    """Raised by the layer hook to skip the layers above it when no loss is needed."""


def _n_layers(model: torch.nn.Module) -> int:
    return int(model.config.num_hidden_layers)


def resolve_layer(model: torch.nn.Module, layer: Layer) -> int:
    """Index into HF ``hidden_states`` for ``scoring.layer``.

    0 = token embeddings, i = output of decoder layer i, L = -1 = the final, normed state fed to the
    LM head (L = ``num_hidden_layers``); negative indices count from the top; ``"middle"`` = L // 2.
    """
    n = _n_layers(model)
    if isinstance(layer, str):
        if layer not in LAYER_NAMES:
            raise ValueError(f"scoring.layer={layer!r}: expected an integer in [-{n + 1}, {n}] or one of {LAYER_NAMES}")
        return n // 2
    idx = int(layer) + n + 1 if layer < 0 else int(layer)
    if not 0 <= idx <= n:
        raise ValueError(
            f"scoring.layer={layer} outside [-{n + 1}, {n}] for a model with {n} layers "
            f"(hidden_states index: 0 = embeddings, {n} = -1 = final normed state)"
        )
    return idx


def check_position(position: str) -> str:
    """``position`` if it is a valid ``scoring.position``, else a ValueError naming the key."""
    if position not in POSITIONS:
        raise ValueError(f"scoring.position={position!r}: expected one of {POSITIONS}")
    return position


def check_window(model: torch.nn.Module, window_tokens: int, where: str = "") -> None:
    """Refuse windows whose passes (``window_tokens - 1`` positions) exceed ``max_position_embeddings``."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and window_tokens - 1 > int(limit):
        raise ValueError(
            f"{where + ': ' if where else ''}windows of {window_tokens} tokens need {window_tokens - 1} positions "
            f"per pass, beyond the model's max_position_embeddings={limit} (data.seq_len must not exceed it)"
        )


def load_for_shard(
    model_dir: Path | str, shard_prefix: Path | str, position: str, *, device: str | None = None, model=None
) -> tuple[Shard, torch.nn.Module]:
    """The shard at ``shard_prefix`` and the causal LM of ``model_dir`` (or ``model``, already loaded) on
    ``device`` (default :func:`default_device`), checked to go together: ``position`` is a valid
    ``scoring.position`` and a window's pass fits the model's positions. Errors name the shard and model."""
    shard = Shard(shard_prefix)
    check_position(position)
    model = model if model is not None else load_causal_lm(model_dir, device or default_device())
    check_window(model, shard.seq_len, f"shard {shard_prefix} (model {model_dir})")
    return shard, model


def _split_model(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(decoder, lm_head) when the head is a plain linear map of the decoder's output (Llama family)."""
    get_decoder = getattr(model, "get_decoder", None)
    head = model.get_output_embeddings()
    if get_decoder is None or not isinstance(head, torch.nn.Linear):
        return None
    if getattr(model.config, "final_logit_softcapping", None):
        return None
    decoder = get_decoder()
    if not hasattr(decoder, "layers") or not hasattr(decoder, "embed_tokens"):
        return None
    return decoder, head


def _nll(head: torch.nn.Module, final: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """float32 [b, n] cross-entropy of ``targets[:, j]`` from ``final[:, j]``, a few windows at a time."""
    out = torch.empty(targets.shape, dtype=torch.float32, device=targets.device)
    for lo in range(0, targets.shape[0], _LOSS_CHUNK):
        hi = lo + _LOSS_CHUNK
        logits = head(final[lo:hi]).float()
        out[lo:hi] = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets[lo:hi].reshape(-1), reduction="none"
        ).view(logits.shape[0], -1)
    return out


def _pass(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None, idx: int | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One forward of ``inputs`` [b, n]: (nll float32 [b, n] of ``targets`` or None, hidden_states[idx] or None)."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and inputs.shape[1] > int(limit):  # every caller checks first; never fed
        raise ValueError(f"a forward of {inputs.shape[1]} positions exceeds max_position_embeddings={limit}")
    split = _split_model(model)
    if split is None:  # any other architecture: HF's own path, all layers kept
        out = model(input_ids=inputs, output_hidden_states=idx is not None, use_cache=False)
        nll = None
        if targets is not None:
            logits = out.logits.float()
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
            ).view(targets.shape)
        return nll, (out.hidden_states[idx] if idx is not None else None)

    decoder, head = split
    final_wanted = idx == _n_layers(model)
    need_final = targets is not None or final_wanted
    captured: dict[str, torch.Tensor] = {}
    handle = None
    if idx is not None and not final_wanted:
        module = decoder.embed_tokens if idx == 0 else decoder.layers[idx - 1]

        def hook(_module, _args, output):
            captured["h"] = output[0] if isinstance(output, tuple) else output
            if not need_final:
                raise _Stop

        handle = module.register_forward_hook(hook)
    try:
        final = decoder(input_ids=inputs, use_cache=False).last_hidden_state
    except _Stop:
        final = None
    finally:
        if handle is not None:
            handle.remove()
    nll = _nll(head, final, targets) if targets is not None else None
    if idx is None:
        return nll, None
    return nll, final if final_wanted else captured["h"]


@torch.inference_mode()
def forward_windows(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    *,
    layer: Layer | None,
    need_loss: bool,
    position: str = "read",
    state_rows: Sequence[int] | np.ndarray | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Loss and representations of int64 windows ``tokens`` [b, S].

    Returns (loss float32 [b, S] with NaN at slot 0, or None; hidden float32 [h, S - 1, d] or None),
    where ``hidden[r, t - 1]`` represents slot ``t`` of window ``state_rows[r]`` (all rows when None):
    ``hidden_states[layer]`` of the pass over ``tokens[:, 1:]`` (``read``) or ``tokens[:, :-1]``
    (``predict``, shared with the loss pass). Layers above ``layer`` run only when the loss needs them.
    """
    b, s = tokens.shape
    check_window(model, s)
    check_position(position)
    idx = resolve_layer(model, layer) if layer is not None else None
    rows = None if state_rows is None else torch.as_tensor(np.asarray(state_rows, dtype=np.int64), device=tokens.device)
    loss, hidden = None, None
    if need_loss:
        shared = idx if position == "predict" else None
        nll, h = _pass(model, tokens[:, :-1], tokens[:, 1:], shared)
        loss = torch.full((b, s), float("nan"), dtype=torch.float32, device=tokens.device)
        loss[:, 1:] = nll
        if h is not None:
            hidden = h if rows is None else h[rows]
    if idx is not None and hidden is None:
        sub = tokens if rows is None else tokens[rows]
        if sub.shape[0]:
            inputs = sub[:, 1:] if position == "read" else sub[:, :-1]
            _, hidden = _pass(model, inputs, None, idx)
        else:
            hidden = torch.zeros((0, s - 1, int(model.config.hidden_size)), device=tokens.device)
    return loss, None if hidden is None else hidden.float()


def stream_shard(
    model: torch.nn.Module,
    shard: Shard,
    batch_size: int,
    *,
    layer: Layer | None,
    need_loss: bool = True,
    position: str = "read",
    windows: Sequence[int] | np.ndarray | None = None,
    state_windows: Sequence[int] | np.ndarray | None = None,
) -> Iterator[Batch]:
    """Yield :class:`Batch` es over the shard's windows (all, in order, or the sorted ``windows`` given).

    Representations (when ``layer`` is set) are computed for the windows of ``state_windows`` only
    (sorted; None = every window run), so a ``read`` sample costs a pass over the sampled windows alone.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_window(model, shard.seq_len, f"shard {shard.prefix}")
    device = next(model.parameters()).device
    order = np.arange(shard.n_windows) if windows is None else np.asarray(windows, dtype=np.int64)
    wanted = None if state_windows is None else np.asarray(state_windows, dtype=np.int64)
    for start in range(0, order.size, batch_size):
        idx = order[start : start + batch_size]
        tokens = torch.from_numpy(shard.windows(idx)).to(device)
        rows = None if wanted is None or layer is None else np.flatnonzero(np.isin(idx, wanted))
        loss, hidden = forward_windows(
            model, tokens, layer=layer, need_loss=need_loss, position=position, state_rows=rows
        )
        hidden_windows = None if hidden is None else (idx if rows is None else idx[rows])
        yield Batch(idx, None if loss is None else loss.cpu().numpy(), hidden, hidden_windows)
