"""The trainer on CPU at tiny scale: token selection, data order, exact resumption, bad input."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rhocluster.corpus.labels import LABELS
from rhocluster.data.shards import write_shard
from rhocluster.model.mcore_format import load_mcore, save_mcore
from rhocluster.model.megatron import build_gpt_model, init_distributed, lm_forward
from rhocluster.model.shape import LlamaShape
from rhocluster.training import checkpoint as ckpt_module
from rhocluster.training.checkpoint import checkpoint_dirs, load_checkpoint
from rhocluster.training.config import TrainConfig
from rhocluster.training.data import TokenStream
from rhocluster.training.jobs import launch_training, run_training
from rhocluster.training.selectors import slm_keep
from rhocluster.training.optimizer import Optimizer
from rhocluster.training.trainer import StepInfo, train

pytestmark = pytest.mark.slow  # nearly every test here runs the training loop

REPO = Path(__file__).resolve().parents[1]
SHAPE = LlamaShape(
    vocab_size=64,
    hidden_size=32,
    ffn_hidden_size=64,
    num_layers=2,
    num_attention_heads=4,
    num_query_groups=2,
    max_position_embeddings=32,
)
WINDOW = 17  # 16 prediction targets per window
SIZES = (12, 8)  # windows per shard


@pytest.fixture(scope="module", autouse=True)
def device() -> torch.device:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return init_distributed(0)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """Two shards with labels, a static mask and reference losses for each."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(7)
    out = {"shards": [], "masks": [], "ref": []}
    for i, n in enumerate(SIZES):
        prefix = root / f"{i:05d}"
        tokens = rng.integers(0, SHAPE.vocab_size, size=(n, WINDOW))
        labels = rng.integers(0, 3, size=(n, WINDOW)).astype(np.uint8)
        write_shard(prefix, tokens, labels, SHAPE.vocab_size, n_documents=n, n_dropped=0)
        mask = (rng.random((n, WINDOW)) < 0.5).astype(np.uint8)
        np.save(root / f"mask{i}.npy", mask)
        ref = (3.0 + rng.random((n, WINDOW))).astype(np.float16)
        ref[:, 0] = np.nan  # position 0 is never a target
        np.save(root / f"ref{i}.npy", ref)
        out["shards"].append(str(prefix))
        out["masks"].append(str(root / f"mask{i}.npy"))
        out["ref"].append(str(root / f"ref{i}.npy"))
    out["root"] = root
    return out


def stream_for(data: dict, selection: str) -> TokenStream:
    return TokenStream(
        data["shards"],
        masks=data["masks"] if selection == "mask" else None,
        ref_losses=data["ref"] if selection == "slm" else None,
    )


def config(**kw) -> TrainConfig:
    base = dict(steps=4, global_batch=4, micro_batch=2, lr=3e-3, warmup_steps=1, seed=3, log_every=1)
    return TrainConfig(**{**base, **kw})


def run(data: dict, out: Path, cfg: TrainConfig, on_step=None, init_from=None) -> dict:
    return train(
        SHAPE,
        cfg,
        stream_for(data, cfg.tokens),
        out_dir=out / "model",
        ckpt_root=out / "ckpt",
        log_path=out / "log.jsonl",
        summary_path=out / "summary.json",
        init_from=init_from,
        label_names=["a", "b", "c"],
        on_step=on_step,
    )


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def brute_force_keep(excess: list[np.ndarray], valid: list[np.ndarray], ratio: float) -> list[np.ndarray]:
    """SLM by sorting: the pooled batch's valid tokens ordered by excess descending, ties by pooled
    position (micro-batch, row, column); the first k = ceil(ratio * n_valid) are kept."""
    pooled = np.concatenate([e[v] for e, v in zip(excess, valid)])
    k = math.ceil(Fraction(str(ratio)) * len(pooled))
    flat = np.zeros(len(pooled), bool)
    flat[np.lexsort((np.arange(len(pooled)), -pooled.astype(np.float64)))[:k]] = True
    out, start = [], 0
    for v in valid:
        m = np.zeros(v.shape, bool)
        m[v] = flat[start : start + int(v.sum())]
        start += int(v.sum())
        out.append(m)
    return out


