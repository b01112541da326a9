"""Model FLOPs per token, for the MFU estimate logged by the trainer."""

from __future__ import annotations

from rhocluster.model.shape import LlamaShape


def train_flops_per_token(shape: LlamaShape, seq_len: int) -> float:
    """Forward + backward FLOPs per token: 6·N for the dense weights plus causal attention scores.

    The attention term is 6·L·S·H (QK^T and AV, 2 FLOPs per MAC, x3 for backward, halved for the causal
    mask), the convention of the PaLM / Megatron MFU formulas.
    """
    n = shape.num_parameters() - shape.vocab_size * shape.hidden_size  # input embedding is a lookup
    attention = 6 * shape.num_layers * seq_len * shape.hidden_size
    return 6.0 * n + attention


def forward_flops_per_token(shape: LlamaShape, seq_len: int) -> float:
    """Forward-only FLOPs per token (a third of training FLOPs)."""
    return train_flops_per_token(shape, seq_len) / 3.0
