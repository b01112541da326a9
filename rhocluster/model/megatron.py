"""Megatron-core GPTModel with the Llama-2 architecture: one code path for CPU (gloo) and GPU (nccl).

megatron-core 0.16.1 assumes CUDA in three places this module works around on a host without CUDA:
the RNG tracker (``torch.cuda.get_rng_state``), the global attention-score buffer and the RoPE
frequencies (both placed on ``torch.cuda.current_device()``).
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


class LlamaGPTModel(GPTModel):
    """GPTModel whose per-token loss, with the whole vocabulary on one rank (tensor_parallel=1), is
    torch's fused log-softmax + NLL on the [s, b, vocab] logits: the same numbers as Megatron's
    vocab-parallel cross-entropy with fewer passes over the largest activation. Parameters and state
    dict are GPTModel's."""

    def compute_language_model_loss(self, labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if parallel_state.get_tensor_model_parallel_world_size() > 1 or self.config.cross_entropy_loss_fusion:
            return super().compute_language_model_loss(labels, logits)
        s, b, vocab = logits.shape
        loss = F.cross_entropy(logits.float().view(s * b, vocab), labels.t().reshape(-1), reduction="none")
        return loss.view(s, b).t().contiguous()  # [b, s], like Megatron's


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
    the MLP activation with :class:`SwiGLU` (``sdpa=False`` keeps Megatron's own unfused modules).
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
    b, s = tokens.shape
    max_len = getattr(_unwrap(model), "max_sequence_length", None)
    if max_len is not None and s > max_len:
        raise ValueError(f"sequence length {s} exceeds the model's {max_len} positions")
    position_ids = torch.arange(s, device=tokens.device).unsqueeze(0).expand(b, s)
    # TE and SDPAttention apply the causal mask themselves (fused kernels); Megatron's own local
    # attention needs an explicit mask because its default one is created with device="cuda".
    inner = _unwrap(model)
    implicit = uses_transformer_engine(model) or bool(getattr(inner, _SDPA_ATTR, False))
    mask = None if implicit else causal_attention_mask(s, tokens.device)
    out = model(input_ids=tokens, position_ids=position_ids, attention_mask=mask, labels=labels)
    return out.float()
