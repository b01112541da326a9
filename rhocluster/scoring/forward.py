"""Streaming forward passes of a Hugging Face causal LM over a shard's windows.

Every token keeps its full left context inside its window: window ``w`` is fed as one sequence, and the
loss and hidden state of token ``t`` come from that sequence's position ``t``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from rhocluster.data.shards import Shard


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


@torch.inference_mode()
def stream_shard(
    model: torch.nn.Module, shard: Shard, batch_size: int, layer: int | None
) -> Iterator[tuple[int, np.ndarray, torch.Tensor | None]]:
    """Yield ``(first_window, loss float32 [b, T], hidden [b, T, d] or None)`` for consecutive batches.

    ``loss[:, t]`` is the cross-entropy of token ``t`` given tokens ``< t`` (NaN at ``t = 0``);
    ``hidden`` is hidden_states[layer] (``-1``: the final, normed state fed to the LM head).
    """
    device = next(model.parameters()).device
    for start in range(0, shard.n_windows, batch_size):
        idx = range(start, min(start + batch_size, shard.n_windows))
        tokens = torch.from_numpy(shard.windows(idx)).to(device)
        out = model(input_ids=tokens, output_hidden_states=layer is not None, use_cache=False)
        logits = out.logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
        ).view(tokens.shape[0], -1)
        loss = torch.full(tokens.shape, float("nan"), dtype=torch.float32, device=device)
        loss[:, 1:] = nll
        hidden = out.hidden_states[layer].float() if layer is not None else None
        yield start, loss.cpu().numpy(), hidden
