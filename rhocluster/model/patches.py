"""Every place where we replace part of megatron-core (0.16.1) at run time, and why.

megatron-core assumes CUDA in places that a host without CUDA reaches, and its unfused reference
modules make more passes over the activations than a CPU can afford. Each function below is one
patch; :mod:`rhocluster.model.megatron` applies them (the first at import, the others while
initialising or building). With CUDA only the first applies, and it changes no numbers.

0. :mod:`rhocluster.model.mcore_import` (global, while megatron.core first imports): ``torch.compile``
   deferred to the first call of what it decorates. Why: decorating imports torch's compiler stack,
   ~2.2 s of every job that imports megatron.core, for kernels our models never call.
1. :func:`rope_without_pass_through_copy` (global, at import): replaces
   ``rope_utils._apply_rotary_pos_emb_bshd`` to skip an empty concatenation. Why: ~4% of a CPU step.
2. :func:`use_host_memory_buffer` (global, host only): replaces ``parallel_state._GLOBAL_MEMORY_BUFFER``
   by one that allocates on the host. Why: Megatron's allocates on ``torch.cuda.current_device()``.
3. :func:`use_host_rotary_embedding` (one model, host only): replaces the model's ``rotary_pos_emb`` by
   a subclass that keeps the frequencies on the host. Why: the parent moves them to the current GPU.
4. :func:`use_host_modules` (one model, host only): changes the class of its RMSNorm, MLP and
   SelfAttention modules to the Host* subclasses of :mod:`rhocluster.model.host_modules`. Why: speed
   on a CPU, same parameters; done after building because building them through the layer spec makes
   Megatron's TransformerLayer warn about an unknown MLP type.

Not patches, but choices made for the same reasons: the layer spec's core attention and MLP activation
are set to :class:`~rhocluster.model.host_modules.SDPAttention` and
:class:`~rhocluster.model.host_modules.SwiGLU` (Megatron's own extension point), and the RNG tracker
is Megatron's "inference" tracker on a host (``torch.cuda.get_rng_state`` raises without CUDA; see
``seed_all`` in :mod:`rhocluster.model.megatron`).
"""

from __future__ import annotations

import math

import torch
from rhocluster.model import mcore_import  # noqa: F401  (first: megatron.core without import-time compiles)
from megatron.core import parallel_state
from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
from megatron.core.utils import GlobalMemoryBuffer

from rhocluster.model.host_modules import HOST_CLASSES


def rope_without_pass_through_copy() -> None:
    """Patch 1: make Megatron's unfused RoPE skip ``cat((t, t_pass))`` when nothing passes through.

    With rotary_percent=1.0 (Llama) ``t_pass`` is empty and the concatenation only copies q and k (and
    its backward copies their gradients); without TE's fused RoPE that is ~4% of a CPU training step.
    The result is the same tensor values; every other case goes to Megatron's function. Idempotent.
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


class _HostMemoryBuffer(GlobalMemoryBuffer):
    """Megatron's attention-score scratch buffer, allocated on the host instead of the current GPU."""

    def get_tensor(self, tensor_shape, dtype, name, mem_alloc_context=None):  # type: ignore[override]
        required = math.prod(tensor_shape)
        buf = self.buffer.get((name, dtype))
        if buf is None or buf.numel() < required:
            buf = self.buffer[(name, dtype)] = torch.empty(required, dtype=dtype)
        return buf[:required].view(*tensor_shape)


def use_host_memory_buffer() -> None:
    """Patch 2: Megatron's global scratch buffer (used by its unfused attention) on the host. Idempotent;
    call after ``parallel_state.initialize_model_parallel``, which creates the CUDA one."""
    if not isinstance(parallel_state._GLOBAL_MEMORY_BUFFER, _HostMemoryBuffer):
        parallel_state._GLOBAL_MEMORY_BUFFER = _HostMemoryBuffer()


class _HostRotaryEmbedding(RotaryEmbedding):
    """RotaryEmbedding whose frequencies stay on the host (the parent moves them to the current GPU)."""

    def get_emb(self, max_seq_len: int, offset: int = 0) -> torch.Tensor:
        freqs = self.get_freqs_non_repeated(max_seq_len, offset)
        if self.rotary_interleaved:
            emb = torch.stack((freqs.view(-1, 1), freqs.view(-1, 1)), dim=-1).view(freqs.shape[0], -1)
        else:
            emb = torch.cat((freqs, freqs), dim=-1)
        return emb[:, None, None, :]


def use_host_rotary_embedding(model: torch.nn.Module, head_dim: int, rope_theta: float) -> None:
    """Patch 3: replace ``model.rotary_pos_emb`` (RoPE over every one of ``head_dim`` channels, base
    ``rope_theta``) by one that computes its frequencies on the host. It has no parameters or buffers
    in the state dict, so nothing else changes."""
    model.rotary_pos_emb = _HostRotaryEmbedding(
        kv_channels=head_dim,
        rotary_percent=1.0,
        rotary_interleaved=model.config.rotary_interleaved,
        rotary_base=rope_theta,
        use_cpu_initialization=True,
    )


def use_host_modules(model: torch.nn.Module) -> None:
    """Patch 4: turn the RMSNorm, MLP and SelfAttention modules of a freshly built local-spec model into
    their Host* subclasses. Only the class changes (the subclasses add no parameters, buffers or
    submodules), so weights, state dict and initialisation stay Megatron's; building them through the
    layer spec instead would make Megatron's TransformerLayer warn about an unknown MLP type."""
    for module in model.modules():
        host = HOST_CLASSES.get(type(module))
        if host is not None:
            module.__class__ = host
            if hasattr(module, "_init_host_path"):
                module._init_host_path()
