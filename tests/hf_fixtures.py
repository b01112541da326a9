"""Tiny stand-ins for hub repositories, built at test time: parquet/json datasets in the hub layout, a
Llama-2-style tokenizer (unk/bos/eos = 0/1/2, byte fallback, no pad token) and a random tiny
LlamaForCausalLM saved with save_pretrained. The hub code accepts a local directory in place of a
hub id and runs the same listing, hashing and manifest code on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rhocluster.model.shape import LlamaShape

WORDS = "the answer is let we find sum of two numbers equals therefore x y prove integer prime root".split()

TINY_SHAPE = LlamaShape(
    vocab_size=512,
    hidden_size=32,
    ffn_hidden_size=64,
    num_layers=2,
    num_attention_heads=4,
    num_query_groups=2,
    max_position_embeddings=128,
)


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = rng.choice(WORDS, size=int(rng.integers(8, 40)))
        out.append(f"Doc {i}: " + " ".join(words) + f" = {int(rng.integers(0, 1000))}.")
    return out


def make_web_dataset(root: Path, rows: tuple[int, ...] = (23, 17), row_group: int = 5, seed: int = 0) -> Path:
    """OpenWebMath-like parquet files ``data/train-0000i-of-0000n.parquet`` (columns url, text, date,
    metadata) with several row groups each; one text in the first file is empty."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    start = 0
    for i, n in enumerate(rows):
        texts = _texts(n, seed + i)
        if i == 0:
            texts[3] = ""
        table = pa.table(
            {
                "url": [f"https://example.org/{start + j}" for j in range(n)],
                "text": texts,
                "date": ["2023-01-01"] * n,
                "metadata": ["{}"] * n,
            }
        )
        pq.write_table(table, data / f"train-{i:05d}-of-{len(rows):05d}.parquet", row_group_size=row_group)
        start += n
    (root / "README.md").write_text("---\nlicense: odc-by\n---\n")
    return root


def make_hq_datasets(root: Path) -> dict[str, Path]:
    """Two problem/solution datasets: parquet (problem, solution) and a JSON array (query, response)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    numina = root / "numina"
    (numina / "data").mkdir(parents=True, exist_ok=True)
    problems = [f"Compute {i} + {i + 1}." for i in range(30)]
    solutions = [f"We add: {i} + {i + 1} = {2 * i + 1}. The answer is {2 * i + 1}." for i in range(30)]
    pq.write_table(pa.table({"problem": problems, "solution": solutions, "source": ["synthetic"] * 30}),
                   numina / "data/train-00000-of-00001.parquet")
    meta = root / "metamath"
    meta.mkdir(parents=True, exist_ok=True)
    records = [{"query": f"What is {i} times 2?", "response": f"{i} x 2 = {2 * i}. The answer is: {2 * i}", "type": "GSM"}
               for i in range(20)]
    (meta / "MetaMathQA-395K.json").write_text(json.dumps(records))
    return {"numina": numina, "metamath": meta}


def make_llama_tokenizer(out_dir: Path, vocab_size: int = 400) -> Path:
    """A small BPE tokenizer in Llama-2's SentencePiece style, saved with save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import LlamaTokenizerFast

    texts = _texts(300, 7) + [f"Compute {i} + {i + 1}. What is {i} times 2?" for i in range(50)]
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False))
    hf = LlamaTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True, add_eos_token=False
    )
    hf.save_pretrained(str(out_dir))
    return out_dir


def make_tiny_llama(out_dir: Path, shape: LlamaShape = TINY_SHAPE, seed: int = 0) -> Path:
    """A random LlamaForCausalLM of ``shape`` with a Llama-style tokenizer, in the layout of a hub model repo."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in shape.to_hf_config().items() if k != "model_type"},
                                         bos_token_id=1, eos_token_id=2))
    model.save_pretrained(str(out_dir), safe_serialization=True)
    make_llama_tokenizer(out_dir, vocab_size=min(400, shape.vocab_size))
    (out_dir / "pytorch_model.bin").write_bytes(b"not fetched: the config asks for safetensors only")
    return out_dir
