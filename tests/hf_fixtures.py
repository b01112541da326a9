"""Tiny stand-ins for hub repositories, built at test time with the writers of rhocluster.hub.local (the
layouts of the real repositories): OpenWebMath-like parquet files, problem/solution datasets as parquet
and a JSON array, a Llama-2-style tokenizer (unk/bos/eos = 0/1/2, byte fallback, no pad token) and a
random tiny LlamaForCausalLM. The hub code accepts a local directory in place of a hub id and runs the
same listing, hashing and manifest code on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rhocluster.hub.local import train_llama_tokenizer, write_json_array, write_llama_model, write_web_dataset
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
    metadata) with several row groups each."""
    texts = [t for i, n in enumerate(rows) for t in _texts(n, seed + i)]
    return write_web_dataset(root, texts, rows, row_group, seed)


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
    records = [{"query": f"What is {i} times 2?", "response": f"{i} x 2 = {2 * i}. The answer is: {2 * i}", "type": "GSM"}
               for i in range(20)]
    write_json_array(meta / "MetaMathQA-395K.json", records)
    return {"numina": numina, "metamath": meta}


def make_tiny_llama(out_dir: Path, shape: LlamaShape = TINY_SHAPE, seed: int = 0) -> Path:
    """A random LlamaForCausalLM of ``shape`` with a Llama-style tokenizer, in the layout of a hub model repo."""
    texts = _texts(300, 7) + [f"Compute {i} + {i + 1}. What is {i} times 2?" for i in range(50)]
    write_llama_model(out_dir, shape, train_llama_tokenizer(texts, min(400, shape.vocab_size)), seed)
    (out_dir / "pytorch_model.bin").write_bytes(b"not fetched: the config asks for safetensors only")
    return out_dir
