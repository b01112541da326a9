"""A local stand-in for the real experiment's hub repositories, written in their layouts and columns.

``write_local_hub(root)`` writes, under ``root``, one directory per repository of
``config/rho1-tinyllama.yaml`` at ``{root}/{datasets|models}/{hub id}``, each laid out like the hub
repository it stands for, so that the real fetch code (listing, patterns, hashing, manifests,
rhocluster.hub.download) and the real readers (rhocluster.corpus.hf, the HF import) run on it unchanged:

* ``open-web-math/open-web-math``: ``data/train-0000i-of-0000n.parquet`` with OpenWebMath's columns
  (url, text, date, metadata; several files, several row groups each). The texts are the generated
  math web pages of :mod:`rhocluster.corpus.synthetic` without their labels: readable pages with
  worked problems, tables and LaTeX among menus, footers and off-topic prose.
* the reference mixture's four datasets in their own formats and columns: NuminaMath-CoT (parquet:
  problem, solution, source, messages), MetaMathQA (one JSON array: query, response, type,
  original_question), Orca-Math (parquet: question, answer), MathInstruct (one JSON array: source,
  instruction, output), their records generated problems with worked solutions.
* ``TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T``: a seeded random ``LlamaForCausalLM`` of a
  small shape with TinyLlama's vocabulary size (32,000) and context (2,048 positions), as
  ``config.json`` + ``model.safetensors``, and a Llama-2-style tokenizer (BPE with byte fallback,
  ``<unk>``/``<s>``/``</s>`` = 0/1/2, the 256 byte tokens next, no pad token) trained on the generated
  text.

Every file is a pure function of the sizes and the seed, and each repository directory appears
atomically. A repository already written with the same sizes (its ``.localhub.json``; dotfiles are not
listed by the fetch code) is left alone, so rebuilding changes nothing that the fetch rules hashed.

    python -m rhocluster.hub local resources/hub
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from rhocluster.corpus.synthetic import generate_hq_math, generate_math_web
from rhocluster.corpus.synthetic_math import ALGEBRA, WORD_PROBLEMS, Problem
from rhocluster.common.atomic import atomic_dir
from rhocluster.model.shape import LlamaShape

STAMP = ".localhub.json"
VERSION = 1  # of what the writers below write: part of the stamp, so a changed writer rewrites the hub
# The hub ids of config/rho1-tinyllama.yaml: each gets its directory under {root}/datasets or {root}/models.
OWM = "open-web-math/open-web-math"
NUMINA = "AI-MO/NuminaMath-CoT"
METAMATH = "meta-math/MetaMathQA"
ORCA = "microsoft/orca-math-word-problems-200k"
MATHINSTRUCT = "TIGER-Lab/MathInstruct"
TINYLLAMA = "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T"
DATASETS = (OWM, NUMINA, METAMATH, ORCA, MATHINSTRUCT)

# Llama-2's special tokens and their ids (TinyLlama uses Llama-2's tokenizer).
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
BYTE_TOKENS = [f"<0x{i:02X}>" for i in range(256)]

# Small enough to train on 2 CPU cores in seconds, with TinyLlama's vocabulary and context so that the
# harness' few-shot prompts (up to ~1,500 Llama tokens) fit whole.
SMOKE_SHAPE = LlamaShape(
    vocab_size=32000,
    hidden_size=64,
    ffn_hidden_size=176,
    num_layers=4,
    num_attention_heads=4,
    num_query_groups=2,
    max_position_embeddings=2048,
)


@dataclass(frozen=True)
class LocalHubSizes:
    """How much the local hub holds. ``web_rows`` documents in ``web_files`` parquet files of
    ``row_group`` rows per row group; ``hq_records`` records per reference dataset; the model's
    ``shape``; the tokenizer's ``vocab_size`` (at most the model's) trained on ``tokenizer_docs``
    generated documents."""

    web_rows: int = 300
    web_files: int = 3
    row_group: int = 25
    hq_records: int = 150
    tokenizer_docs: int = 4000
    vocab_size: int = 32000
    shape: LlamaShape = field(default_factory=lambda: SMOKE_SHAPE)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("web_rows", "web_files", "row_group", "hq_records", "tokenizer_docs"):
            if getattr(self, name) < 1:
                raise ValueError(f"local hub: {name} must be >= 1, got {getattr(self, name)}")
        if self.web_rows < self.web_files:
            raise ValueError(f"local hub: {self.web_rows} web rows cannot fill {self.web_files} files")
        if not len(BYTE_TOKENS) + 3 < self.vocab_size <= self.shape.vocab_size:
            raise ValueError(
                f"local hub: tokenizer vocab_size {self.vocab_size} must exceed the {len(BYTE_TOKENS) + 3} special "
                f"and byte tokens and be at most the model's {self.shape.vocab_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The sizes and the writers' VERSION, as the stamp records them."""
        return {**asdict(self), "shape": self.shape.to_dict(), "version": VERSION}


