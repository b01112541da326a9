"""Training configuration: plain data, validated once, passed down."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

SELECTIONS = ("all", "mask", "slm")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (reference fine-tune, base pretraining or a CPT variant)."""

    steps: int
    global_batch: int  # windows per optimizer step, over all data-parallel ranks
    micro_batch: int  # windows per forward pass on one rank
    lr: float
    min_lr: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    seed: int = 0
    selection: str = "all"  # all tokens (ct), a static mask file, or dynamic SLM (rho1)
    slm_ratio: float = 0.6  # fraction of tokens kept by SLM inside each global batch
    checkpoint_every: int = 0  # 0: only the final weights
    log_every: int = 1
    bf16: bool = False
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    recompute: bool = False
    peak_tflops: float = 1.0  # per device, for the MFU estimate (989 for H100 bf16 dense)

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"training.selection={self.selection!r}: expected one of {SELECTIONS}")
        if self.steps <= 0 or self.global_batch <= 0 or self.micro_batch <= 0:
            raise ValueError("training.steps, global_batch and micro_batch must be positive")
        if not 0.0 < self.slm_ratio <= 1.0:
            raise ValueError(f"training.slm_ratio={self.slm_ratio} must be in (0, 1]")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a config mapping; an unknown key fails naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training keys: {unknown}; valid keys: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def grad_accumulation(self, data_parallel: int) -> int:
        """Micro-batches per rank per step; the global batch must split evenly."""
        per_rank, rem = divmod(self.global_batch, data_parallel * self.micro_batch)
        if rem or per_rank == 0:
            raise ValueError(
                f"global_batch {self.global_batch} is not a multiple of "
                f"micro_batch {self.micro_batch} x data-parallel size {data_parallel}"
            )
        return per_rank
