"""A small byte-level BPE tokenizer trained locally, saved in Hugging Face format."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from rhocluster.common.atomic import atomic_dir

__all__ = ["SPECIAL_TOKENS", "train_tokenizer", "load_tokenizer"]

# Ids 0..2 match Llama-2's tokenizer (unk, bos, eos); pad gets the next free id.
SPECIAL_TOKENS: dict[str, tuple[str, int]] = {
    "unk_token": ("<unk>", 0),
    "bos_token": ("<s>", 1),
    "eos_token": ("</s>", 2),
    "pad_token": ("<pad>", 3),
}


def _min_vocab_size() -> int:
    return len(SPECIAL_TOKENS) + len(pre_tokenizers.ByteLevel.alphabet())


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: Path) -> None:
    """Train a byte-level BPE tokenizer on ``texts`` and save it to ``out_dir``.

    Design choices:

    * Byte-level BPE over all 256 bytes, no normalizer: every string (LaTeX, emoji, any
      unicode) encodes without ``<unk>`` and ``decode(encode(x), skip_special_tokens=True)
      == x`` exactly; ``clean_up_tokenization_spaces`` is off for the same reason, and
      ``split_special_tokens=True`` makes a literal "<s>" in scraped text (an HTML
      strikethrough tag) ordinary characters rather than a BOS that decoding would drop.
      Special tokens therefore enter only as ids (the tokenizer's own BOS, EOS appended
      by training code).
    * Digits are split one per token (as Llama does), so numbers share digit embeddings
      and a tiny model can learn arithmetic patterns instead of memorising numerals.
    * Like Llama, calling the tokenizer prepends BOS (``add_bos_token=True``) and never
      appends EOS (``add_eos_token=False``); pass ``add_special_tokens=False`` to get bare
      ids.  Training code appends EOS itself at document ends.  lm-eval's HF backend
      encodes continuations without special tokens and falls back to ``bos_token_id`` as
      the prefix for empty contexts, which this matches.
    * Offsets (``return_offsets_mapping=True``) are character offsets into the input; a
      token keeps its leading space (" word" spans the space), special tokens get (0, 0).

    The directory (``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``)
    is written to a temporary sibling and renamed into place, so ``out_dir`` is either
    absent, the old tokenizer, or the complete new one.
    """
    out_dir = Path(out_dir)
    if vocab_size < _min_vocab_size():
        raise ValueError(f"vocab_size={vocab_size} is below {_min_vocab_size()} (special tokens + 256 bytes)")
    specials = [tok for tok, _ in sorted(SPECIAL_TOKENS.values(), key=lambda t: t[1])]

    backend = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,  # given first, so they take ids 0..3 in this order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    for name, (tok, want) in SPECIAL_TOKENS.items():
        got = backend.token_to_id(tok)
        if got != want:  # would silently break models trained with Llama-style ids
            raise RuntimeError(f"{name} {tok!r} got id {got}, expected {want}")

    hf = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        **{name: tok for name, (tok, _) in SPECIAL_TOKENS.items()},
        add_bos_token=True,
        add_eos_token=False,
        clean_up_tokenization_spaces=False,
        split_special_tokens=True,
    )

    with atomic_dir(out_dir) as tmp:
        hf.save_pretrained(str(tmp))
        _complete_config(tmp)


def _complete_config(directory: Path) -> None:
    """Make the saved files self-describing for any reader.

    transformers 5 takes BOS/EOS behaviour from tokenizer.json's post-processor and drops
    ``add_bos_token``/``add_eos_token`` from tokenizer_config.json; we record them anyway
    for other readers (older transformers, humans).  transformers 5 also no longer writes
    special_tokens_map.json, which the brief and older readers expect.
    """
    cfg_path = directory / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update(add_bos_token=True, add_eos_token=False)
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    stm = directory / "special_tokens_map.json"
    if not stm.exists():
        data = {name: tok for name, (tok, _) in SPECIAL_TOKENS.items()}
        stm.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def load_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer written by :func:`train_tokenizer`, or Llama-2's (same unk/bos/eos ids, no pad).

    ``AutoTokenizer.from_pretrained`` encodes identically (BOS prepended, as lm-eval's
    default ``add_bos_token=None`` then uses) but reports ``add_bos_token=False``.
    """
    tok = PreTrainedTokenizerFast.from_pretrained(str(path))
    # transformers 5 ignores add_bos_token from the config and reports False although
    # tokenizer.json prepends BOS; set the flags so they match (the rebuilt template is
    # the same "<s> $A"), else toggling add_eos_token later would silently drop BOS.
    tok.add_bos_token = True
    tok.add_eos_token = False
    for name, (text, want) in SPECIAL_TOKENS.items():
        if name == "pad_token" and tok.pad_token is None:
            continue  # Llama-2's own tokenizer (tokenizer.source: hf) has the same ids but no pad token
        if getattr(tok, name) != text or tok.convert_tokens_to_ids(text) != want:
            raise ValueError(f"{path}: {name} is {getattr(tok, name)!r}, expected {text!r} with id {want}")
    return tok
