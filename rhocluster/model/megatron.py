"""Megatron-core GPTModel with the Llama-2 architecture: one code path for CPU (gloo) and GPU (nccl).

This module builds the model and runs it: :func:`init_distributed`, :func:`transformer_config`,
:func:`build_gpt_model`, :func:`lm_forward` and :func:`stage_forward`. With CUDA the model is
Megatron's / TE's own. On a host without CUDA it is the same model (same parameters, state dict and
initialisation) with Megatron's reference modules swapped for the faster ones of
:mod:`rhocluster.model.host_modules` (whose hand-written backward passes live in
:mod:`rhocluster.model.kernels`), and with megatron-core's CUDA assumptions worked around by the
patches listed in :mod:`rhocluster.model.patches`, the one place where Megatron is patched.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from rhocluster.model import mcore_import  # noqa: F401  (first: megatron.core without import-time compiles)
from megatron.core import parallel_state
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed
from megatron.core.transformer import TransformerConfig

from rhocluster.model import patches
from rhocluster.model.host_modules import (
    HostMLP,
    HostRMSNorm,
    HostSelfAttention,
    LlamaGPTModel,
    SDPAttention,
    SwiGLU,
    tensor_parallel_size,
)
from rhocluster.model.shape import LlamaShape

__all__ = [
    "HostMLP",
    "HostRMSNorm",
    "HostSelfAttention",
    "LlamaGPTModel",
    "SDPAttention",
    "SwiGLU",
    "build_gpt_model",
    "causal_attention_mask",
    "init_distributed",
    "lm_forward",
    "stage_forward",
    "transformer_config",
    "uses_transformer_engine",
]

_SEED: int | None = None
_TE_ATTR = "rhocluster_transformer_engine"
_SDPA_ATTR = "rhocluster_sdpa_attention"

patches.rope_without_pass_through_copy()  # patch 1 of rhocluster.model.patches, for every model


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
    if not cuda:
        patches.use_host_memory_buffer()
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
    and the output layer + loss one :class:`~rhocluster.model.kernels.LMHeadCrossEntropyFunction`
    (same parameters and state dict; each checked against the stock module in tests/test_model.py).
    ``sdpa=False`` keeps Megatron's own unfused modules throughout.
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
        patches.use_host_rotary_embedding(model, shape.head_dim, shape.rope_theta)
    if not cuda and not use_te and sdpa:
        patches.use_host_modules(model)
        model._host_loss = True  # LlamaGPTModel's output layer + loss as LMHeadCrossEntropyFunction
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
    if labels is None and tensor_parallel_size() > 1:
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