# --- SLM selection -------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.1, 0.6, 0.75, 1.0])
def test_slm_keep_matches_brute_force(ratio):
    rng = np.random.default_rng(int(ratio * 100))
    excess = [rng.normal(size=(3, 11)).astype(np.float32) for _ in range(3)]
    valid = [rng.random((3, 11)) < 0.8 for _ in range(3)]
    got = slm_keep([torch.from_numpy(e) for e in excess], [torch.from_numpy(v) for v in valid], ratio)
    want = brute_force_keep(excess, valid, ratio)
    n_valid = sum(int(v.sum()) for v in valid)
    assert sum(int(g.sum()) for g in got) == math.ceil(Fraction(str(ratio)) * n_valid)  # no ties
    for g, w, v in zip(got, want, valid):
        assert g.dtype == torch.bool
        assert np.array_equal(g.numpy(), w)
        assert not (g.numpy() & ~v).any()  # never an invalid position


def test_slm_keep_ties_and_exact_ratio():
    excess = torch.tensor([[5.0, 1.0, 3.0, 3.0, 3.0, 0.0, -1.0, 2.0, 4.0, 9.0]])
    valid = torch.ones_like(excess, dtype=torch.bool)
    # 0.6 * 10 is 6.000000000000001 in floating point: still 6 tokens, not 7.
    assert int(slm_keep([excess], [valid], 0.6)[0].sum()) == 6
    # k = 5: the threshold value 3.0 is shared by three tokens; the first two (positions 2 and 3) are kept.
    kept = slm_keep([excess], [valid], 0.5)[0].tolist()
    assert kept == [[True, False, True, True, False, False, False, False, True, True]]


def slm_keep_np(excess: list[np.ndarray], valid: list[np.ndarray], ratio: float) -> list[np.ndarray]:
    """``slm_keep`` in one process, on and to numpy arrays."""
    keep = slm_keep([torch.from_numpy(e) for e in excess], [torch.from_numpy(v) for v in valid], ratio)
    return [k.numpy() for k in keep]


def test_slm_keep_all_equal_excess_keeps_the_budget_in_position_order():
    """Every valid token tied: exactly ceil(ratio * n_valid) are kept, the first valid ones in pooled order
    (micro-batch, row, column); masked targets are neither kept nor counted."""
    valid = [np.array([[True, False, True, True], [False, True, True, True]]), np.array([[True, True, False, True]])]
    excess = [np.full(v.shape, 0.25, np.float32) for v in valid]  # n_valid = 9, k = ceil(0.6 * 9) = 6
    got = slm_keep_np(excess, valid, 0.6)
    assert sum(int(g.sum()) for g in got) == 6
    assert got[0].tolist() == [[True, False, True, True], [False, True, True, True]]
    assert got[1].tolist() == [[False, False, False, False]]


@pytest.mark.parametrize("ratio", [0.1, 0.45, 0.6, 0.9])
def test_slm_keep_blocks_of_ties_match_the_reference(ratio):
    """Blocks of equal excess (three values, padding in between): exactly the budget, identical to the
    numpy reference, and every kept token beats or ties with every dropped one."""
    rng = np.random.default_rng(int(ratio * 100) + 7)
    excess = [np.repeat(rng.choice([-1.0, 0.0, 2.5], size=(4, 3)), 4, axis=1).astype(np.float32) for _ in range(3)]
    valid = [rng.random((4, 12)) < 0.75 for _ in range(3)]
    got = slm_keep_np(excess, valid, ratio)
    want = brute_force_keep(excess, valid, ratio)
    n_valid = sum(int(v.sum()) for v in valid)
    assert sum(int(g.sum()) for g in got) == math.ceil(Fraction(str(ratio)) * n_valid)
    for g, w, v in zip(got, want, valid):
        assert np.array_equal(g, w) and not (g & ~v).any()
    kept = np.concatenate([e[g] for e, g in zip(excess, got)])
    dropped = np.concatenate([e[v & ~g] for e, v, g in zip(excess, valid, got)])
    assert kept.min() >= dropped.max()
    threshold = kept.min()
    assert (dropped == threshold).any()  # the budget cut through a block of ties


