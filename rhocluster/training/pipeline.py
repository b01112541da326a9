"""The forward/backward schedule of one training step over the micro-batches of a rank, for any number
of pipeline stages (one stage: forward then backward of each micro-batch in turn).

Written here rather than taken from megatron-core because 0.16.1's schedules
(``megatron.core.pipeline_parallel.schedules``) allocate their token counters and point-to-point shape
buffers on ``"cuda"``, so they cannot run on the CPU path (tests, tiny workflow), and because they call
the loss per micro-batch inside the schedule while Rho-1's SLM ranks the tokens of the whole global
batch, which takes a forward-only pass first (:meth:`PipelineSchedule.forward_only`). The order is Megatron's
non-interleaved 1F1B: stage ``p`` of ``P`` runs ``min(P - p - 1, M)`` warm-up forwards, then alternates
one forward and one backward, then drains the remaining backwards, so at most ``P - p`` micro-batches'
activations are alive on it. Activations and their gradients move between neighbouring stages with
``torch.distributed.batch_isend_irecv`` (gloo on CPU, nccl on GPU), as Megatron's p2p layer does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rhocluster.model.megatron import stage_forward

# loss_fn(i, per_token_loss [b, s] of micro-batch i) -> the scalar whose gradient this step accumulates
LossFn = Callable[[int, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Stage:
    """Where this rank sits in its pipeline."""

    index: int
    count: int
    prev_rank: int | None  # global rank of the previous stage (None on the first)
    next_rank: int | None  # global rank of the next stage (None on the last)

    @property
    def first(self) -> bool:
        return self.index == 0

    @property
    def last(self) -> bool:
        return self.index == self.count - 1

    @classmethod
    def current(cls) -> "Stage":
        """This rank's stage from Megatron's parallel state."""
        from megatron.core import parallel_state as ps

        count = ps.get_pipeline_model_parallel_world_size()
        index = ps.get_pipeline_model_parallel_rank()
        return cls(
            index,
            count,
            ps.get_pipeline_model_parallel_prev_rank() if index > 0 else None,
            ps.get_pipeline_model_parallel_next_rank() if index < count - 1 else None,
        )


def _exchange(sends: Sequence[tuple[torch.Tensor, int]], recvs: Sequence[tuple[torch.Tensor, int]]) -> None:
    """Post every send and receive at once and wait for all (no ordering deadlock between neighbours)."""
    ops = [dist.P2POp(dist.isend, t, peer) for t, peer in sends]
    ops += [dist.P2POp(dist.irecv, t, peer) for t, peer in recvs]
    if ops:
        for request in dist.batch_isend_irecv(ops):
            request.wait()


class PipelineSchedule:
    """Runs micro-batches ``(tokens, labels)`` through this rank's stage of ``model``.

    ``hidden_shape`` is the [s, b, hidden] shape of the activations between stages and ``dtype`` their
    dtype (the parameters'); every micro-batch of a step has the same shape.
    """

    def __init__(self, model: torch.nn.Module, stage: Stage, hidden_shape: tuple[int, ...], dtype, device):
        self.model = model
        self.stage = stage
        self.hidden_shape = tuple(hidden_shape)
        self.dtype = dtype
        self.device = device

    def _buffer(self) -> torch.Tensor:
        return torch.empty(self.hidden_shape, dtype=self.dtype, device=self.device)

    def _recv_forward(self) -> torch.Tensor | None:
        if self.stage.first:
            return None
        buf = self._buffer()
        _exchange([], [(buf, self.stage.prev_rank)])
        return buf.requires_grad_()

    def _forward(self, batch: tuple[torch.Tensor, torch.Tensor], input_tensor: torch.Tensor | None) -> torch.Tensor:
        tokens, labels = batch
        return stage_forward(self.model, tokens, labels, input_tensor)

    def forward_only(self, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """Per-token losses of every micro-batch without building graphs: the list on the last stage,
        empty elsewhere."""
        losses = []
        with torch.no_grad():
            for batch in batches:
                out = self._forward(batch, self._recv_forward())
                if self.stage.last:
                    losses.append(out)
                else:
                    _exchange([(out.contiguous(), self.stage.next_rank)], [])
        return losses

    def forward_backward(self, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], loss_fn: LossFn) -> None:
        """Accumulate the gradients of ``sum_i loss_fn(i, loss_i)`` into the stage's parameters
        (``loss_fn`` runs on the last stage only, once per micro-batch, in order)."""
        stage, total = self.stage, len(batches)
        warmup = min(stage.count - stage.index - 1, total)
        inputs: list[torch.Tensor | None] = []
        outputs: list[torch.Tensor] = []

        def forward(i: int, input_tensor: torch.Tensor | None) -> torch.Tensor:
            out = self._forward(batches[i], input_tensor)
            if stage.last:
                out = loss_fn(i, out)
            inputs.append(input_tensor)
            outputs.append(out)
            return out

        def backward(output_grad: torch.Tensor | None) -> torch.Tensor | None:
            input_tensor, output = inputs.pop(0), outputs.pop(0)
            torch.autograd.backward(output, grad_tensors=output_grad)
            return None if input_tensor is None else input_tensor.grad

        for i in range(warmup):
            out = forward(i, self._recv_forward())
            _exchange([(out.detach().contiguous(), stage.next_rank)], [])

        steady = total - warmup
        input_tensor = self._recv_forward() if steady else None
        for j in range(steady):
            out = forward(warmup + j, input_tensor)
            output_grad = None
            if not stage.last:  # send this activation, receive the gradient of the oldest one
                output_grad = self._buffer()
                _exchange([(out.detach().contiguous(), stage.next_rank)], [(output_grad, stage.next_rank)])
            input_grad = backward(output_grad)
            input_tensor = None
            if not stage.first:  # send the gradient back, receive the next micro-batch's input with it
                more = j < steady - 1
                if more:
                    input_tensor = self._buffer()
                _exchange([(input_grad, stage.prev_rank)], [(input_tensor, stage.prev_rank)] if more else [])
                if more:
                    input_tensor.requires_grad_()

        for _ in range(warmup):
            output_grad = self._buffer()
            _exchange([], [(output_grad, stage.next_rank)])
            input_grad = backward(output_grad)
            if not stage.first:
                _exchange([(input_grad, stage.prev_rank)], [])
