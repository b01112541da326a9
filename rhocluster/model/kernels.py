"""Autograd functions with hand-written backward for the host (CPU) fallback of the Llama layers.

Plain torch, no Megatron: each computes what a stock Megatron module computes (same numbers up to
rounding) with fewer passes over the activations than autograd of Megatron's reference code, which
was written for clarity rather than for a CPU. :mod:`rhocluster.model.host_modules` routes Megatron's
modules to them in the plain float32 case; tests/test_model.py checks each against the stock module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class SwiGLUFunction(torch.autograd.Function):
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


class RMSNormFunction(torch.autograd.Function):
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


class SwiGLUMLPFunction(torch.autograd.Function):
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


class QKVRopeFunction(torch.autograd.Function):
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


class LMHeadCrossEntropyFunction(torch.autograd.Function):
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