SLM_WORKER = """
import sys, numpy as np, torch, torch.distributed as dist
from rhocluster.training.selectors import slm_keep
dist.init_process_group("gloo")
rank = dist.get_rank()
data = np.load(sys.argv[1])
excess = [torch.from_numpy(data[f"e{rank}_{i}"]) for i in range(2)]
valid = [torch.from_numpy(data[f"v{rank}_{i}"]) for i in range(2)]
keep = slm_keep(excess, valid, 0.6)
np.savez(sys.argv[2] + f".{rank}.npz", *[k.numpy() for k in keep])
dist.destroy_process_group()
"""


def run_two_gloo_ranks(worker: str, arrays: dict, tmp_path: Path) -> list[np.ndarray]:
    """Run ``worker`` (reads argv[1] .npz, writes argv[2].{rank}.npz) under torchrun with 2 CPU ranks;
    return the output arrays of rank 0, then rank 1 (two micro-batches each)."""
    np.savez(tmp_path / "in.npz", **arrays)
    (tmp_path / "worker.py").write_text(worker)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         str(tmp_path / "worker.py"), str(tmp_path / "in.npz"), str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = []
    for r in range(2):
        with np.load(tmp_path / f"out.{r}.npz") as f:
            got += [f[f"arr_{i}"] for i in range(2)]
    return got


@pytest.mark.parametrize("ties", [False, True])
def test_slm_keep_ranks_the_global_batch_across_ranks(tmp_path, ties):
    """Two gloo ranks with different numbers of valid tokens select exactly what one pooled sort selects,
    and what one process selects from the same micro-batches (ties broken by global position)."""
    rng = np.random.default_rng(11)
    arrays = {}
    for r in range(2):
        for i in range(2):
            e = rng.normal(loc=r, size=(2, 9))  # rank 1 scores higher
            arrays[f"e{r}_{i}"] = (np.round(e) if ties else e).astype(np.float32)  # ties: 18 at 0, 3 of them kept
            arrays[f"v{r}_{i}"] = rng.random((2, 9)) < (0.9 if r else 0.6)
    got = run_two_gloo_ranks(SLM_WORKER, arrays, tmp_path)
    keys = [(r, i) for r in range(2) for i in range(2)]
    excess, valid = [arrays[f"e{r}_{i}"] for r, i in keys], [arrays[f"v{r}_{i}"] for r, i in keys]
    want = brute_force_keep(excess, valid, 0.6)
    one = slm_keep([torch.from_numpy(e) for e in excess], [torch.from_numpy(v) for v in valid], 0.6)
    for g, w, o in zip(got, want, one):
        assert np.array_equal(g, w) and np.array_equal(g, o.numpy())
    assert sum(int(g.sum()) for g in got) == math.ceil(0.6 * sum(int(v.sum()) for v in valid) - 1e-9)
    per_rank = [sum(int(g.sum()) for g in got[:2]), sum(int(g.sum()) for g in got[2:])]
    assert per_rank[1] > per_rank[0]  # the ranking is global, not a 60% quota per rank


@pytest.mark.parametrize("micro_batch", [4, 2])  # one pass (score = train forward), and two passes
def test_trainer_slm_step_matches_brute_force(data, tmp_path, micro_batch):
    """The first SLM step keeps the tokens a numpy top-k of (model loss - reference loss) keeps."""
    seen: list[StepInfo] = []
    cfg = config(steps=1, micro_batch=micro_batch, tokens="slm", budget=0.6)
    run(data, tmp_path, cfg, on_step=seen.append)
    info = seen[0]
    stream = stream_for(data, "slm")
    model = build_gpt_model(SHAPE)  # same seed, same initial weights as the trainer's
    excess, valid, losses = [], [], []
    for i in range(0, len(info.window_ids), micro_batch):
        b = stream.batch(info.window_ids[i : i + micro_batch])
        tokens = torch.from_numpy(b.tokens)
        with torch.no_grad():
            loss = lm_forward(model, tokens[:, :-1], tokens[:, 1:]).numpy()
        losses.append(loss)
        excess.append(loss - b.ref_loss[:, 1:])
        valid.append(b.valid[:, 1:])
    want = brute_force_keep(excess, valid, 0.6)
    for got, w in zip(info.keep, want):
        assert np.array_equal(got, w)
    kept = np.concatenate([l[w] for l, w in zip(losses, want)])
    assert len(kept) == math.ceil(0.6 * 4 * 16)
    assert info.record["kept_fraction"] == pytest.approx(len(kept) / 64)
    assert info.record["loss_kept"] == pytest.approx(float(kept.mean()), rel=1e-6)
    assert info.record["loss"] == pytest.approx(float(np.concatenate(losses).mean()), rel=1e-6)