def repo_dir(root: Path | str, repo_id: str, repo_type: str) -> Path:
    """Where the stand-in for hub repository ``repo_id`` (``dataset`` or ``model``) lies under ``root``."""
    return Path(root) / f"{repo_type}s" / repo_id


# --- the documents ---------------------------------------------------------------------------------


def web_texts(n: int, seed: int) -> list[str]:
    """``n`` generated math web pages, their text only (the generator's labels are dropped)."""
    return [doc["text"] for doc in generate_math_web(n, seed)]


def _problems(name: str, n: int, seed: int) -> list[tuple[Problem, random.Random]]:
    out = []
    for i in range(n):
        r = random.Random(f"rhocluster/localhub/{name}/{seed}/{i}")
        out.append((r.choice(WORD_PROBLEMS + ALGEBRA)(r), r))
    return out


def numina_records(n: int, seed: int) -> list[dict[str, Any]]:
    """NuminaMath-CoT's columns: problem, solution (steps, then a boxed answer), source, messages."""
    records = []
    for p, r in _problems("numina", n, seed):
        solution = " ".join(p.steps) + f" Therefore, the answer is $\\boxed{{{p.answer_tex}}}$."
        messages = [{"role": "user", "content": p.question}, {"role": "assistant", "content": solution}]
        records.append({"problem": p.question, "solution": solution, "source": r.choice(["synthetic_math", "orca_math", "cn_k12"]), "messages": messages})
    return records


def metamath_records(n: int, seed: int) -> list[dict[str, Any]]:
    """MetaMathQA's columns: query, response (ending "The answer is: N"), type, original_question."""
    records = []
    for p, r in _problems("metamath", n, seed):
        kind = r.choice(["GSM_Rephrased", "GSM_AnsAug", "MATH_AnsAug", "GSM_SV"])
        records.append({"query": p.question, "response": " ".join(p.steps) + f"\nThe answer is: {p.answer}",
                        "type": kind, "original_question": p.question})
    return records


def orca_records(n: int, seed: int) -> list[dict[str, Any]]:
    """Orca-Math's columns: question, answer (worked solution in prose)."""
    return [{"question": p.question, "answer": " ".join(p.steps) + f" So the answer is {p.answer}."}
            for p, _ in _problems("orca", n, seed)]


def mathinstruct_records(n: int, seed: int) -> list[dict[str, Any]]:
    """MathInstruct's columns: source, instruction, output (chain-of-thought rationales)."""
    return [{"source": r.choice(["data/CoT/gsm_rft.json", "data/CoT/MATH_train.json", "data/CoT/aqua_rat.json"]),
             "instruction": p.question, "output": " ".join(p.steps) + f" The answer is {p.answer}."}
            for p, r in _problems("mathinstruct", n, seed)]


# --- writers ---------------------------------------------------------------------------------------


def _write_parquet(path: Path, columns: dict[str, list], row_group: int | None = None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group)


def _columns(records: list[dict[str, Any]]) -> dict[str, list]:
    return {key: [r[key] for r in records] for key in records[0]}


