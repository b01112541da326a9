"""Convert Llama weights between Hugging Face and our Megatron-core ("mcore") checkpoint format.

python -m rhocluster.model.convert hf-to-mcore SRC DST
python -m rhocluster.model.convert mcore-to-hf SRC DST [--tokenizer DIR] [--bos-token-id N] [--eos-token-id N] [--dtype D]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from rhocluster.common.atomic import atomic_dir
from rhocluster.model.mcore_format import (
    check_tensors,
    is_extra_state,
    is_te_layout,
    load_mcore,
    mcore_tensor_shapes,
    save_mcore,
    to_layout,
)
from rhocluster.model.shape import LlamaShape

Tensor = torch.Tensor

# One-to-one renames, HF -> Megatron (local layer spec). {i} is the layer index.
_GLOBAL_NAMES = {
    "model.embed_tokens.weight": "embedding.word_embeddings.weight",
    "model.norm.weight": "decoder.final_layernorm.weight",
    "lm_head.weight": "output_layer.weight",
}
_LAYER_NAMES = {
    "model.layers.{i}.input_layernorm.weight": "decoder.layers.{i}.input_layernorm.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "decoder.layers.{i}.pre_mlp_layernorm.weight",
    "model.layers.{i}.self_attn.o_proj.weight": "decoder.layers.{i}.self_attention.linear_proj.weight",
    "model.layers.{i}.mlp.down_proj.weight": "decoder.layers.{i}.mlp.linear_fc2.weight",
}
_HF_QKV = tuple(f"model.layers.{{i}}.self_attn.{n}_proj.weight" for n in ("q", "k", "v"))
_HF_GATE_UP = ("model.layers.{i}.mlp.gate_proj.weight", "model.layers.{i}.mlp.up_proj.weight")
_MC_QKV = "decoder.layers.{i}.self_attention.linear_qkv.weight"
_MC_FC1 = "decoder.layers.{i}.mlp.linear_fc1.weight"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
)


def hf_tensor_shapes(shape: LlamaShape) -> dict[str, tuple[int, ...]]:
    """Every weight of ``LlamaForCausalLM`` for ``shape`` with its shape."""
    h, kv, f = shape.hidden_size, shape.num_query_groups * shape.head_dim, shape.ffn_hidden_size
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (shape.vocab_size, h)}
    for i in range(shape.num_layers):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "self_attn.q_proj.weight"] = (h, h)
        out[p + "self_attn.k_proj.weight"] = (kv, h)
        out[p + "self_attn.v_proj.weight"] = (kv, h)
        out[p + "self_attn.o_proj.weight"] = (h, h)
        out[p + "post_attention_layernorm.weight"] = (h,)
        out[p + "mlp.gate_proj.weight"] = (f, h)
        out[p + "mlp.up_proj.weight"] = (f, h)
        out[p + "mlp.down_proj.weight"] = (h, f)
    out["model.norm.weight"] = (h,)
    out["lm_head.weight"] = (shape.vocab_size, h)
    return out


def hf_to_mcore(
    hf_sd: Mapping[str, Tensor], shape: LlamaShape, *, transformer_engine: bool = False
) -> dict[str, Tensor]:
    """HF ``LlamaForCausalLM`` state dict -> Megatron GPTModel state dict (local layout, or TE layout
    with the norms fused into linear_qkv/linear_fc1 when ``transformer_engine``)."""
    # Old HF checkpoints store the RoPE frequencies as buffers; Megatron recomputes them.
    hf = {k: v for k, v in hf_sd.items() if not k.endswith("rotary_emb.inv_freq")}
    check_tensors(hf, hf_tensor_shapes(shape), f"HF state dict for {shape}")
    h, hd, groups = shape.hidden_size, shape.head_dim, shape.num_query_groups
    q_per_group = shape.num_attention_heads // groups
    out = {mc: hf[name] for name, mc in _GLOBAL_NAMES.items()}
    for i in range(shape.num_layers):
        for name, mc in _LAYER_NAMES.items():
            out[mc.format(i=i)] = hf[name.format(i=i)]
        q, k, v = (hf[n.format(i=i)] for n in _HF_QKV)
        # Megatron groups rows per KV head: [q heads of group g, k_g, v_g] for each g.
        qkv = torch.cat(
            [q.reshape(groups, q_per_group * hd, h), k.reshape(groups, hd, h), v.reshape(groups, hd, h)], dim=1
        )
        out[_MC_QKV.format(i=i)] = qkv.reshape(-1, h)
        gate, up = (hf[n.format(i=i)] for n in _HF_GATE_UP)
        out[_MC_FC1.format(i=i)] = torch.cat([gate, up], dim=0)
    return to_layout(out, transformer_engine=transformer_engine)


def mcore_to_hf(mc_sd: Mapping[str, Tensor], shape: LlamaShape) -> dict[str, Tensor]:
    """Megatron GPTModel state dict (either layer-spec layout) -> HF ``LlamaForCausalLM`` state dict.
    Every output tensor owns its storage, so the result can be saved with safetensors directly."""
    mc = {k: v for k, v in mc_sd.items() if not is_extra_state(k)}
    if is_te_layout(mc):
        mc = to_layout(mc, transformer_engine=False)
    check_tensors(mc, mcore_tensor_shapes(shape), f"mcore state dict for {shape}")
    h, hd, groups = shape.hidden_size, shape.head_dim, shape.num_query_groups
    q_per_group = shape.num_attention_heads // groups
    f = shape.ffn_hidden_size
    out = {name: mc[m] for name, m in _GLOBAL_NAMES.items()}
    for i in range(shape.num_layers):
        for name, m in _LAYER_NAMES.items():
            out[name.format(i=i)] = mc[m.format(i=i)]
        qkv = mc[_MC_QKV.format(i=i)].reshape(groups, (q_per_group + 2) * hd, h)
        q, k, v = torch.split(qkv, [q_per_group * hd, hd, hd], dim=1)
        for name, part in zip(_HF_QKV, (q, k, v)):
            out[name.format(i=i)] = part.reshape(-1, h).clone()
        fc1 = mc[_MC_FC1.format(i=i)]
        out[_HF_GATE_UP[0].format(i=i)] = fc1[:f].clone()
        out[_HF_GATE_UP[1].format(i=i)] = fc1[f:].clone()
    return out


def load_hf(src_dir: Path) -> tuple[dict[str, Tensor], LlamaShape]:
    """Read a HF Llama directory: ``config.json`` plus ``model.safetensors`` (optionally sharded via
    ``model.safetensors.index.json``) or ``pytorch_model.bin`` (optionally sharded)."""
    src_dir = Path(src_dir)
    config_path = src_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"HF config not found: {config_path}")
    shape = LlamaShape.from_hf_config(json.loads(config_path.read_text()))

    def shards(index_name: str) -> list[Path]:
        weight_map = json.loads((src_dir / index_name).read_text())["weight_map"]
        files = [src_dir / name for name in sorted(set(weight_map.values()))]
        for path in files:
            if not path.is_file():
                raise FileNotFoundError(f"shard listed in {src_dir / index_name} not found: {path}")
        return files

    state_dict: dict[str, Tensor] = {}
    if (src_dir / "model.safetensors.index.json").is_file():
        for path in shards("model.safetensors.index.json"):
            state_dict.update(load_file(str(path), device="cpu"))
    elif (src_dir / "model.safetensors").is_file():
        state_dict = load_file(str(src_dir / "model.safetensors"), device="cpu")
    elif (src_dir / "pytorch_model.bin.index.json").is_file():
        for path in shards("pytorch_model.bin.index.json"):
            state_dict.update(torch.load(path, map_location="cpu", weights_only=True))
    elif (src_dir / "pytorch_model.bin").is_file():
        state_dict = torch.load(src_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(
            f"no HF weights in {src_dir}: expected model.safetensors[.index.json] or pytorch_model.bin[.index.json]"
        )
    return state_dict, shape


def export_hf(
    mc_sd: Mapping[str, Tensor],
    shape: LlamaShape,
    out_dir: Path,
    tokenizer_dir: Path | None = None,
    *,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    torch_dtype: str = "float32",
) -> None:
    """Write a HF Llama directory (model.safetensors, config.json, generation_config.json and the
    tokenizer files of ``tokenizer_dir``) atomically. Token ids default to the tokenizer's, then to
    LlamaConfig's defaults (1 and 2, the Llama-2 tokenizer's <s> and </s>)."""
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig

    if torch_dtype not in DTYPES:
        raise ValueError(f"torch_dtype must be one of {sorted(DTYPES)}, got {torch_dtype!r}")
    token_files: list[Path] = []
    if tokenizer_dir is not None:
        tokenizer_dir = Path(tokenizer_dir)
        token_files = [tokenizer_dir / n for n in TOKENIZER_FILES if (tokenizer_dir / n).is_file()]
        if not token_files:
            raise FileNotFoundError(f"no tokenizer files ({', '.join(TOKENIZER_FILES)}) in {tokenizer_dir}")
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        bos_token_id = tokenizer.bos_token_id if bos_token_id is None else bos_token_id
        eos_token_id = tokenizer.eos_token_id if eos_token_id is None else eos_token_id
    ids = {k: v for k, v in (("bos_token_id", bos_token_id), ("eos_token_id", eos_token_id)) if v is not None}
    dtype = DTYPES[torch_dtype]
    hf_sd = {k: v.detach().to("cpu", dtype).contiguous() for k, v in mcore_to_hf(mc_sd, shape).items()}
    config = LlamaConfig(**shape.to_hf_config(), **ids, dtype=torch_dtype)
    generation = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id)
    with atomic_dir(out_dir) as tmp:
        save_file(hf_sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config.save_pretrained(str(tmp))
        generation.save_pretrained(str(tmp))
        for path in token_files:
            shutil.copy2(path, tmp / path.name)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m rhocluster.model.convert", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    to_mc = sub.add_parser("hf-to-mcore", help="HF Llama directory -> mcore checkpoint directory")
    to_mc.add_argument("src", type=Path, help="HF model directory (config.json + weights)")
    to_mc.add_argument("dst", type=Path, help="output mcore directory (replaced if it exists)")
    to_hf = sub.add_parser("mcore-to-hf", help="mcore checkpoint directory -> HF Llama directory")
    to_hf.add_argument("src", type=Path, help="mcore directory (model.safetensors + shape.json)")
    to_hf.add_argument("dst", type=Path, help="output HF directory (replaced if it exists)")
    to_hf.add_argument("--tokenizer", type=Path, default=None, help="directory whose tokenizer files are copied")
    to_hf.add_argument("--bos-token-id", type=int, default=None)
    to_hf.add_argument("--eos-token-id", type=int, default=None)
    to_hf.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="stored weight dtype")
    args = parser.parse_args(argv)
    try:
        if args.command == "hf-to-mcore":
            hf_sd, shape = load_hf(args.src)
            save_mcore(hf_to_mcore(hf_sd, shape), shape, args.dst)
        else:
            mc_sd, shape = load_mcore(args.src)
            export_hf(
                mc_sd,
                shape,
                args.dst,
                args.tokenizer,
                bos_token_id=args.bos_token_id,
                eos_token_id=args.eos_token_id,
                torch_dtype=args.dtype,
            )
    except (OSError, ValueError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
