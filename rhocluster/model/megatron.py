"""Megatron-core GPTModel with the Llama-2 architecture: one code path for CPU (gloo) and GPU (nccl).

megatron-core 0.16.1 assumes CUDA in three places this module works around on a host without CUDA:
the RNG tracker (``torch.cuda.get_rng_state``), the global attention-score buffer and the RoPE
frequencies (both placed on ``torch.cuda.current_device()``).

Without CUDA (no Transformer Engine) the local layer spec's modules are Megatron's reference
implementations, written for clarity rather than for a CPU: the Host* subclasses and autograd functions
below compute the same thing (same parameters, state dict and initialisation) with fewer passes over the
activations. They take over only in the plain case (one tensor-parallel rank, no biases, causal
attention without an explicit mask, float32 where noted) and hand everything else to Megatron; with CUDA
the model is Megatron's / TE's own.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from megatron.core import parallel_state
from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.attention import SelfAttention
from megatron.core.transformer.identity_op import IdentityOp
from megatron.core.transformer.mlp import MLP
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.utils import GlobalMemoryBuffer

from rhocluster.model.shape import LlamaShape

_SEED: int | None = None
_TE_ATTR = "rhocluster_transformer_engine"
_SDPA_ATTR = "rhocluster_sdpa_attention"


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


class _HostMemoryBuffer(GlobalMemoryBuffer):
    """Megatron's attention-score scratch buffer, allocated on the host instead of the current GPU."""

    def get_tensor(self, tensor_shape, dtype, name, mem_alloc_context=None):  # type: ignore[override]
        required = math.prod(tensor_shape)
        buf = self.buffer.get((name, dtype))
        if buf is None or buf.numel() < required:
            buf = self.buffer[(name, dtype)] = torch.empty(required, dtype=dtype)
        return buf[:required].view(*tensor_shape)


class _HostRotaryEmbedding(RotaryEmbedding):
    """RotaryEmbedding whose frequencies stay on the host (the parent moves them to the current GPU)."""

    def get_emb(self, max_seq_len: int, offset: int = 0) -> torch.Tensor:
        freqs = self.get_freqs_non_repeated(max_seq_len, offset)
        if self.rotary_interleaved:
            emb = torch.stack((freqs.view(-1, 1), freqs.view(-1, 1)), dim=-1).view(freqs.shape[0], -1)
        else:
            emb = torch.cat((freqs, freqs), dim=-1)
        return emb[:, None, None, :]


class _SwiGLUFunction(torch.autograd.Function):
    """silu(a) * b of ``x = cat([a, b], -1)``, writing both input gradients into one buffer (autograd
    of Megatron's chunk + silu + (b + 0.0) * would add a pass over b and a concatenation)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        a, b = x.chunk(2, dim=-1)
        silu_a = F.silu(a)
        ctx.save_for_backward(x, silu_a)
        return silu_a * b

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x, silu_a = ctx.saved_tensors
        a, b = x.chunk(2, dim=-1)
        grad_x = torch.empty_like(x)
        grad_a, grad_b = grad_x.chunk(2, dim=-1)
        torch.mul(grad, silu_a, out=grad_b)
        grad_a.copy_(torch.ops.aten.silu_backward(grad * b, a))
        return grad_x


class SwiGLU(torch.nn.Module):
    """The SwiGLU activation of Megatron's fused ``linear_fc1`` output ([gate, up] on the last dim)."""

    def __init__(self, config: TransformerConfig | None = None):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SwiGLUFunction.apply(x)


def _tensor_parallel_size() -> int:
    if not parallel_state.model_parallel_is_initialized():
        return 1
    return parallel_state.get_tensor_model_parallel_world_size()


