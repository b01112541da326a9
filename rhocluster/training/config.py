"""Training configuration: plain data, validated once, passed down."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

TOKENS = ("all", "mask", "slm")  # the variant table's `tokens:` values
# Former names of fields: a config or checkpoint using one is refused with the new name.
RENAMED = {"selection": "tokens", "slm_ratio": "budget"}

# Keys that may differ between a checkpoint and the run resuming from it: they change bookkeeping or
# memory use, not the sequence of updates.
RESUMABLE_CHANGES = frozenset({"log_every", "checkpoint_every", "peak_tflops", "recompute", "micro_batch"})


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
    tokens: str = "all"  # the row's `tokens:` all (ct), a static mask file, or live SLM ranking (rho1)
    budget: float = 0.6  # fraction of each global batch's tokens SLM keeps (selection.budget)
    group_level: int = 0  # SLM inside cluster groups at this tree level (0: one group, plain SLM)
    checkpoint_every: int = 0  # 0: only the final weights
    log_every: int = 1
    bf16: bool = False
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    recompute: bool = False
    peak_tflops: float = 1.0  # per device, for the MFU estimate (989 for H100 bf16 dense)

    def __post_init__(self) -> None:
        if self.tokens not in TOKENS:
            raise ValueError(f"training.tokens={self.tokens!r}: expected one of {TOKENS}")
        if self.steps <= 0 or self.global_batch <= 0 or self.micro_batch <= 0:
            raise ValueError("training.steps, global_batch and micro_batch must be positive")
        if not 0.0 < self.budget <= 1.0:
            raise ValueError(f"training.budget={self.budget} must be in (0, 1]")
        if self.group_level < 0 or (self.group_level and self.tokens != "slm"):
            raise ValueError(f"training.group_level={self.group_level}: needs tokens 'slm' and a level >= 1")
        if self.tensor_parallel < 1:
            raise ValueError(f"training.tensor_parallel={self.tensor_parallel} must be >= 1")
        if self.pipeline_parallel < 1:
            raise ValueError(f"training.pipeline_parallel={self.pipeline_parallel} must be >= 1")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a config mapping; an unknown key fails naming it."""
        known = {f.name for f in fields(cls)}
        renamed = sorted(set(d) & set(RENAMED))
        if renamed:
            raise ValueError(f"training.{renamed[0]} is now called training.{RENAMED[renamed[0]]}")
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training keys: {unknown}; valid keys: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def resume_mismatches(self, saved: dict) -> list[str]:
        """Fields of a checkpoint's config that differ from this one and would change the run."""
        current = self.to_dict()
        return [
            f"{k}: checkpoint {saved.get(k)!r} vs run {current[k]!r}"
            for k in sorted(current)
            if k not in RESUMABLE_CHANGES and saved.get(k, current[k]) != current[k]
        ]

    def grad_accumulation(self, data_parallel: int) -> int:
        """Micro-batches per rank per step; the global batch must split evenly."""
        per_rank, rem = divmod(self.global_batch, data_parallel * self.micro_batch)
        if rem or per_rank == 0:
            raise ValueError(
                f"global_batch {self.global_batch} is not a multiple of "
                f"micro_batch {self.micro_batch} x data-parallel size {data_parallel}"
            )
        return per_rank