# --- data order -----------------------------------------------------------------------------------


def test_data_order_is_identical_across_variants(data, tmp_path):
    steps, gb = 6, 4  # 24 windows: the whole first epoch (20) and 4 of the second
    orders, kept = {}, {}
    for selection in ("all", "mask", "slm"):
        seen: list[StepInfo] = []
        summary = run(data, tmp_path / selection, config(steps=steps, tokens=selection), on_step=seen.append)
        orders[selection] = [info.window_ids.tolist() for info in seen]
        kept[selection] = summary["kept_fraction"]
    assert orders["all"] == orders["mask"] == orders["slm"]
    flat = [w for step in orders["all"] for w in step]
    stream = stream_for(data, "all")
    assert flat[:20] == stream.order(3, 0).tolist() and sorted(flat[:20]) == list(range(20))
    assert flat[20:] == stream.order(3, 1)[:4].tolist()
    assert stream.order(4, 0).tolist() != stream.order(3, 0).tolist()  # the seed matters
    # Orders are cached (read-only, the last two) and equal to a fresh draw.
    assert stream.order(3, 0) is stream.order(3, 0) and not stream.order(3, 0).flags.writeable
    assert np.array_equal(stream.order(3, 0), np.random.default_rng([3, 0]).permutation(20))
    assert len(stream._orders) <= 2
    # The variants differ in the tokens they learn from only.
    masks = [np.load(p) for p in data["masks"]]
    mask_kept = [masks[0 if w < 12 else 1][w if w < 12 else w - 12][1:].mean() for w in flat]
    assert kept["all"] == 1.0
    assert kept["mask"] == pytest.approx(float(np.mean(mask_kept)))
    assert kept["slm"] == pytest.approx(math.ceil(0.6 * 64) / 64)


def test_cpu_optimizer_matches_stock_adamw(device):
    """The trainer's CPU optimizer (torch's fused AdamW kernel, decay on matrices only) makes the
    same updates as torch's default AdamW implementation, including the learning-rate changes."""
    cfg = config(lr=1e-2, weight_decay=0.1)
    ours_model, stock_model = build_gpt_model(SHAPE), build_gpt_model(SHAPE)
    stock_model.load_state_dict(ours_model.state_dict())
    ours = Optimizer(ours_model, cfg, cuda=False)
    assert all(group["fused"] for group in ours.opt.param_groups)
    decay = [p for p in stock_model.parameters() if p.ndim >= 2]
    no_decay = [p for p in stock_model.parameters() if p.ndim < 2]
    stock = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps,
    )
    assert not any(group["fused"] or group["foreach"] for group in stock.param_groups)
    gen = torch.Generator().manual_seed(9)
    for step in range(4):
        lr = cfg.lr / (step + 1)
        ours.set_lr(lr)
        for group in stock.param_groups:
            group["lr"] = lr
        for a, b in zip(ours_model.parameters(), stock_model.parameters()):
            a.grad = torch.randn(a.shape, generator=gen) * 0.1
            b.grad = a.grad.clone()
        norm = ours.step(ours_model)
        want = float(torch.nn.utils.clip_grad_norm_(list(stock_model.parameters()), cfg.grad_clip))
        stock.step()
        assert norm == pytest.approx(want, rel=1e-6)
        for (name, a), b in zip(ours_model.named_parameters(), stock_model.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=lambda m: f"{name}: {m}")


