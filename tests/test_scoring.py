"""score_shard: per-token loss and the embedding sample (every layer, both positions) against a direct
HF forward on a tiny random model; no pass beyond max_position_embeddings; the sample-only pass;
projections (streaming PCA vs scikit-learn); streaming writes; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rhocluster.data.shards import Shard, pack_windows, write_shard
from rhocluster.scoring.forward import forward_windows, load_causal_lm, resolve_layer
from rhocluster.scoring.projection import Projection, fit_projection, fit_projection_files
from rhocluster.scoring.rows import NpyRowWriter
from rhocluster.scoring.score import iter_samples, sample_positions, score_shard

torch.set_num_threads(1)

VOCAB = 300
SEQ = 33
WORDS = "the sum of two and three is five ; we add 12 to 30 and get 42 . solve x + 7 = 19 so x = 12".split()


def pool_samples(sample_paths: Sequence[Path | str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate per-shard samples (small inputs): (embeddings float32 [n, d], shard int32 [n], position int64 [n])."""
    embs, shards, positions = [], [], []
    for i, e, pos in iter_samples(sample_paths):
        if e.shape[0]:
            embs.append(e)
            positions.append(pos)
            shards.append(np.full(len(e), i, np.int32))
    if not embs:
        raise ValueError(f"no sampled tokens in {len(sample_paths)} sample files")
    return np.concatenate(embs), np.concatenate(shards), np.concatenate(positions)



def tiny_texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(8, 40)))) for _ in range(n)]


def make_tokenizer(out_dir: Path) -> Path:
    """A real byte-level BPE tokenizer of the project (vocab 300), trained in a blink."""
    from rhocluster.corpus.tokenizer import train_tokenizer

    train_tokenizer(tiny_texts(200, 0), VOCAB, out_dir)
    return out_dir


def make_model(out_dir: Path, vocab: int = VOCAB, seed: int = 0, max_positions: int = 64) -> Path:
    """A tiny random Llama (hidden 32, 2 layers, GQA, ``max_positions`` positions) saved as safetensors."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(cfg).save_pretrained(out_dir)
    return out_dir


def make_shards(root: Path, tokenizer_dir: Path, n_shards: int = 3, docs: int = 60, seed: int = 1) -> list[Path]:
    """Shards of encoded text documents in fixed windows of SEQ tokens, with random labels."""
    from rhocluster.corpus.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    prefixes = []
    for i in range(n_shards):
        rng = np.random.default_rng(seed * 1000 + i)
        enc = [
            (ids, rng.integers(0, 5, size=len(ids)).astype(np.uint8))
            for ids in (tok(t, add_special_tokens=False)["input_ids"] for t in tiny_texts(docs, seed * 1000 + i))
        ]
        tokens, labels, n_docs, dropped = pack_windows(enc, SEQ, eos_id=2, bos_id=1)
        prefix = root / f"{i:05d}"
        write_shard(prefix, tokens, labels, VOCAB, n_docs, dropped)
        prefixes.append(prefix)
    return prefixes


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    tok = make_tokenizer(root / "tokenizer")
    model = make_model(root / "model")
    shards = make_shards(root / "shards", tok)
    return {"root": root, "model": model, "shards": shards, "tokenizer": tok}


def hf_reference(model_dir: Path, tokens: np.ndarray) -> tuple[np.ndarray, tuple[torch.Tensor, ...]]:
    """Per-token loss [W, S] (NaN at 0) and all hidden states straight from transformers."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(tokens), output_hidden_states=True)
    logp = torch.log_softmax(out.logits.double(), dim=-1)
    nll = -logp[:, :-1].gather(-1, torch.from_numpy(tokens[:, 1:, None])).squeeze(-1)
    loss = np.full(tokens.shape, np.nan)
    loss[:, 1:] = nll.numpy()
    return loss, out.hidden_states