def _split(n: int, parts: int) -> list[int]:
    return [(i + 1) * n // parts - i * n // parts for i in range(parts)]


def write_web_dataset(out: Path, texts: list[Any], files: int | Sequence[int], row_group: int, seed: int = 0) -> Path:
    """OpenWebMath's layout: ``data/train-0000i-of-0000n.parquet`` (url, text, date, metadata), ``row_group``
    rows per row group, and a dataset card. ``files``: how many files (rows split evenly), or the rows of each."""
    rows_per_file = _split(len(texts), files) if isinstance(files, int) else list(files)
    if sum(rows_per_file) != len(texts):
        raise ValueError(f"{len(texts)} texts but {sum(rows_per_file)} rows in the files")
    files = len(rows_per_file)
    r = random.Random(f"rhocluster/localhub/owm/{seed}")
    start = 0
    for i, n in enumerate(rows_per_file):
        rows = range(start, start + n)
        _write_parquet(
            out / "data" / f"train-{i:05d}-of-{files:05d}.parquet",
            {
                "url": [f"https://math-{r.randrange(40)}.example.org/t/{j}" for j in rows],
                "text": texts[start : start + n],
                "date": [f"20{r.randint(13, 23)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T00:00:00Z" for _ in rows],
                "metadata": [json.dumps({"extraction_info": {"found_math": True}, "score": round(r.random(), 4)})
                             for _ in rows],
            },
            row_group,
        )
        start += n
    # The seed strings above keep this module's former name (rhocluster.localhub): same generated text
    readme = "---\nlicense: odc-by\n---\nA generated stand-in for OpenWebMath (rhocluster.hub.local).\n"
    (out / "README.md").write_text(readme)
    return out


def write_json_array(path: Path, records: list[dict[str, Any]]) -> None:
    """One JSON array of record objects (MetaMathQA's and MathInstruct's file format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n")


def train_llama_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A Llama-2-style ``LlamaTokenizerFast`` of ``vocab_size`` tokens trained on ``texts``: BPE with byte
    fallback, ``<unk>``, ``<s>``, ``</s>`` = 0, 1, 2 (the only special tokens), the byte tokens
    ``<0x00>``..``<0xFF>`` = 3..258 as plain vocabulary entries, then the learnt pieces; ``▁`` for
    spaces, merges inside words only (as SentencePiece), ``<s>`` prepended, no pad token."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import LlamaTokenizerFast

    specials = [UNK, BOS, EOS]
    normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    learner = Tokenizer(models.BPE(unk_token=UNK))
    learner.normalizer = normalizer
    # split before each "▁" while learning, so that no merge spans two words; Llama-2's tokenizer.json has
    # no pre-tokenizer, and with merges inside words only it encodes the same without one
    learner.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(BYTE_TOKENS), special_tokens=specials, show_progress=False)
    learner.train_from_iterator(texts, trainer)
    learnt = json.loads(learner.to_str())["model"]
    pieces = [t for t, _ in sorted(learnt["vocab"].items(), key=lambda kv: kv[1]) if t not in specials]
    vocab = {t: i for i, t in enumerate([*specials, *BYTE_TOKENS, *(p for p in pieces if p not in BYTE_TOKENS)])}
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in learnt["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNK, byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizer
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials])
    return LlamaTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK, add_bos_token=True, add_eos_token=False
    )


def write_llama_model(out: Path, shape: LlamaShape, tokenizer: Any, seed: int = 0) -> Path:
    """A seeded random ``LlamaForCausalLM`` of ``shape`` (``config.json``, ``generation_config.json``,
    ``model.safetensors``) with ``tokenizer`` beside it, in a hub model repository's layout."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if len(tokenizer) > shape.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the model only {shape.vocab_size} rows")
    torch.manual_seed(seed)
    hf = {k: v for k, v in shape.to_hf_config().items() if k != "model_type"}
    config = LlamaConfig(**hf, bos_token_id=1, eos_token_id=2, torch_dtype="float32")
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(out), safe_serialization=True)
    GenerationConfig(bos_token_id=1, eos_token_id=2, max_length=shape.max_position_embeddings).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


# --- the whole hub ---------------------------------------------------------------------------------


def _stamped(path: Path, sizes: LocalHubSizes) -> bool:
    stamp = path / STAMP
    return stamp.is_file() and json.loads(stamp.read_text()) == sizes.to_dict()


def _write_repo(path: Path, sizes: LocalHubSizes, write: Callable[[Path], Any], force: bool) -> bool:
    """Write one repository directory atomically unless it holds these sizes already; True if written."""
    if not force and _stamped(path, sizes):
        return False
    with atomic_dir(path) as tmp:
        write(tmp)
        (tmp / STAMP).write_text(json.dumps(sizes.to_dict(), indent=1, sort_keys=True) + "\n")
    return True


def write_local_hub(root: Path | str, sizes: LocalHubSizes | None = None, *, force: bool = False) -> dict[str, Path]:
    """Write every repository of the real config under ``root`` (see the module docstring); return
    ``{hub id: directory}``. Repositories already written with the same sizes are kept unless ``force``."""
    sizes = sizes or LocalHubSizes()
    root = Path(root)
    seed = sizes.seed
    n = sizes.hq_records
    hq: dict[str, Callable[[Path], Any]] = {
        NUMINA: lambda d: _write_parquet(d / "data/train-00000-of-00001.parquet", _columns(numina_records(n, seed))),
        METAMATH: lambda d: write_json_array(d / "MetaMathQA-395K.json", metamath_records(n, seed)),
        ORCA: lambda d: _write_parquet(d / "data/train-00000-of-00001.parquet", _columns(orca_records(n, seed))),
        MATHINSTRUCT: lambda d: write_json_array(d / "MathInstruct.json", mathinstruct_records(n, seed)),
    }
    written = {OWM: repo_dir(root, OWM, "dataset")}
    _write_repo(
        written[OWM], sizes,
        lambda d: write_web_dataset(d, web_texts(sizes.web_rows, seed), sizes.web_files, sizes.row_group, seed),
        force,
    )  # fmt: skip
    for repo_id, write in hq.items():
        written[repo_id] = repo_dir(root, repo_id, "dataset")
        _write_repo(written[repo_id], sizes, write, force)

    def model(d: Path) -> None:
        # the tokenizer learns from the same kinds of text the corpus and the mixture hold (other draws)
        docs = web_texts(sizes.tokenizer_docs, seed + 1) + [x["text"] for x in generate_hq_math(sizes.tokenizer_docs // 4, seed + 1)]
        write_llama_model(d, sizes.shape, train_llama_tokenizer(docs, sizes.vocab_size), seed)

    written[TINYLLAMA] = repo_dir(root, TINYLLAMA, "model")
    _write_repo(written[TINYLLAMA], sizes, model, force)
    return written