# --- checkpoints and exact resumption -------------------------------------------------------------


class Killed(Exception):
    """Stands in for a job killed by the scheduler."""


def rng_recorder(draws: dict, kill_at: int | None = None):
    """A hook that consumes every RNG (as dropout would) and can kill the run after a step."""

    def hook(info: StepInfo) -> None:
        draws[info.step] = (torch.rand(2).tolist(), float(np.random.rand()), random.random())
        if info.step == kill_at:
            raise Killed(f"killed after step {info.step}")

    return hook


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and len(wa) == 3 + 6 * SHAPE.num_layers
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_resume_after_kill_is_bitwise_identical(data, tmp_path, monkeypatch):
    cfg = config(steps=7, tokens="slm", checkpoint_every=2)
    full_draws: dict = {}
    run(data, tmp_path / "full", cfg, on_step=rng_recorder(full_draws))
    full_log = read_log(tmp_path / "full" / "log.jsonl")
    assert [r["step"] for r in full_log] == list(range(1, 8))
    assert [p.name for p in checkpoint_dirs(tmp_path / "full" / "ckpt")] == ["step_00000004", "step_00000006"]

    # Killed after step 5, between checkpoints: resumes from step 4 and redoes step 5.
    killed = tmp_path / "killed"
    draws: dict = {}
    with pytest.raises(Killed):
        run(data, killed, cfg, on_step=rng_recorder(draws, kill_at=5))
    assert [p.name for p in checkpoint_dirs(killed / "ckpt")] == ["step_00000002", "step_00000004"]
    assert not (killed / "model").exists()
    assert max(r["step"] for r in read_log(killed / "log.jsonl")) == 5
    with open(killed / "log.jsonl", "a") as fh:
        fh.write('{"step": 6, "loss": 4.')  # a record cut short by the kill
    resumed_draws: dict = {}
    run(data, killed, cfg, on_step=rng_recorder(resumed_draws))
    assert sorted(resumed_draws) == [5, 6, 7]
    assert {s: resumed_draws[s] for s in (5, 6, 7)} == {s: full_draws[s] for s in (5, 6, 7)}  # RNG states resumed
    assert_same_weights(tmp_path / "full" / "model", killed / "model")
    log = read_log(killed / "log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 8))  # the redone step 5 is logged once
    for mine, theirs in zip(log, full_log):
        for key in ("loss", "loss_kept", "kept_fraction", "lr", "grad_norm"):
            assert mine[key] == theirs[key], (mine["step"], key)
    assert json.loads((killed / "summary.json").read_text())["tokens_seen"] == 7 * 4 * 16

    # Killed while writing checkpoint 4: nothing half-written is left and the run resumes from step 2.
    crashed = tmp_path / "crashed"
    real_save = torch.save

    def failing_save(obj, path, *args, **kwargs):
        if isinstance(path, Path) and path.name == "optimizer.pt" and ".step_00000004" in str(path):
            raise Killed("killed while saving")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(ckpt_module.torch, "save", failing_save)
    with pytest.raises(Killed):
        run(data, crashed, cfg)
    monkeypatch.undo()
    assert [p.name for p in (crashed / "ckpt").iterdir()] == ["step_00000002"]
    run(data, crashed, cfg)
    assert_same_weights(tmp_path / "full" / "model", crashed / "model")
    # The optimizer state written after resuming equals the uninterrupted run's.
    a_states = load_checkpoint(tmp_path / "full" / "ckpt" / "step_00000006").optimizer_state
    b_states = load_checkpoint(crashed / "ckpt" / "step_00000006").optimizer_state
    assert len(a_states) == len(b_states) == 1  # one per model-parallel rank
    a, b = a_states[0], b_states[0]
    assert a["param_groups"] == b["param_groups"] and len(a["state"]) == 3 + 6 * SHAPE.num_layers
    for i, state in a["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(state[key], b["state"][i][key]), (i, key)


def test_resume_refuses_another_run(data, tmp_path):
    cfg = config(steps=4, checkpoint_every=2, tokens="mask")
    with pytest.raises(Killed):
        run(data, tmp_path, cfg, on_step=rng_recorder({}, kill_at=3))
    step2 = tmp_path / "ckpt" / "step_00000002"
    with pytest.raises(ValueError, match=r"step_00000002 belongs to another run \(lr: checkpoint 0.003 vs run 0.001"):
        run(data, tmp_path, config(steps=4, checkpoint_every=2, tokens="mask", lr=1e-3))
    # Bookkeeping may change: a new checkpoint interval resumes fine.
    run(data, tmp_path, config(steps=4, checkpoint_every=3, tokens="mask", log_every=2))
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert step2.exists()


def test_checkpoint_of_another_architecture_is_refused(data, tmp_path):
    other = LlamaShape(**{**SHAPE.to_dict(), "hidden_size": 48, "ffn_hidden_size": 96})
    model = build_gpt_model(other)
    save_mcore(model.state_dict(), other, tmp_path / "other")
    with pytest.raises(ValueError, match=r"checkpoint .*other: .*hidden_size 48 vs 32, ffn_hidden_size 96 vs 64"):
        run(data, tmp_path / "a", config(), init_from=tmp_path / "other")
    # The same architecture check guards resumption from a training checkpoint.
    ckpt_module.save_checkpoint(
        tmp_path / "b" / "ckpt", 2, model.state_dict(), other, {}, [], {"config": config().to_dict()}
    )
    with pytest.raises(ValueError, match=r"step_00000002: .*hidden_size 48 vs 32"):
        run(data, tmp_path / "b", config())


def test_checkpoint_of_an_older_optimizer_layout_is_refused(data, tmp_path):
    model = build_gpt_model(SHAPE)
    ckpt_module.save_checkpoint(
        tmp_path / "ckpt", 2, model.state_dict(), SHAPE, {"state": {}, "param_groups": []}, [],
        {"config": config().to_dict(), "counters": {}},
    )
    with pytest.raises(ValueError, match=r"step_00000002: optimizer.pt does not hold one state per model-parallel rank"):
        run(data, tmp_path, config())


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(data, tmp_path):
    def poison(info: StepInfo) -> None:
        if info.step == 3:  # weights go bad after step 3; step 4's loss is NaN
            with torch.no_grad():
                info.model.output_layer.weight[0, 0] = float("nan")

    message = r"step 4: non-finite loss nan .*last good checkpoint: .*step_00000002"
    with pytest.raises(FloatingPointError, match=message):
        run(data, tmp_path, config(steps=6, checkpoint_every=2), on_step=poison)
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["step_00000002"]  # no checkpoint after the NaN
    assert not (tmp_path / "model").exists() and not (tmp_path / "summary.json").exists()
    log = read_log(tmp_path / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3] and all(math.isfinite(r["loss"]) for r in log)
    state, _ = load_mcore(tmp_path / "ckpt" / "step_00000002" / "model")
    assert all(torch.isfinite(t).all() for t in state.values())


def test_mask_of_wrong_shape_names_file_and_shard(data, tmp_path):
    bad = tmp_path / "bad_mask.npy"
    np.save(bad, np.ones((SIZES[1], WINDOW + 1), np.uint8))
    with pytest.raises(ValueError, match=rf"{bad}.*\(8, 18\) does not match its shard \(8, 17\) \(shard .*00001\)"):
        TokenStream(data["shards"], masks=[data["masks"][0], str(bad)])
    stream = stream_for(data, "all")  # no mask files
    with pytest.raises(ValueError, match="needs a mask file"):
        train(SHAPE, config(tokens="mask"), stream, tmp_path / "m", tmp_path / "c", tmp_path / "l", tmp_path / "s")


# --- workflow entry points ------------------------------------------------------------------------


def spec(data: dict, out: Path, **training) -> dict:
    return dict(
        shape=SHAPE.to_dict(),
        training={"steps": 3, "global_batch": 4, "micro_batch": 1, "lr": 3e-3, "seed": 3, "tokens": "slm"}
        | training,
        shards=data["shards"],
        out_dir=str(out / "model"),
        train_log=str(out / "log.jsonl"),
        summary=str(out / "summary.json"),
        plot=str(out / "loss.png"),
        checkpoints=str(out / "ckpt"),
        ref_losses=data["ref"],
        masks=data["masks"],
    )


def test_run_training_writes_log_plot_and_summary(data, tmp_path):
    summary = run_training(**spec(data, tmp_path, checkpoint_every=1))
    log = read_log(tmp_path / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3]
    assert {"loss", "loss_kept", "kept_fraction", "lr", "grad_norm", "tokens_per_s", "mfu"} <= log[0].keys()
    assert log[0]["tokens_per_s"] > 0 and 0 < log[0]["mfu"]
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "ckpt").exists()  # checkpoints only serve resumption
    assert summary["kept_fraction"] == pytest.approx(math.ceil(0.6 * 64) / 64)
    assert list(summary["kept_fraction_by_label"]) == list(LABELS)
    assert sum(summary["tokens_by_label"].values()) == 3 * 64


def test_import_hf_base_writes_model_empty_log_and_plot(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from rhocluster.training.jobs import import_hf_base

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**SHAPE.to_hf_config())).save_pretrained(tmp_path / "hf")
    out = tmp_path / "base"
    import_hf_base(
        tmp_path / "hf", SHAPE.to_dict(), out / "mcore", out / "log.jsonl", out / "summary.json", out / "loss.png"
    )
    assert load_mcore(out / "mcore")[1] == SHAPE
    assert (out / "log.jsonl").read_text() == "" and (out / "loss.png").stat().st_size > 0
    other = {**SHAPE.to_dict(), "num_layers": 3}
    with pytest.raises(ValueError, match="differs from config model"):
        import_hf_base(tmp_path / "hf", other, out / "x", out / "l", out / "s")