def hf_states(model_dir: Path, tokens: np.ndarray, layer: int | str, position: str) -> np.ndarray:
    """float32 [W, S - 1, d]: row t - 1 = hidden_states[layer] of slot t, straight from transformers:
    the pass over tokens[:, 1:] (read: the state at x_t) or tokens[:, :-1] (predict: the state at x_{t-1})."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    inputs = tokens[:, 1:] if position == "read" else tokens[:, :-1]
    with torch.no_grad():
        hidden = model(input_ids=torch.from_numpy(inputs), output_hidden_states=True).hidden_states
    index = model.config.num_hidden_layers // 2 if layer == "middle" else layer
    return hidden[index].numpy()


def test_loss_equals_direct_hf_forward(world, tmp_path):
    prefix = world["shards"][0]
    shard = Shard(prefix)
    stats = score_shard(world["model"], prefix, tmp_path / "loss.npy", batch_size=7)  # uneven last batch
    loss = np.load(tmp_path / "loss.npy")
    assert loss.shape == shard.shape and loss.dtype == np.float16
    assert np.isnan(loss[:, 0]).all() and np.isfinite(loss[:, 1:]).all()
    ref, _ = hf_reference(world["model"], shard.windows())
    np.testing.assert_allclose(loss[:, 1:].astype(np.float64), ref[:, 1:], rtol=2e-3, atol=2e-3)
    assert stats["mean_loss"] == pytest.approx(ref[:, 1:].mean(), rel=1e-3)
    assert stats["n_tokens"] == shard.n_windows * (SEQ - 1)


@pytest.mark.parametrize("position", ["read", "predict"])
@pytest.mark.parametrize(("layer", "index"), [(-1, 2), (0, 0), (1, 1), (2, 2), (-2, 1), ("middle", 1)])
def test_sample_is_the_hidden_state_of_the_layer(world, tmp_path, layer, index, position):
    prefix = world["shards"][1]
    shard = Shard(prefix)
    stats = score_shard(
        world["model"], prefix, None, tmp_path / "s.npz", batch_size=8, layer=layer,
        position=position, sample_tokens=50, seed=3,
    )
    with np.load(tmp_path / "s.npz") as z:
        pos, emb = z["positions"], z["embeddings"]
        assert str(z["layer"]) == str(layer) and str(z["shard"]) == str(prefix)
        assert int(z["hidden_index"]) == index and str(z["position"]) == position
    assert stats["hidden_index"] == index and stats["position"] == position
    assert emb.dtype == np.float16 and emb.shape == (50, 32)
    np.testing.assert_array_equal(pos, sample_positions(shard.shape, 50, 3))
    w, t = pos // SEQ, pos % SEQ
    assert (t > 0).all() and (np.diff(pos) > 0).all()
    expect = hf_states(world["model"], shard.windows(), layer, position)[w, t - 1]  # -1: final normed state
    np.testing.assert_allclose(emb.astype(np.float32), expect, rtol=2e-3, atol=2e-3)


def test_predict_state_is_the_one_the_loss_comes_from(world, tmp_path):
    """The final-layer predict state of slot t, through the LM head, gives exactly the loss of token t."""
    prefix = world["shards"][1]
    score_shard(world["model"], prefix, tmp_path / "l.npy")
    score_shard(
        world["model"], prefix, None, tmp_path / "s.npz", layer=-1, position="predict",
        sample_tokens=40, seed=5,
    )
    with np.load(tmp_path / "s.npz") as z:
        pos, emb = z["positions"], torch.from_numpy(z["embeddings"].astype(np.float32))
    model = load_causal_lm(world["model"])
    target = torch.from_numpy(Shard(prefix).windows().reshape(-1)[pos])
    with torch.no_grad():
        nll = torch.nn.functional.cross_entropy(model.lm_head(emb), target, reduction="none").numpy()
    np.testing.assert_allclose(nll, np.load(tmp_path / "l.npy").reshape(-1)[pos].astype(np.float32), rtol=5e-3, atol=5e-3)


def test_read_state_sees_its_token_and_predict_state_does_not(world):
    """Two windows that differ only in token x_5: the predict states of slot 5 are equal (they have not
    seen it), the read states differ; the states of earlier slots are equal in both positions."""
    model = load_causal_lm(world["model"])
    tokens = torch.from_numpy(Shard(world["shards"][0]).windows([0, 0]))
    tokens[1, 5] = (tokens[0, 5] + 1) % VOCAB
    for position, differs in (("predict", False), ("read", True)):
        _, h = forward_windows(model, tokens, layer="middle", position=position, need_loss=False)
        assert h.shape == (2, SEQ - 1, 32)
        torch.testing.assert_close(h[0, :4], h[1, :4])  # slots 1-4
        assert (not torch.allclose(h[0, 4], h[1, 4])) == differs  # slot 5


@pytest.mark.parametrize("position", ["read", "predict"])
def test_forward_windows_skips_upper_layers_without_loss(world, position):
    model = load_causal_lm(world["model"])
    tokens = torch.from_numpy(Shard(world["shards"][0]).windows(range(4)))
    loss_a, h_a = forward_windows(model, tokens, layer=1, position=position, need_loss=True)
    loss_b, h_b = forward_windows(model, tokens, layer=1, position=position, need_loss=False)
    assert loss_b is None and torch.equal(h_a, h_b) and h_a.shape == (4, SEQ - 1, 32)
    _, h_rows = forward_windows(model, tokens, layer=1, position=position, need_loss=True, state_rows=[1, 3])
    torch.testing.assert_close(h_rows, h_a[[1, 3]])


def test_layer_and_position_keys_are_checked(world):
    model = load_causal_lm(world["model"])
    assert resolve_layer(model, -1) == 2 and resolve_layer(model, -3) == 0 and resolve_layer(model, "middle") == 1
    with pytest.raises(ValueError, match=r"scoring.layer=3 outside \[-3, 2\] for a model with 2 layers"):
        resolve_layer(model, 3)
    with pytest.raises(ValueError, match="scoring.layer=-4 outside"):
        resolve_layer(model, -4)
    with pytest.raises(ValueError, match="scoring.layer='top'"):
        resolve_layer(model, "top")
    tokens = torch.from_numpy(Shard(world["shards"][0]).windows(range(2)))
    with pytest.raises(ValueError, match="scoring.position='next'"):
        forward_windows(model, tokens, layer=1, position="next", need_loss=False)


@pytest.mark.parametrize("position", ["read", "predict"])
@pytest.mark.parametrize("layer", [1, -1])
def test_generic_path_matches_the_split_one(world, monkeypatch, layer, position):
    """Architectures without a plain decoder + linear head take HF's own path; same numbers."""
    import rhocluster.scoring.forward as fw

    model = load_causal_lm(world["model"])
    tokens = torch.from_numpy(Shard(world["shards"][0]).windows(range(5)))
    loss_a, h_a = fw.forward_windows(model, tokens, layer=layer, position=position, need_loss=True)
    monkeypatch.setattr(fw, "_split_model", lambda m: None)
    loss_b, h_b = fw.forward_windows(model, tokens, layer=layer, position=position, need_loss=True)
    torch.testing.assert_close(loss_a, loss_b, equal_nan=True, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h_a, h_b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("position", ["read", "predict"])
def test_sample_pass_runs_only_sampled_windows(world, tmp_path, position):
    """The sample pass runs the windows holding sampled tokens only, and gets the same states as a
    forward over every window; the loss is another pass (score_reference), never combined."""
    prefix = world["shards"][2]
    only = score_shard(world["model"], prefix, None, tmp_path / "b.npz", sample_tokens=40, sample_windows=5, seed=9,
                       position=position)
    assert only["windows_run"] == only["sample_windows_run"] <= 5 and "mean_loss" not in only
    with np.load(tmp_path / "b.npz") as b:
        pos, emb = b["positions"], b["embeddings"].astype(np.float32)
    assert len(np.unique(pos // SEQ)) <= 5
    expect = hf_states(world["model"], Shard(prefix).windows(), "middle", position)[pos // SEQ, pos % SEQ - 1]
    np.testing.assert_allclose(emb, expect, rtol=2e-3, atol=2e-3)
    with pytest.raises(ValueError, match="separate passes"):
        score_shard(world["model"], prefix, tmp_path / "l.npy", tmp_path / "c.npz", sample_tokens=4)


# --- positions: no pass beyond max_position_embeddings --------------------------------------------


def _guard_positions(monkeypatch, limit: int) -> list[int]:
    """Make every model loaded by score_shard record (and refuse) the length of each decoder input."""
    import rhocluster.scoring.forward as forward_mod

    seen: list[int] = []

    def guarded(model_dir, device="cpu"):
        model = load_causal_lm(model_dir, device)

        def pre_hook(_module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            seen.append(int(ids.shape[1]))
            assert ids.shape[1] <= limit, f"a forward of {ids.shape[1]} positions > {limit}"

        model.model.register_forward_pre_hook(pre_hook, with_kwargs=True)
        return model

    monkeypatch.setattr(forward_mod, "load_causal_lm", guarded)  # what load_for_shard loads with
    return seen


@pytest.mark.parametrize("generic", [False, True])
@pytest.mark.parametrize("position", ["read", "predict"])
def test_no_forward_beyond_max_positions_and_losses_unchanged(world, tmp_path, monkeypatch, position, generic):
    """A model with max_position_embeddings == seq_len (windows of seq_len + 1 tokens): loss and sample
    passes feed at most seq_len positions, and the loss equals HF's forward over the whole window plus
    cross-entropy (what the code computed before it stopped feeding the last token)."""
    import rhocluster.scoring.forward as fw

    if generic:
        monkeypatch.setattr(fw, "_split_model", lambda m: None)
    model_dir = make_model(tmp_path / "model", max_positions=SEQ - 1)
    prefix = world["shards"][0]
    shard = Shard(prefix)
    seen = _guard_positions(monkeypatch, SEQ - 1)
    score_shard(model_dir, prefix, tmp_path / "l.npy", batch_size=7)
    score_shard(
        model_dir, prefix, None, tmp_path / "s.npz", batch_size=7, layer=-1, position=position,
        sample_tokens=300, seed=2,
    )
    assert seen and max(seen) == SEQ - 1  # whole windows of seq_len positions, never more
    ref, _ = hf_reference(model_dir, shard.windows())
    np.testing.assert_allclose(np.load(tmp_path / "l.npy")[:, 1:].astype(np.float64), ref[:, 1:], rtol=2e-3, atol=2e-3)
    with np.load(tmp_path / "s.npz") as z:
        pos, emb = z["positions"], z["embeddings"].astype(np.float32)
    expect = hf_states(model_dir, shard.windows(), -1, position)[pos // SEQ, pos % SEQ - 1]
    np.testing.assert_allclose(emb, expect, rtol=2e-3, atol=2e-3)
    assert (pos % SEQ == SEQ - 1).any()  # the last slot, whose read state once sat at position seq_len


def test_windows_longer_than_the_model_are_refused(world, tmp_path):
    model_dir = make_model(tmp_path / "model", max_positions=SEQ - 2)
    prefix = world["shards"][0]
    with pytest.raises(ValueError, match=rf"shard {prefix} .*windows of {SEQ} tokens need {SEQ - 1} positions .*"
                       rf"max_position_embeddings={SEQ - 2}"):
        score_shard(model_dir, prefix, tmp_path / "l.npy")
    assert not (tmp_path / "l.npy").exists()


def test_sample_positions_seeded_and_valid():
    a = sample_positions((20, 10), 50, seed=1)
    np.testing.assert_array_equal(a, sample_positions((20, 10), 50, seed=1))
    assert not np.array_equal(a, sample_positions((20, 10), 50, seed=2))
    assert len(np.unique(a)) == 50 and (a % 10 != 0).all() and a.max() < 200
    assert len(sample_positions((3, 4), 100, seed=0)) == 9  # capped at every target
    b = sample_positions((20, 10), 12, seed=1, windows=3)
    assert len(np.unique(b // 10)) <= 3 and (b % 10 != 0).all() and len(b) == 12
    assert sample_positions((0, 10), 5, seed=0).size == 0


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "message"), [("n_windows", 999, "windows"), ("dtype", "int32", "dtype")])
def test_shard_disagreeing_with_its_index_fails_naming_it(world, tmp_path, field, value, message):
    import shutil

    src = world["shards"][0]
    prefix = tmp_path / "bad" / "00007"
    prefix.parent.mkdir()
    for suffix in (".bin", ".idx", ".labels.npy", ".json"):
        shutil.copy(f"{src}{suffix}", f"{prefix}{suffix}")
    meta = json.loads(Path(f"{prefix}.json").read_text())
    meta[field] = value
    Path(f"{prefix}.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"shard {prefix}: .*{message}"):
        score_shard(world["model"], prefix, tmp_path / "l.npy")
    assert not (tmp_path / "l.npy").exists()


def test_nan_hidden_states_fail_naming_shard_and_layer(world, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(world["model"]))
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "nan_model")
    prefix = world["shards"][0]
    with pytest.raises(ValueError, match=rf"shard {prefix}: NaN/inf in the sampled hidden states of layer 1 \(read"):
        score_shard(tmp_path / "nan_model", prefix, None, tmp_path / "s.npz", layer=1, sample_tokens=20)
    assert not (tmp_path / "s.npz").exists()


def test_sample_file_with_nan_fails_naming_shard_and_layer(tmp_path):
    good, bad = tmp_path / "a.npz", tmp_path / "b.npz"
    emb = np.ones((4, 3), np.float16)
    np.savez(good, positions=np.arange(1, 5), embeddings=emb, layer=np.array(-1), shard=np.array("web/00000"))
    emb[2, 1] = np.nan
    np.savez(bad, positions=np.arange(1, 5), embeddings=emb, layer=np.array(7), shard=np.array("web/00001"))
    with pytest.raises(ValueError, match=r"b.npz \(shard web/00001, layer 7\) contains NaN"):
        pool_samples([good, bad])
    with pytest.raises(ValueError, match="shard web/00001, layer 7"):
        fit_projection_files([good, bad], tmp_path / "s.npy", tmp_path / "i.npz", tmp_path / "p.npz", kind="none", dim=3, normalize="l2", seed=0)
    assert not (tmp_path / "s.npy").exists()


def test_samples_of_different_spaces_are_not_pooled(tmp_path):
    emb = np.ones((4, 3), np.float16)
    for name, index, position in (("a", 1, "read"), ("b", 1, "read"), ("c", 1, "predict"), ("d", 2, "read")):
        np.savez(tmp_path / f"{name}.npz", positions=np.arange(1, 5), embeddings=emb, layer=np.array(index),
                 hidden_index=np.array(index), position=np.array(position), shard=np.array(name))
    assert pool_samples([tmp_path / "a.npz", tmp_path / "b.npz"])[0].shape == (8, 3)
    for other, what in (("c", r"hidden_states\[1\] at position 'predict'"), ("d", r"hidden_states\[2\] at position 'read'")):
        with pytest.raises(ValueError, match=rf"{other}.npz .*{what}, but .*a.npz is hidden_states\[1\] at 'read'"):
            pool_samples([tmp_path / "a.npz", tmp_path / f"{other}.npz"])
    fit_projection_files([tmp_path / "a.npz", tmp_path / "b.npz"], tmp_path / "s.npy", tmp_path / "i.npz", tmp_path / "p.npz",
                         kind="none", dim=3, normalize="l2", seed=0)
    loaded = Projection.load(tmp_path / "p.npz")
    assert (loaded.hidden_index, loaded.position) == (1, "read")  # recorded for assign's check
    loaded.check_space(1, "read", "here")
    with pytest.raises(ValueError, match=r"here: representations are hidden_states\[1\] at position 'predict'"):
        loaded.check_space(1, "predict", "here")


# --- projection ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("samples")
    rng = np.random.default_rng(0)
    scales = np.linspace(3.0, 0.2, 24)  # distinct variances, so components are well defined
    paths = []
    for i, n in enumerate([300, 0, 500]):
        e = (rng.normal(size=(n, 24)) * scales + 1.5).astype(np.float16)
        pos = np.sort(rng.choice(10_000, size=n, replace=False)).astype(np.int64)
        paths.append(root / f"{i}.npz")
        np.savez(paths[-1], positions=pos, embeddings=e, layer=np.array(-1), shard=np.array(str(i)))
    return paths


@pytest.mark.parametrize("normalize", ["none", "l2"])
def test_streaming_pca_equals_sklearn(sample_files, normalize):
    from sklearn.decomposition import PCA

    raw, _, _ = pool_samples(sample_files)
    proj = fit_projection(raw, "pca", 6, normalize, seed=0)
    x = Projection(normalize, None, None).apply(raw)
    ref = PCA(n_components=6, svd_solver="full").fit(x)
    np.testing.assert_allclose(proj.mean, ref.mean_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(proj.matrix.T, ref.components_, atol=1e-4)  # same sign convention
    np.testing.assert_allclose(proj.apply(raw), ref.transform(x), atol=1e-3)


@pytest.mark.parametrize("kind", ["pca", "random", "none"])
def test_fit_projection_files_matches_in_memory(sample_files, tmp_path, kind):
    stats = fit_projection_files(
        sample_files, tmp_path / "s.npy", tmp_path / "i.npz", tmp_path / "p.npz", kind=kind, dim=5, normalize="l2", seed=4
    )
    raw, shard, pos = pool_samples(sample_files)
    proj = fit_projection(raw, kind, 5, "l2", seed=4)
    sample = np.load(tmp_path / "s.npy")
    assert sample.dtype == np.float32 and sample.shape == (800, 24 if kind == "none" else 5) and stats["n"] == 800
    np.testing.assert_allclose(sample, proj.apply(raw), atol=1e-5)
    loaded = Projection.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(loaded.apply(raw), sample)  # assign applies exactly the same transform
    with np.load(tmp_path / "i.npz") as z:
        np.testing.assert_array_equal(z["shard"], shard)
        np.testing.assert_array_equal(z["position"], pos)


def test_projection_errors(sample_files):
    raw, _, _ = pool_samples(sample_files)
    with pytest.raises(ValueError, match="dim=30 exceeds the embedding width 24"):
        fit_projection(raw, "pca", 30, "l2", 0)
    with pytest.raises(ValueError, match="needs at least 10 sampled tokens, got 4"):
        fit_projection(raw[:4], "pca", 10, "l2", 0)
    with pytest.raises(ValueError, match="kind='svd'"):
        fit_projection(raw, "svd", 3, "l2", 0)


def test_random_projection_seeded(sample_files):
    raw, _, _ = pool_samples(sample_files)
    a, b = fit_projection(raw, "random", 8, "l2", 1), fit_projection(raw, "random", 8, "l2", 1)
    assert a.matrix.tobytes() == b.matrix.tobytes()
    assert a.matrix.tobytes() != fit_projection(raw, "random", 8, "l2", 2).matrix.tobytes()


# --- streaming writer -----------------------------------------------------------------------------


def test_row_writer_writes_a_plain_npy(tmp_path):
    data = np.arange(35, dtype=np.int32).reshape(7, 5)
    with NpyRowWriter(tmp_path / "x.npy", data.shape, np.int32) as w:
        for lo in range(0, 7, 3):
            w.write(data[lo : lo + 3])
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), data)
    with pytest.raises(ValueError, match="5 of 7 rows written"):
        with NpyRowWriter(tmp_path / "y.npy", data.shape, np.int32) as w:
            w.write(data[:5])
    with pytest.raises(ValueError, match="more than 7 rows"):
        with NpyRowWriter(tmp_path / "z.npy", data.shape, np.int32) as w:
            w.write(np.concatenate([data, data[:1]]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # failures leave nothing behind


def test_iter_samples_rejects_mismatched_rows(tmp_path):
    np.savez(tmp_path / "a.npz", positions=np.arange(3), embeddings=np.ones((2, 4), np.float16))
    with pytest.raises(ValueError, match="2 rows for 3 positions"):
        list(iter_samples([tmp_path / "a.npz"]))


def test_one_pass_writes_each_trees_own_sample(world, tmp_path):
    """Several samples (one per cluster tree) from one pass: each file holds exactly what a pass with its
    seed alone writes, and the pass runs only the union of their windows."""
    prefix = world["shards"][2]
    kw = dict(sample_tokens=40, sample_windows=3, position="read")
    seeds = [9, 10, 11]
    alone = []
    for seed in seeds:
        stats = score_shard(world["model"], prefix, None, tmp_path / f"alone{seed}.npz", seed=seed, **kw)
        alone.append(stats["windows_run"])
    paths = [tmp_path / f"joint{seed}.npz" for seed in seeds]
    joint = score_shard(world["model"], prefix, None, paths, seed=seeds, **kw)
    union = np.unique(np.concatenate([np.load(tmp_path / f"alone{s}.npz")["positions"] // SEQ for s in seeds]))
    assert joint["windows_run"] == union.size <= sum(alone)
    assert joint["n_sampled"] == [40, 40, 40]
    for seed, path in zip(seeds, paths):
        a, b = np.load(tmp_path / f"alone{seed}.npz"), np.load(path)
        assert set(a.files) == set(b.files)
        np.testing.assert_array_equal(a["positions"], b["positions"])
        np.testing.assert_allclose(a["embeddings"].astype(np.float32), b["embeddings"].astype(np.float32), atol=2e-3)
    first, second = (np.load(p)["positions"] for p in paths[:2])
    assert not np.array_equal(first, second), "each tree draws its own tokens"
    with pytest.raises(ValueError, match="2 sample paths but 3 seeds"):
        score_shard(world["model"], prefix, None, paths[:2], seed=seeds, **kw)
