"""Streaming forward passes of a Hugging Face causal LM over a shard's windows.

Every token keeps its full left context inside its window: window ``w`` is fed as one sequence, and the
loss and hidden state of token ``t`` come from that sequence's position ``t``.

Memory stays bounded by the batch, whatever the shard size: only the requested hidden layer is kept
(a hook, not ``output_hidden_states``, which would hold every layer), and the loss is computed from
the final hidden state through the LM head a few windows at a time, so the ``[b, T, vocab]`` logits
are never materialised at once (8 GB in fp32 for 32 windows of 2048 tokens at TinyLlama's vocab).
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

    windows: int64 [b] window indices; loss: float32 [b, T] (NaN at t = 0) or None; hidden: float32
    tensor [b, T, d] of the requested layer (on the model's device) or None.
    """

    windows: np.ndarray
    loss: np.ndarray | None
    hidden: torch.Tensor | None


class _Stop(Exception):
    """Raised by the layer hook to skip the layers above it when no loss is needed."""


def _n_layers(model: torch.nn.Module) -> int:
    return int(model.config.num_hidden_layers)


def resolve_layer(model: torch.nn.Module, layer: int) -> int:
    """Index into HF ``hidden_states`` (0 = embeddings, L = final normed state before the LM head)."""
    n = _n_layers(model)
    idx = layer + n + 1 if layer < 0 else layer
    if not 0 <= idx <= n:
        raise ValueError(f"scoring.layer={layer} outside [-{n + 1}, {n}] for a model with {n} layers")
    return idx


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


def _token_loss(head: torch.nn.Module, final: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """float32 [b, T] cross-entropy of token t given < t (NaN at t = 0), a few windows at a time."""
    loss = torch.full(tokens.shape, float("nan"), dtype=torch.float32, device=tokens.device)
    for lo in range(0, tokens.shape[0], _LOSS_CHUNK):
        hi = lo + _LOSS_CHUNK
        logits = head(final[lo:hi, :-1]).float()
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tokens[lo:hi, 1:].reshape(-1), reduction="none"
        )
        loss[lo:hi, 1:] = nll.view(logits.shape[0], -1)
    return loss


@torch.inference_mode()
def forward_windows(
    model: torch.nn.Module, tokens: torch.Tensor, *, layer: int | None, need_loss: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One forward pass of int64 ``tokens`` [b, T]; returns (loss float32 [b, T] or None, hidden float32 [b, T, d] or None).

    ``hidden`` is ``hidden_states[layer]`` of HF's convention (``-1``: the final, normed state fed to
    the LM head). Without a loss, layers above ``layer`` are not run.
    """
    split = _split_model(model)
    if split is None:  # any other architecture: HF's own path, all layers kept
        out = model(input_ids=tokens, output_hidden_states=layer is not None, use_cache=False)
        loss = None
        if need_loss:
            logits = out.logits[:, :-1].float()
            loss = torch.full(tokens.shape, float("nan"), dtype=torch.float32, device=tokens.device)
            loss[:, 1:] = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
            ).view(tokens.shape[0], -1)
        hidden = out.hidden_states[resolve_layer(model, layer)].float() if layer is not None else None
        return loss, hidden

    decoder, head = split
    idx = resolve_layer(model, layer) if layer is not None else None
    final_wanted = idx == _n_layers(model)
    captured: dict[str, torch.Tensor] = {}
    handle = None
    if idx is not None and not final_wanted:
        module = decoder.embed_tokens if idx == 0 else decoder.layers[idx - 1]

        def hook(_module, _args, output):
            captured["h"] = output[0] if isinstance(output, tuple) else output
            if not need_loss:
                raise _Stop

        handle = module.register_forward_hook(hook)
    try:
        final = decoder(input_ids=tokens, use_cache=False).last_hidden_state
    except _Stop:
        final = None
    finally:
        if handle is not None:
            handle.remove()
    loss = _token_loss(head, final, tokens) if need_loss else None
    if idx is None:
        return loss, None
    hidden = final if final_wanted else captured["h"]
    return loss, hidden.float()


def stream_shard(
    model: torch.nn.Module,
    shard: Shard,
    batch_size: int,
    *,
    layer: int | None,
    need_loss: bool = True,
    windows: Sequence[int] | np.ndarray | None = None,
) -> Iterator[Batch]:
    """Yield :class:`Batch` es over the shard's windows (all, in order, or the sorted ``windows`` given)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    order = np.arange(shard.n_windows) if windows is None else np.asarray(windows, dtype=np.int64)
    for start in range(0, order.size, batch_size):
        idx = order[start : start + batch_size]
        tokens = torch.from_numpy(shard.windows(idx)).to(device)
        loss, hidden = forward_windows(model, tokens, layer=layer, need_loss=need_loss)
        yield Batch(idx, None if loss is None else loss.cpu().numpy(), hidden)
