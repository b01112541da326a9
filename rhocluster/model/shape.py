"""Architecture description of a Llama-style decoder, shared by the Megatron model and HF conversion."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class LlamaShape:
    """Hyper-parameters that fix the tensor shapes of a Llama-2 architecture (RMSNorm, SwiGLU, RoPE,
    GQA, no biases, untied input/output embeddings)."""

    vocab_size: int
    hidden_size: int
    ffn_hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_query_groups: int
    max_position_embeddings: int
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "ffn_hidden_size",
            "num_layers",
            "num_attention_heads",
            "num_query_groups",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"LlamaShape.{name} must be a positive int, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_query_groups:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not divisible by "
                f"num_query_groups {self.num_query_groups}"
            )
        if self.rope_theta <= 0 or self.norm_eps <= 0:
            raise ValueError(f"rope_theta and norm_eps must be positive, got {self.rope_theta}, {self.norm_eps}")
        # Normalise so that shapes read from JSON (ints) compare equal to literals (floats).
        object.__setattr__(self, "rope_theta", float(self.rope_theta))
        object.__setattr__(self, "norm_eps", float(self.norm_eps))

    @property
    def head_dim(self) -> int:
        """Channels per attention head."""
        return self.hidden_size // self.num_attention_heads

    def num_parameters(self) -> int:
        """Exact parameter count: untied embedding and output matrices, two RMSNorms per layer plus the
        final one, no biases."""
        h, kv = self.hidden_size, self.num_query_groups * self.head_dim
        attention = h * h + 2 * h * kv + h * h  # q, k, v, o
        mlp = 3 * h * self.ffn_hidden_size  # gate, up, down
        per_layer = attention + mlp + 2 * h
        return 2 * self.vocab_size * h + self.num_layers * per_layer + h

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict; inverse of :meth:`from_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LlamaShape:
        """Build from :meth:`to_dict` output; unknown or missing keys raise ValueError naming them."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"unknown LlamaShape key(s): {', '.join(unknown)}")
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [n for n in required if n not in d]
        if missing:
            raise ValueError(f"missing LlamaShape key(s): {', '.join(missing)}")
        return cls(**d)

    def to_hf_config(self) -> dict[str, Any]:
        """Keyword arguments for ``transformers.LlamaConfig``; token ids are left to the caller."""
        return {
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.ffn_hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_query_groups,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.norm_eps,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": False,
            "mlp_bias": False,
        }

    @classmethod
    def from_hf_config(cls, cfg: dict[str, Any]) -> LlamaShape:
        """Read a HF Llama ``config.json`` dict. Features the Megatron model does not reproduce (biases,
        tied embeddings, RoPE scaling, other activations) raise ValueError instead of converting wrongly."""
        model_type = cfg.get("model_type", "llama")
        if model_type != "llama":
            raise ValueError(f"expected a llama config, got model_type={model_type!r}")
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
            if key not in cfg:
                raise ValueError(f"HF config lacks {key!r}")
        for key, ok in (
            ("hidden_act", "silu"),
            ("tie_word_embeddings", False),
            ("attention_bias", False),
            ("mlp_bias", False),
        ):
            if cfg.get(key, ok) != ok:
                raise ValueError(f"unsupported HF config: {key}={cfg[key]!r} (need {ok!r})")
        # transformers 5 nests RoPE settings in rope_parameters; older configs keep rope_theta and
        # rope_scaling at the top level.
        rope = cfg.get("rope_parameters") or {}
        rope_type = rope.get("rope_type", "default")
        if rope_type != "default" or cfg.get("rope_scaling"):
            raise ValueError(f"unsupported RoPE scaling: {rope or cfg.get('rope_scaling')!r}")
        rope_theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
        heads = cfg["num_attention_heads"]
        shape = cls(
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            ffn_hidden_size=cfg["intermediate_size"],
            num_layers=cfg["num_hidden_layers"],
            num_attention_heads=heads,
            num_query_groups=cfg.get("num_key_value_heads") or heads,
            max_position_embeddings=cfg.get("max_position_embeddings", 2048),
            rope_theta=rope_theta,
            norm_eps=cfg.get("rms_norm_eps", 1e-6),
        )
        head_dim = cfg.get("head_dim")
        if head_dim is not None and head_dim != shape.head_dim:
            raise ValueError(f"unsupported head_dim {head_dim} != hidden_size/num_attention_heads {shape.head_dim}")
        return shape


TINYLLAMA = LlamaShape(
    vocab_size=32000,
    hidden_size=2048,
    ffn_hidden_size=5632,
    num_layers=22,
    num_attention_heads=32,
    num_query_groups=4,
    max_position_embeddings=2048,
    rope_theta=10000.0,
    norm_eps=1e-5,
)
