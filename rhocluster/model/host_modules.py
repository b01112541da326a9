"""Host (CPU) versions of Megatron's Llama modules: same parameters, state dict and initialisation.

Without CUDA (no Transformer Engine) the local layer spec's modules are Megatron's reference
implementations, written for clarity rather than for a CPU: the subclasses here compute the same thing
with the autograd functions of :mod:`rhocluster.model.kernels`. They take over only in the plain case
(one tensor-parallel rank, no biases, causal attention without an explicit mask, float32 where noted)
and hand everything else to Megatron. :class:`SDPAttention` and :class:`SwiGLU` enter through the layer
spec (CPU and GPU); the Host* classes replace the stock ones on a built model
(:func:`rhocluster.model.patches.use_host_modules`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from rhocluster.model import mcore_import  # noqa: F401  (first: megatron.core without import-time compiles)
from megatron.core import parallel_state
from megatron.core.models.gpt import GPTModel
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.attention import SelfAttention
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.identity_op import IdentityOp
from megatron.core.transformer.mlp import MLP

from rhocluster.model.kernels import (
    LMHeadCrossEntropyFunction,
    QKVRopeFunction,
    RMSNormFunction,
    SwiGLUFunction,
    SwiGLUMLPFunction,
)


class SDPAttention(DotProductAttention):
    """Megatron's local core attention computed by ``torch.nn.functional.scaled_dot_product_attention``.

    Causal attention of the [s, b, heads, dim] query against [s, b, groups, dim] keys/values (GQA) in
    one fused kernel (flash on CPU and GPU) instead of baddbmm + masked softmax + bmm over key/value
    heads repeated in memory. Same parameters (none) and the same result up to rounding. Given an
    explicit ``attention_mask`` it defers to Megatron's implementation.
    """

    def forward(  # type: ignore[override]
        self, query, key, value, attention_mask, attn_mask_type=None, attention_bias=None, packed_seq_params=None
    ) -> torch.Tensor:
        if attention_mask is not None or attention_bias is not None or packed_seq_params is not None:
            return super().forward(query, key, value, attention_mask, attn_mask_type, attention_bias, packed_seq_params)
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))  # [b, heads, s, dim]
        context = F.scaled_dot_product_attention(
            q,
            k,
            v,
            is_causal=True,
            scale=self.softmax_scale,
            dropout_p=self.attention_dropout.p if self.training else 0.0,
            enable_gqa=self.num_attention_heads_per_partition != self.num_query_groups_per_partition,
        )
        s, b = context.shape[2], context.shape[0]
        return context.permute(2, 0, 1, 3).reshape(s, b, self.hidden_size_per_partition)


class SwiGLU(torch.nn.Module):
    """The SwiGLU activation of Megatron's fused ``linear_fc1`` output ([gate, up] on the last dim)."""

    def __init__(self, config: TransformerConfig | None = None):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return SwiGLUFunction.apply(x)


def tensor_parallel_size() -> int:
    """Megatron's tensor-parallel world size (1 before model parallelism is initialised)."""
    if not parallel_state.model_parallel_is_initialized():
        return 1
    return parallel_state.get_tensor_model_parallel_world_size()


