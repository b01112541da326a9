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


# Rho-1's continued pretraining of TinyLlama-1.1B (arXiv 2404.07965; reference/numbers.md): 15B tokens
# seen, ~1M-token batches of 2048-token sequences, lr 8e-5 peak with cosine decay. A window holds
# seq_len + 1 tokens, so each of the 512 windows of a step gives 2048 prediction targets.
RHO1_SEQ_LEN = 2048
RHO1_GLOBAL_BATCH = 512  # 512 x 2048 = 1,048,576 target tokens per step
RHO1_TOKENS = 15_000_000_000


def rho1_cpt_config(**overrides) -> TrainConfig:
    """Rho-1's CPT settings as a TrainConfig (bf16, H100 peak for MFU); ``overrides`` replace fields."""
    defaults = dict(
        steps=round(RHO1_TOKENS / (RHO1_GLOBAL_BATCH * RHO1_SEQ_LEN)),  # 14,305 steps
        global_batch=RHO1_GLOBAL_BATCH,
        micro_batch=4,
        lr=8e-5,
        min_lr=8e-6,  # floor and warm-up are not in numbers.md: 10% of peak and ~0.5% of steps, our choice
        warmup_steps=70,
        weight_decay=0.1,
        tokens="slm",
        budget=0.6,
        checkpoint_every=500,
        log_every=10,
        bf16=True,
        recompute=False,
        peak_tflops=989.0,
    )
    return TrainConfig.from_dict({**defaults, **overrides})