def test_two_data_parallel_ranks_under_torchrun_match_one_process(data, tmp_path):
    """torchrun with 2 CPU ranks (gloo, SLM ranked across ranks) trains like one process."""
    one = launch_training(spec(data, tmp_path / "one"), gpus=0, env={})
    two = launch_training(spec(data, tmp_path / "two"), gpus=2, env={})
    assert one["data_parallel"] == 1 and two["data_parallel"] == 2
    assert two["tokens_kept"] == one["tokens_kept"] and two["kept_fraction_by_label"] == one["kept_fraction_by_label"]
    log1, log2 = read_log(tmp_path / "one" / "log.jsonl"), read_log(tmp_path / "two" / "log.jsonl")
    for a, b in zip(log1, log2, strict=True):
        assert a["kept_fraction"] == b["kept_fraction"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
    w1 = load_file(tmp_path / "one" / "model" / "model.safetensors")
    w2 = load_file(tmp_path / "two" / "model" / "model.safetensors")
    for key in w1:
        torch.testing.assert_close(w1[key], w2[key], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("selection", "micro_batch", "processes", "parallel"),
    [
        ("slm", 1, 2, {"tensor_parallel": 2}),  # Megatron's column/row-parallel layers over gloo
        ("slm", 1, 2, {"pipeline_parallel": 2}),  # 4 micro-batches: 1F1B, SLM ranked by a forward-only pass
        ("slm", 4, 2, {"pipeline_parallel": 2}),  # one micro-batch: SLM on the training forward pass
        ("mask", 1, 4, {"pipeline_parallel": 2, "tensor_parallel": 2}),  # 2 stages x 2 tensor-parallel ranks
        ("all", 1, 4, {"pipeline_parallel": 4}),  # middle stages pass activations and gradients on
        ("slm", 1, 4, {"pipeline_parallel": 2}),  # 2 data-parallel pipelines: SLM ranked across them
    ],
)
def test_model_parallel_ranks_under_torchrun_match_one_process_and_resume_exactly(
    data, tmp_path, selection, micro_batch, processes, parallel
):
    """torchrun with the model split over tensor-parallel ranks and/or pipeline stages (gloo) trains
    like one process from the same initial weights; the checkpoint joins the shards and the stages'
    layers (full weights, one optimizer state per model-parallel rank) and resumes bitwise."""
    shape = LlamaShape.from_dict({**SHAPE.to_dict(), "num_layers": 4})  # a layer per stage with 4 stages
    init = tmp_path / "init"
    save_mcore(build_gpt_model(shape).state_dict(), shape, init)
    # adam_eps far above |grad| makes the update ~lr * clipped gradient (no sign-like amplification of
    # rounding where a gradient is ~0), and grad_clip binds at every step: the clipping over the
    # model-parallel group counts.
    training = {"lr": 0.5, "adam_eps": 1.0, "grad_clip": 0.1, "tokens": selection, "micro_batch": micro_batch}
    common = {"init": str(init), "shape": shape.to_dict()}
    one = launch_training(spec(data, tmp_path / "one", **training) | common, gpus=0, env={})
    split_spec = spec(data, tmp_path / "split", checkpoint_every=2, **training, **parallel) | common
    split_spec["keep_checkpoints"] = True
    split = launch_training(split_spec, gpus=processes, env={})
    model_parallel = parallel.get("pipeline_parallel", 1) * parallel.get("tensor_parallel", 1)
    assert split["data_parallel"] == processes // model_parallel
    assert split["pipeline_parallel"] == parallel.get("pipeline_parallel", 1)
    assert split["tensor_parallel"] == parallel.get("tensor_parallel", 1)
    assert split["tokens_kept"] == one["tokens_kept"] and split["kept_fraction_by_label"] == one["kept_fraction_by_label"]
    for a, b in zip(read_log(tmp_path / "one" / "log.jsonl"), read_log(tmp_path / "split" / "log.jsonl"), strict=True):
        assert a["kept_fraction"] == b["kept_fraction"] and a["grad_norm"] > 2 * training["grad_clip"]
        # One process runs the fused CPU modules, tensor-parallel ranks Megatron's own: equal up to
        # float32 rounding.
        for key in ("loss", "loss_kept", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-5), (a["step"], key)
    w0 = load_file(init / "model.safetensors")
    w1 = load_file(tmp_path / "one" / "model" / "model.safetensors")
    w2 = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert w1.keys() == w2.keys()
    for key in w1:
        # every tensor, on either stage, was trained (the norms' weights move least)
        assert (w1[key] - w0[key]).abs().max() > (1e-4 if w1[key].dim() == 2 else 1e-6), key
        torch.testing.assert_close(w1[key], w2[key], rtol=0, atol=1e-5)

    ckpt = load_checkpoint(tmp_path / "split" / "ckpt" / "step_00000002")
    assert len(ckpt.optimizer_state) == model_parallel and len(ckpt.rng_states) == processes
    first_run = {k: v.clone() for k, v in w2.items()}
    (tmp_path / "split" / "model" / "model.safetensors").unlink()
    launch_training(split_spec, gpus=processes, env={})  # resumes from step 2 and redoes step 3
    resumed = load_file(tmp_path / "split" / "model" / "model.safetensors")
    for key in first_run:
        assert torch.equal(first_run[key], resumed[key]), key


# --- configuration --------------------------------------------------------------------------------


def test_config_refuses_bad_model_parallelism_and_unknown_keys(data, tmp_path):
    with pytest.raises(ValueError, match="pipeline_parallel=0 must be >= 1"):
        config(pipeline_parallel=0)
    with pytest.raises(ValueError, match="pipeline_parallel=3 does not divide num_layers=2"):
        run(data, tmp_path, config(pipeline_parallel=3))
    with pytest.raises(ValueError, match="tensor_parallel=1 x pipeline_parallel=2 does not divide the 1 processes"):
        run(data, tmp_path, config(pipeline_parallel=2))
    with pytest.raises(ValueError, match="tensor_parallel=0"):
        config(tensor_parallel=0)
    with pytest.raises(ValueError, match="tensor_parallel=3 does not divide vocab_size=64, num_attention_heads=4"):
        run(data, tmp_path, config(tensor_parallel=3))
    with pytest.raises(ValueError, match="tensor_parallel=2 x pipeline_parallel=1 does not divide the 1 processes"):
        run(data, tmp_path, config(tensor_parallel=2))
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_dict({**config().to_dict(), "bogus": 1})