class _RMSNormFunction(torch.autograd.Function):
    """``torch.rms_norm`` over the last dimension of a float32 tensor, with a hand-written backward.

    Without CUDA torch computes RMSNorm by its decomposition (pow, mean, add, rsqrt, two products) and
    differentiates that (~12 passes over the activation). Here the forward takes the sum of squares in
    one ``vecdot`` pass (the same numbers) and the backward needs 7 passes for the same gradients up to
    rounding.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        rstd = torch.linalg.vecdot(x, x).unsqueeze(-1).div_(x.shape[-1]).add_(eps).rsqrt_()
        ctx.save_for_backward(x, weight, rstd)
        return torch.mul(x, rstd).mul_(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight, rstd = ctx.saved_tensors
        width = x.shape[-1]
        g = grad.reshape(-1, width)
        r = rstd.reshape(-1, 1)
        x_hat = x.reshape(-1, width) * r
        g_x_hat = g * x_hat
        grad_w = g_x_hat.sum(0) if ctx.needs_input_grad[1] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            # d/dx of w * x * r(x) with r = (mean(x^2) + eps)^-1/2:  r * (g*w - x_hat * mean(g*w*x_hat))
            c = torch.mv(g_x_hat, weight).div_(width).unsqueeze(-1)
            grad_x = torch.mul(g, weight).addcmul_(x_hat, c, value=-1).mul_(r).view(x.shape)
        return grad_x, grad_w, None


class HostRMSNorm(torch.nn.RMSNorm):
    """``torch.nn.RMSNorm`` (what Megatron's local spec builds without apex) computed by
    :class:`_RMSNormFunction` for float32. Same parameters and state dict; other cases go to torch."""

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
        return _RMSNormFunction.apply(x, self.weight, eps)


class _SwiGLUMLPFunction(torch.autograd.Function):
    """``linear_fc2(silu(x @ W_gate^T) * (x @ W_up^T))`` with ``linear_fc1.weight = [W_gate; W_up]``.

    Megatron computes ``linear_fc1`` as one GEMM whose [tokens, 2 * ffn] output interleaves gate and
    up row by row, so the activation and its backward work on strided halves (and the backward
    concatenates the two gradients again). Here gate and up are two GEMMs on the two halves of the
    same weight, every elementwise pass runs on contiguous tensors, the weight gradient is written
    into one [2 * ffn, hidden] tensor and the input gradient is one GEMM plus one accumulating GEMM.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ffn = w2.shape[1]
        x2 = x.reshape(-1, x.shape[-1])
        gate = torch.mm(x2, w1[:ffn].t())
        up = torch.mm(x2, w1[ffn:].t())
        silu_gate = F.silu(gate)
        act = silu_gate * up
        out = torch.mm(act, w2.t())
        ctx.save_for_backward(x2, w1, w2, gate, up, silu_gate, act)
        ctx.input_shape = x.shape
        return out.view(*x.shape[:-1], w2.shape[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x2, w1, w2, gate, up, silu_gate, act = ctx.saved_tensors
        ffn = w2.shape[1]
        g = grad.reshape(-1, grad.shape[-1])
        grad_w2 = torch.mm(g.t(), act) if ctx.needs_input_grad[2] else None
        grad_act = torch.mm(g, w2)
        grad_up = grad_act * silu_gate
        grad_gate = grad_act.mul_(up)  # reuses grad_act's storage: d(silu(gate)) = grad_act * up
        torch.ops.aten.silu_backward.grad_input(grad_gate, gate, grad_input=grad_gate)
        grad_w1 = None
        if ctx.needs_input_grad[1]:
            grad_w1 = torch.empty_like(w1)
            torch.mm(grad_gate.t(), x2, out=grad_w1[:ffn])
            torch.mm(grad_up.t(), x2, out=grad_w1[ffn:])
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.mm(grad_gate, w1[:ffn]).addmm_(grad_up, w1[ffn:]).view(ctx.input_shape)
        return grad_x, grad_w1, grad_w2


class HostMLP(MLP):
    """Megatron's MLP whose SwiGLU feed-forward runs as :class:`_SwiGLUMLPFunction` on the weights of
    its own ``linear_fc1`` / ``linear_fc2`` (same parameters, state dict and initialisation).

    Only the plain float32 case (one tensor-parallel rank, no biases, no sequence parallelism, SiLU
    gate without clamp or offset, no per-token scale) takes this path; anything else is Megatron's.
    """

    _host_path = False

    def _init_host_path(self) -> None:
        config = self.config
        self._host_path = (
            _tensor_parallel_size() == 1
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
        out = _SwiGLUMLPFunction.apply(hidden_states, self.linear_fc1.weight, self.linear_fc2.weight)
        return out, None


def _rope_into(out: torch.Tensor, t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """``out = t * cos + rotate_half(t) * sin`` with ``rotate_half(t) = cat(-t2, t1)``, written into
    ``out`` without the concatenation."""
    half = t.shape[-1] // 2
    torch.mul(t, cos, out=out)
    out[..., :half].addcmul_(t[..., half:], sin[..., :half], value=-1)
    out[..., half:].addcmul_(t[..., :half], sin[..., half:])


def _rope_backward_into(out: torch.Tensor, g: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """The transpose of :func:`_rope_into`: ``out = g * cos + rotate_half^T(g * sin)``."""
    half = g.shape[-1] // 2
    torch.mul(g, cos, out=out)
    out[..., :half].addcmul_(g[..., half:], sin[..., half:])
    out[..., half:].addcmul_(g[..., :half], sin[..., :half], value=-1)


class _QKVRopeFunction(torch.autograd.Function):
    """Megatron's split of the fused QKV projection ``[s, b, groups, (q_per_group + 2) * dim]`` into
    query [s, b, heads, dim], key and value [s, b, groups, dim], with RoPE applied to query and key.

    The outputs have Megatron's shapes but batch-first memory (query as [b, s, heads, dim], key and
    value as [b, groups, s, dim]), the layout in which the CPU flash-attention kernel reads them with
    the fewest cache misses (as the HF Llama attention hands them over). The backward writes the three
    gradients straight into one buffer in the projection's layout (autograd of split + rotate_half
    would concatenate three times per tensor).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, mixed: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, q_per_group: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s, b, groups, width = mixed.shape
        dim = width // (q_per_group + 2)
        qd = q_per_group * dim
        query = mixed.new_empty(b, s, groups, q_per_group, dim).transpose(0, 1)
        key = mixed.new_empty(b, groups, s, dim).permute(2, 0, 1, 3)
        value = mixed.new_empty(b, groups, s, dim).permute(2, 0, 1, 3)
        q_in = mixed[..., :qd].unflatten(-1, (q_per_group, dim))  # [s, b, groups, q_per_group, dim]
        _rope_into(query, q_in, cos.unsqueeze(-2), sin.unsqueeze(-2))
        _rope_into(key, mixed[..., qd : qd + dim], cos, sin)
        value.copy_(mixed[..., qd + dim :])
        ctx.save_for_backward(cos, sin)
        ctx.q_per_group = q_per_group
        return query.flatten(2, 3), key, value

    @staticmethod
    def backward(ctx, grad_query, grad_key, grad_value):  # type: ignore[override]
        cos, sin = ctx.saved_tensors
        q_per_group = ctx.q_per_group
        s, b, heads, dim = grad_query.shape
        groups = heads // q_per_group
        qd = q_per_group * dim
        grad = grad_query.new_empty(s, b, groups, qd + 2 * dim)
        _rope_backward_into(
            grad[..., :qd].unflatten(-1, (q_per_group, dim)),
            grad_query.reshape(s, b, groups, q_per_group, dim),
            cos.unsqueeze(-2),
            sin.unsqueeze(-2),
        )
        _rope_backward_into(grad[..., qd : qd + dim], grad_key, cos, sin)
        grad[..., qd + dim :].copy_(grad_value)
        return grad, None, None, None


class HostSelfAttention(SelfAttention):
    """Megatron's SelfAttention whose plain float32 training/scoring forward (causal, no mask, RoPE on
    every channel, one tensor-parallel rank, no biases) projects with ``F.linear`` on its own weights,
    splits and rotates with :class:`_QKVRopeFunction` and attends with :class:`SDPAttention`: the same
    computation as Megatron's forward without its copies. Any other call is Megatron's forward.
    """

    _host_path = False

    def _init_host_path(self) -> None:
        from megatron.core.transformer.attention import _yarn_get_concentration_factor_from_config

        config = self.config
        self._host_path = (
            _tensor_parallel_size() == 1
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
        query, key, value = _QKVRopeFunction.apply(mixed, cos, sin, q_per_group)
        context = self.core_attention(query, key, value, None, attn_mask_type=self.attn_mask_type)
        return F.linear(context, self.linear_proj.weight), None


_HOST_CLASSES: dict[type, type] = {torch.nn.RMSNorm: HostRMSNorm, MLP: HostMLP, SelfAttention: HostSelfAttention}


def _use_host_modules(model: torch.nn.Module) -> None:
    """Turn the RMSNorm, MLP and SelfAttention modules of a freshly built local-spec model into their
    Host* subclasses. Only the class changes (the subclasses add no parameters, buffers or
    submodules), so weights, state dict and initialisation stay Megatron's; building them through the
    layer spec instead would make Megatron's TransformerLayer warn about an unknown MLP type."""
    for module in model.modules():
        host = _HOST_CLASSES.get(type(module))
        if host is not None:
            module.__class__ = host
            if hasattr(module, "_init_host_path"):
                module._init_host_path()


class _LMHeadCrossEntropyFunction(torch.autograd.Function):
    """Per-token cross-entropy [b, s] of the output layer ``hidden [s, b, h] @ weight^T`` against
    ``labels`` [b, s] (the vocabulary whole on this rank), with the logits never leaving this function.

    Forward: logits, log-softmax, the label's negative log-probability; the softmax is kept (in the
    logits' storage) for the backward, which scales it by the incoming per-token gradient in place and
    subtracts that gradient at the labels: one pass over the [tokens, vocab] tensor where autograd of
    ``F.cross_entropy`` zero-fills a one-hot buffer and runs a separate log-softmax backward. The
    softmax is consumed by the backward, so a second backward through the same graph raises.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, for_backward: bool
    ) -> torch.Tensor:
        s, b, width = hidden.shape
        h2 = hidden.reshape(s * b, width)
        target = labels.t().reshape(s * b, 1)
        logits = torch.mm(h2, weight.t())
        log_probs = torch.log_softmax(logits, -1)
        loss = log_probs.gather(1, target).neg_()
        if for_backward:  # (scoring under no_grad skips the softmax)
            probs = torch.exp(log_probs, out=logits)
            ctx.save_for_backward(h2, weight, target, probs)
            ctx.hidden_shape = hidden.shape
            ctx.consumed = False
        return loss.view(s, b).t().contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        if ctx.consumed:
            raise RuntimeError("the fused LM-head cross-entropy supports one backward pass per forward")
        ctx.consumed = True
        h2, weight, target, probs = ctx.saved_tensors
        g = grad.t().reshape(-1, 1)
        grad_logits = probs.mul_(g).scatter_add_(1, target, g.neg())  # softmax * g - onehot * g
        grad_hidden = torch.mm(grad_logits, weight).view(ctx.hidden_shape) if ctx.needs_input_grad[0] else None
        grad_weight = torch.mm(grad_logits.t(), h2) if ctx.needs_input_grad[1] else None
        return grad_hidden, grad_weight, None, None


class LlamaGPTModel(GPTModel):
    """GPTModel whose per-token loss, with the whole vocabulary on one rank (tensor_parallel=1), is
    torch's fused log-softmax + NLL on the [s, b, vocab] logits: the same numbers as Megatron's
    vocab-parallel cross-entropy with fewer passes over the largest activation. On a host without
    CUDA (local spec) the output layer and that loss run together as :class:`_LMHeadCrossEntropyFunction`
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
            or _tensor_parallel_size() > 1
            or self.config.cross_entropy_loss_fusion
            or has_config_logger_enabled(self.config)
            or hidden_states.dtype != torch.float32
            or weight is None
            or weight.dtype != torch.float32
            or labels.shape != (hidden_states.shape[1], hidden_states.shape[0])
        ):
            return super()._postprocess(hidden_states, *args, **kwargs)
        for_backward = torch.is_grad_enabled() and (hidden_states.requires_grad or weight.requires_grad)
        return _LMHeadCrossEntropyFunction.apply(hidden_states, weight, labels, for_backward)


def _rope_without_pass_through_copy() -> None:
    """Make Megatron's unfused RoPE skip ``cat((t, t_pass))`` when nothing passes through.

    With rotary_percent=1.0 (Llama) ``t_pass`` is empty and the concatenation only copies q and k (and
    its backward copies their gradients); without TE's fused RoPE that is ~4% of a CPU training step.
    The result is the same tensor values; every other case goes to Megatron's function.
    """
    from megatron.core.models.common.embeddings import rope_utils

    original = rope_utils._apply_rotary_pos_emb_bshd
    if getattr(original, "_rhocluster", False):
        return

    def apply(t, freqs, rotary_interleaved=False, multi_latent_attention=False, mscale=1.0):
        if multi_latent_attention or freqs.shape[-1] != t.shape[-1]:
            return original(t, freqs, rotary_interleaved, multi_latent_attention, mscale)
        cos_ = (torch.cos(freqs) * mscale).to(t.dtype)
        sin_ = (torch.sin(freqs) * mscale).to(t.dtype)
        return (t * cos_) + (rope_utils._rotate_half(t, rotary_interleaved) * sin_)

    apply._rhocluster = True  # type: ignore[attr-defined]
    apply.megatron_original = original  # type: ignore[attr-defined]  # for the tests
    rope_utils._apply_rotary_pos_emb_bshd = apply


_rope_without_pass_through_copy()


def _seed_all(seed: int) -> None:
    """Seed the host RNG (used by CPU initialisation) and Megatron's model-parallel RNG tracker."""
    torch.manual_seed(seed)
    # Without CUDA the regular tracker cannot snapshot RNG states (torch.cuda.get_rng_state raises);
    # the "inference" tracker makes fork() a no-op, which is exact because the model has no dropout.
    # force_reset replaces a regular tracker that other code may have created lazily.
    host = not torch.cuda.is_available()
    model_parallel_cuda_manual_seed(seed, inference_rng_tracker=host, force_reset_rng=host)


def init_distributed(seed: int, tensor_parallel: int = 1, pipeline_parallel: int = 1) -> torch.device:
    """Initialise torch.distributed, Megatron model parallelism and RNGs; return this rank's device.

    Idempotent: later calls re-seed and check that the parallel sizes did not change. Under torchrun
    (RANK and WORLD_SIZE set) the env:// rendezvous is used, otherwise a one-process group on 127.0.0.1.
    """
    global _SEED
    cuda = torch.cuda.is_available()
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        backend = "nccl" if cuda else "gloo"
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            dist.init_process_group(backend=backend, init_method="env://")
        else:
            # Port 0 lets the OS pick a free port atomically (no probe-then-bind race).
            store = dist.TCPStore("127.0.0.1", 0, world_size=1, is_master=True)
            dist.init_process_group(backend=backend, store=store, rank=0, world_size=1)
    if parallel_state.model_parallel_is_initialized():
        current = (
            parallel_state.get_tensor_model_parallel_world_size(),
            parallel_state.get_pipeline_model_parallel_world_size(),
        )
        if current != (tensor_parallel, pipeline_parallel):
            raise ValueError(
                f"model parallelism already initialised with (tp, pp)={current}, "
                f"requested ({tensor_parallel}, {pipeline_parallel})"
            )
    else:
        parallel_state.initialize_model_parallel(
            tensor_model_parallel_size=tensor_parallel, pipeline_model_parallel_size=pipeline_parallel
        )
    if not cuda and not isinstance(parallel_state._GLOBAL_MEMORY_BUFFER, _HostMemoryBuffer):
        parallel_state._GLOBAL_MEMORY_BUFFER = _HostMemoryBuffer()
    _seed_all(seed)
    _SEED = seed
    return device


def _transformer_engine_available() -> bool:
    try:
        import transformer_engine  # noqa: F401
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_with_transformer_engine_spec  # noqa: F401
    except ImportError:
        return False
    return True


def transformer_config(
    shape: LlamaShape,
    *,
    params_dtype: torch.dtype = torch.float32,
    host: bool = True,
    local_modules: bool = True,
    recompute: bool = False,
) -> TransformerConfig:
    """Megatron's TransformerConfig for the Llama architecture of ``shape``.

    host: initialise on the CPU; local_modules: the activation comes from the layer spec (our
    :class:`SwiGLU`); recompute: full activation recomputation of every layer (one layer per
    checkpointed chunk), trading a second forward pass for activation memory.
    """
    recompute_kwargs: dict[str, Any] = (
        {"recompute_granularity": "full", "recompute_method": "uniform", "recompute_num_layers": 1} if recompute else {}
    )
    stages = parallel_state.get_pipeline_model_parallel_world_size() if parallel_state.model_parallel_is_initialized() else 1
    # Megatron builds num_layers / stages layers on each pipeline stage; activations pass between
    # stages in the parameters' dtype.
    pipeline_kwargs: dict[str, Any] = (
        {"pipeline_model_parallel_size": stages, "pipeline_dtype": params_dtype} if stages > 1 else {}
    )
    return TransformerConfig(
        num_layers=shape.num_layers,
        hidden_size=shape.hidden_size,
        ffn_hidden_size=shape.ffn_hidden_size,
        num_attention_heads=shape.num_attention_heads,
        num_query_groups=shape.num_query_groups,
        kv_channels=shape.head_dim,
        normalization="RMSNorm",
        layernorm_epsilon=shape.norm_eps,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        params_dtype=params_dtype,
        bf16=params_dtype == torch.bfloat16,
        fp16=params_dtype == torch.float16,
        use_cpu_initialization=host,
        # Fused kernels off: they need apex or jit warm-up and are not what we validated; TE layers
        # still use their own fused kernels.
        bias_activation_fusion=False,
        bias_dropout_fusion=False,
        masked_softmax_fusion=False,
        apply_rope_fusion=False,
        persist_layer_norm=False,
        gradient_accumulation_fusion=False,
        cross_entropy_loss_fusion=False,
        use_te_activation_func=local_modules,
        **recompute_kwargs,
        **pipeline_kwargs,
    )


def build_gpt_model(
    shape: LlamaShape,
    *,
    params_dtype: torch.dtype = torch.float32,
    transformer_engine: bool | None = None,
    recompute: bool = False,
    sdpa: bool = True,
) -> GPTModel:
    """Build a Llama-architecture GPTModel on this rank's device, initialised from the seed given to
    :func:`init_distributed` (same seed, same weights).

    transformer_engine: True forces the TE layer spec, False the local spec, None picks TE when it is
    importable and CUDA is available. The local spec computes attention with :class:`SDPAttention` and
    the MLP activation with :class:`SwiGLU`; on a host without CUDA its RMSNorms, MLPs and
    self-attentions also become :class:`HostRMSNorm`, :class:`HostMLP` and :class:`HostSelfAttention`
    and the output layer + loss one :class:`_LMHeadCrossEntropyFunction` (same parameters and state
    dict; each checked against the stock module in tests/test_model.py). ``sdpa=False`` keeps
    Megatron's own unfused modules throughout.
    recompute: full activation recomputation (GPU only; on a host without CUDA Megatron's checkpointing
    cannot save RNG states, so it is switched off with a warning; results are identical, only memory
    use differs).
    """
    if _SEED is None:
        raise RuntimeError("call init_distributed() before build_gpt_model()")
    cuda = torch.cuda.is_available()
    if transformer_engine is None:
        use_te = cuda and _transformer_engine_available()
    elif transformer_engine:
        if not cuda:
            raise ValueError("transformer_engine=True needs CUDA")
        if not _transformer_engine_available():
            raise ImportError("transformer_engine=True but transformer_engine is not importable")
        use_te = True
    else:
        use_te = False
    if recompute and not cuda:
        warnings.warn("recompute=True ignored: Megatron activation recomputation needs CUDA RNG state", stacklevel=2)
        recompute = False
    if params_dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"unsupported params_dtype {params_dtype}")

    config = transformer_config(
        shape, params_dtype=params_dtype, host=not cuda, local_modules=not use_te and sdpa, recompute=recompute
    )
    if use_te:
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_with_transformer_engine_spec

        layer_spec = get_gpt_layer_with_transformer_engine_spec()
    else:
        layer_spec = get_gpt_layer_local_spec(normalization="RMSNorm")
        if sdpa:
            layer_spec.submodules.self_attention.submodules.core_attention = SDPAttention
            layer_spec.submodules.mlp.submodules.activation_func = SwiGLU

    _seed_all(_SEED)  # building is deterministic no matter what consumed the RNGs since init
    model = LlamaGPTModel(
        config=config,
        transformer_layer_spec=layer_spec,
        vocab_size=shape.vocab_size,
        max_sequence_length=shape.max_position_embeddings,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        share_embeddings_and_output_weights=False,
        position_embedding_type="rope",
        rotary_percent=1.0,
        rotary_base=shape.rope_theta,
    )
    if not cuda:
        model.rotary_pos_emb = _HostRotaryEmbedding(
            kv_channels=shape.head_dim,
            rotary_percent=1.0,
            rotary_interleaved=config.rotary_interleaved,
            rotary_base=shape.rope_theta,
            use_cpu_initialization=True,
        )
    if not cuda and not use_te and sdpa:
        _use_host_modules(model)
        model._host_loss = True
    setattr(model, _TE_ATTR, use_te)
    setattr(model, _SDPA_ATTR, not use_te and sdpa)
    return model


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The GPTModel inside wrappers such as Megatron's DistributedDataParallel."""
    while isinstance(getattr(model, "module", None), torch.nn.Module):
        model = model.module
    return model


def uses_transformer_engine(model: torch.nn.Module) -> bool:
    """Whether ``model`` (or the GPTModel it wraps) was built with the Transformer Engine layer spec."""
    model = _unwrap(model)
    flag = getattr(model, _TE_ATTR, None)
    if flag is None:
        flag = any(type(m).__name__.startswith("TE") for m in model.modules())
    return bool(flag)


def causal_attention_mask(seq_len: int, device: torch.device | str) -> torch.Tensor:
    """Boolean ``[1, 1, s, s]`` mask, True where attention is blocked (future positions)."""
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).triu(1)[None, None]


def lm_forward(
    model: torch.nn.Module, tokens: torch.LongTensor, labels: torch.LongTensor | None = None
) -> torch.Tensor:
    """Run ``model`` (a GPTModel, possibly DDP-wrapped) on ``tokens`` [b, s] with positions 0..s-1 and
    causal attention.

    Returns the per-token cross-entropy float32 [b, s] when ``labels`` (the token to predict at each
    position) is given, else float32 logits [b, s, vocab].
    """
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be [batch, seq], got shape {tuple(tokens.shape)}")
    if labels is not None and labels.shape != tokens.shape:
        raise ValueError(f"labels shape {tuple(labels.shape)} != tokens shape {tuple(tokens.shape)}")
    if not getattr(_unwrap(model), "post_process", True):
        raise ValueError("lm_forward needs the whole model; a pipeline stage runs stage_forward")
    out = _gpt_call(model, tokens, labels)
    if labels is None and _tensor_parallel_size() > 1:
        # Under tensor parallelism each rank holds a slice of the vocabulary.
        from megatron.core.tensor_parallel import gather_from_tensor_model_parallel_region

        out = gather_from_tensor_model_parallel_region(out)
    return out.float()


def _gpt_call(model: torch.nn.Module, tokens: torch.LongTensor, labels: torch.LongTensor | None) -> torch.Tensor:
    """``model``'s forward on ``tokens`` [b, s] with positions 0..s-1 and causal attention."""
    b, s = tokens.shape
    inner = _unwrap(model)
    max_len = getattr(inner, "max_sequence_length", None)
    if max_len is not None and s > max_len:
        raise ValueError(f"sequence length {s} exceeds the model's {max_len} positions")
    position_ids = torch.arange(s, device=tokens.device).unsqueeze(0).expand(b, s)
    # TE and SDPAttention apply the causal mask themselves (fused kernels); Megatron's own local
    # attention needs an explicit mask because its default one is created with device="cuda".
    implicit = uses_transformer_engine(model) or bool(getattr(inner, _SDPA_ATTR, False))
    mask = None if implicit else causal_attention_mask(s, tokens.device)
    return model(input_ids=tokens, position_ids=position_ids, attention_mask=mask, labels=labels)


def stage_forward(
    model: torch.nn.Module,
    tokens: torch.LongTensor,
    labels: torch.LongTensor,
    input_tensor: torch.Tensor | None = None,
) -> torch.Tensor:
    """One pipeline stage's forward pass on a micro-batch of ``tokens`` [b, s].

    The first stage embeds ``tokens``; later stages start from ``input_tensor``, the previous stage's
    hidden states [s, b, hidden]. The last stage returns the per-token cross-entropy against ``labels``
    (float32 [b, s], as :func:`lm_forward`), the others their hidden states for the next stage. With one
    stage this is ``lm_forward(model, tokens, labels)``.
    """
    inner = _unwrap(model)
    if not inner.pre_process:
        if input_tensor is None:
            raise ValueError("a pipeline stage after the first needs the previous stage's hidden states")
        inner.set_input_tensor(input_tensor)
    if inner.post_process:
        return lm_forward(model, tokens, labels)
    return _gpt_call(model, tokens, None)