class HostRMSNorm(torch.nn.RMSNorm):
    """``torch.nn.RMSNorm`` (what Megatron's local spec builds without apex) computed by
    :class:`RMSNormFunction` for float32. Same parameters and state dict; other cases go to torch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if (
            self.weight is None
            or len(self.normalized_shape) != 1
            or x.dtype != torch.float32
            or self.weight.dtype != torch.float32
            or x.shape[-1] != self.normalized_shape[0]
        ):
            return super().forward(x)
        eps = self.eps if self.eps is not None else torch.finfo(x.dtype).eps
        return RMSNormFunction.apply(x, self.weight, eps)


class HostMLP(MLP):
    """Megatron's MLP whose SwiGLU feed-forward runs as :class:`SwiGLUMLPFunction` on the weights of
    its own ``linear_fc1`` / ``linear_fc2`` (same parameters, state dict and initialisation).

    Only the plain float32 case (one tensor-parallel rank, no biases, no sequence parallelism, SiLU
    gate without clamp or offset, no per-token scale) takes this path; anything else is Megatron's.
    """

    _host_path = False

    def _init_host_path(self) -> None:
        config = self.config
        self._host_path = (
            tensor_parallel_size() == 1
            and config.gated_linear_unit
            and config.activation_func is F.silu
            and getattr(config, "activation_func_clamp_value", None) is None
            and not getattr(config, "glu_linear_offset", 0.0)
            and not config.sequence_parallel
            and not config.bias_activation_fusion
            and config.fp8 is None
            and getattr(self.linear_fc1, "bias", None) is None
            and getattr(self.linear_fc2, "bias", None) is None
            and isinstance(self.activation_func, SwiGLU)
            and self.linear_fc1.weight.shape[0] == 2 * self.linear_fc2.weight.shape[1]
        )

    def forward(self, hidden_states, per_token_scale=None, **kwargs):  # type: ignore[override]
        if (
            not self._host_path
            or per_token_scale is not None
            or hidden_states.dtype != torch.float32
            or self.linear_fc1.weight.dtype != torch.float32
        ):
            return super().forward(hidden_states, per_token_scale=per_token_scale, **kwargs)
        out = SwiGLUMLPFunction.apply(hidden_states, self.linear_fc1.weight, self.linear_fc2.weight)
        return out, None


class HostSelfAttention(SelfAttention):
    """Megatron's SelfAttention whose plain float32 training/scoring forward (causal, no mask, RoPE on
    every channel, one tensor-parallel rank, no biases) projects with ``F.linear`` on its own weights,
    splits and rotates with :class:`QKVRopeFunction` and attends with :class:`SDPAttention`: the same
    computation as Megatron's forward without its copies. Any other call is Megatron's forward.
    """

    _host_path = False

    def _init_host_path(self) -> None:
        from megatron.core.transformer.attention import _yarn_get_concentration_factor_from_config

        config = self.config
        self._host_path = (
            tensor_parallel_size() == 1
            and isinstance(self.core_attention, SDPAttention)
            and getattr(self.linear_qkv, "bias", None) is None
            and getattr(self.linear_proj, "bias", None) is None
            and (self.q_layernorm is None or isinstance(self.q_layernorm, IdentityOp))
            and (self.k_layernorm is None or isinstance(self.k_layernorm, IdentityOp))
            and not config.attention_output_gate
            and not config.apply_rope_fusion
            and not config.rotary_interleaved
            and not config.multi_latent_attention
            and not config.no_rope_freq
            and not config.sequence_parallel
            and not config.test_mode
            and not config.flash_decode
            and config.context_parallel_size == 1
            and config.fp8 is None
            and not self.checkpoint_core_attention
            and not getattr(self, "offload_qkv_linear", False)
            and not getattr(self, "offload_core_attention", False)
            and not getattr(self, "offload_attn_proj", False)
            and _yarn_get_concentration_factor_from_config(config) == 1.0
            and self.num_attention_heads_per_partition % self.num_query_groups_per_partition == 0
        )

    def forward(  # type: ignore[override]
        self,
        hidden_states,
        attention_mask,
        key_value_states=None,
        inference_context=None,
        rotary_pos_emb=None,
        rotary_pos_cos=None,
        rotary_pos_sin=None,
        rotary_pos_cos_sin=None,
        attention_bias=None,
        packed_seq_params=None,
        sequence_len_offset=None,
        *,
        inference_params=None,
    ):
        freqs = rotary_pos_emb[0] if isinstance(rotary_pos_emb, tuple) else rotary_pos_emb
        if isinstance(rotary_pos_emb, tuple) and rotary_pos_emb[1] is not freqs:
            freqs = None
        dim = self.hidden_size_per_attention_head
        if not (
            self._host_path
            and hidden_states.dtype == torch.float32
            and self.linear_qkv.weight.dtype == torch.float32
            and attention_mask is None
            and key_value_states is None
            and inference_context is None
            and inference_params is None
            and rotary_pos_cos is None
            and rotary_pos_sin is None
            and rotary_pos_cos_sin is None
            and attention_bias is None
            and packed_seq_params is None
            and sequence_len_offset is None
            and freqs is not None
            and freqs.dim() == 4
            and freqs.shape[0] == hidden_states.shape[0]
            and freqs.shape[1:] == (1, 1, dim)
        ):
            return super().forward(
                hidden_states,
                attention_mask,
                key_value_states=key_value_states,
                inference_context=inference_context,
                rotary_pos_emb=rotary_pos_emb,
                rotary_pos_cos=rotary_pos_cos,
                rotary_pos_sin=rotary_pos_sin,
                rotary_pos_cos_sin=rotary_pos_cos_sin,
                attention_bias=attention_bias,
                packed_seq_params=packed_seq_params,
                sequence_len_offset=sequence_len_offset,
                inference_params=inference_params,
            )
        s, b, _ = hidden_states.shape
        groups = self.num_query_groups_per_partition
        mixed = F.linear(hidden_states, self.linear_qkv.weight).view(s, b, groups, -1)
        # As Megatron's unfused RoPE: cos/sin of the float frequencies, in the activations' dtype.
        cos, sin = torch.cos(freqs).to(mixed.dtype), torch.sin(freqs).to(mixed.dtype)
        q_per_group = self.num_attention_heads_per_partition // groups
        query, key, value = QKVRopeFunction.apply(mixed, cos, sin, q_per_group)
        context = self.core_attention(query, key, value, None, attn_mask_type=self.attn_mask_type)
        return F.linear(context, self.linear_proj.weight), None


class LlamaGPTModel(GPTModel):
    """GPTModel whose per-token loss, with the whole vocabulary on one rank (tensor_parallel=1), is
    torch's fused log-softmax + NLL on the [s, b, vocab] logits: the same numbers as Megatron's
    vocab-parallel cross-entropy with fewer passes over the largest activation. On a host without
    CUDA (local spec) the output layer and that loss run together as :class:`LMHeadCrossEntropyFunction`
    when labels are given. Parameters and state dict are GPTModel's."""

    _host_loss = False  # set by build_gpt_model for the host fallback modules

    def compute_language_model_loss(self, labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if parallel_state.get_tensor_model_parallel_world_size() > 1 or self.config.cross_entropy_loss_fusion:
            return super().compute_language_model_loss(labels, logits)
        s, b, vocab = logits.shape
        loss = F.cross_entropy(logits.float().view(s * b, vocab), labels.t().reshape(-1), reduction="none")
        return loss.view(s, b).t().contiguous()  # [b, s], like Megatron's

    def _postprocess(self, hidden_states, *args, **kwargs):  # type: ignore[override]
        from megatron.core.config_logger import has_config_logger_enabled

        labels = kwargs.get("labels")
        weight = self.output_layer.weight if self.post_process else None
        if (
            not self._host_loss
            or args
            or labels is None
            or kwargs.get("inference_context") is not None
            or kwargs.get("mtp_in_postprocess")
            or self.config.mtp_num_layers is not None
            or self.share_embeddings_and_output_weights
            or getattr(self.output_layer, "bias", None) is not None
            or self.output_layer.sequence_parallel
            or tensor_parallel_size() > 1
            or self.config.cross_entropy_loss_fusion
            or has_config_logger_enabled(self.config)
            or hidden_states.dtype != torch.float32
            or weight is None
            or weight.dtype != torch.float32
            or labels.shape != (hidden_states.shape[1], hidden_states.shape[0])
        ):
            return super()._postprocess(hidden_states, *args, **kwargs)
        for_backward = torch.is_grad_enabled() and (hidden_states.requires_grad or weight.requires_grad)
        return LMHeadCrossEntropyFunction.apply(hidden_states, weight, labels, for_backward)


HOST_CLASSES: dict[type, type] = {torch.nn.RMSNorm: HostRMSNorm, MLP: HostMLP, SelfAttention: HostSelfAttention}
"""The stock class of each module that :func:`rhocluster.model.patches.use_host_modules` replaces."""
