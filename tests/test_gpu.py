"""The trainer's GPU path (nccl, Megatron DDP + distributed optimizer, bf16, TE spec when importable).

Skipped without CUDA (``pytest -m gpu`` on a GPU node runs them). Every run is a fresh process
(``python -m rhocluster.training.jobs SPEC.json``, or torchrun for several GPUs), so the CPU reference
and the GPU runs never share a process group; the CPU reference hides the GPUs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rhocluster.data.shards import write_shard
from rhocluster.model.shape import LlamaShape

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

SHAPE = LlamaShape(
    vocab_size=128,
    hidden_size=64,
    ffn_hidden_size=176,
    num_layers=4,
    num_attention_heads=4,
    num_query_groups=2,
    max_position_embeddings=64,
)
WINDOW = 33


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("gpu-data")
    rng = np.random.default_rng(11)
    # Learnable text: a repeated random phrase with noise, so losses fall well below log(vocab).
    phrase = rng.integers(0, SHAPE.vocab_size, size=WINDOW * 2)
    starts = rng.integers(0, WINDOW, size=64)
    tokens = np.stack([phrase[s : s + WINDOW] for s in starts])
    noise = rng.random(tokens.shape) < 0.1
    tokens[noise] = rng.integers(0, SHAPE.vocab_size, size=int(noise.sum()))
    write_shard(root / "00000", tokens, None, SHAPE.vocab_size, n_documents=len(tokens), n_dropped=0)
    ref = (2.0 + rng.random(tokens.shape)).astype(np.float16)
    ref[:, 0] = np.nan
    np.save(root / "ref.npy", ref)
    return {"shards": [str(root / "00000")], "ref": [str(root / "ref.npy")]}


def spec(data: dict, out: Path, **training) -> dict:
    return dict(
        shape=SHAPE.to_dict(),
        training={
            "steps": 6,
            "global_batch": 8,
            "micro_batch": 2,
            "lr": 3e-3,
            "warmup_steps": 1,
            "seed": 5,
            "tokens": "slm",
        }
        | training,
        shards=data["shards"],
        ref_losses=data["ref"],
        out_dir=str(out / "model"),
        train_log=str(out / "log.jsonl"),
        summary=str(out / "summary.json"),
        checkpoints=str(out / "ckpt"),
    )


def train(spec_dict: dict, gpus: int, extra_env: dict | None = None) -> dict:
    """Run one training in fresh processes: ``gpus`` 0 = CPU, 1 = one GPU, more = torchrun."""
    path = Path(spec_dict["checkpoints"]).with_suffix(".spec.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec_dict))
    env = {**os.environ, **(extra_env or {})}
    if gpus == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
    if gpus <= 1:
        cmd = [sys.executable, "-m", "rhocluster.training.jobs", str(path)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
               "-m", "rhocluster.training.jobs", str(path)]  # fmt: skip
    subprocess.run(cmd, env=env, check=True)
    return json.loads(Path(spec_dict["summary"]).read_text())


def log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "model" / "model.safetensors")


@pytest.fixture(scope="module")
def init(data, tmp_path_factory) -> str:
    """Initial weights shared by every run (built on the host, as the CPU path does)."""
    out = tmp_path_factory.mktemp("gpu-init")
    code = (
        "import sys; from rhocluster.model.megatron import build_gpt_model, init_distributed;"
        "from rhocluster.model.mcore_format import save_mcore; from rhocluster.model.shape import LlamaShape;"
        f"s = LlamaShape.from_dict({SHAPE.to_dict()!r}); init_distributed(0);"
        f"save_mcore(build_gpt_model(s).state_dict(), s, {str(out / 'init')!r})"
    )
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, check=True)
    return str(out / "init")


# adam_eps far above |grad| makes each update ~lr * clipped gradient, so kernels' rounding differences
# stay rounding-sized (no sign-like amplification where a gradient is ~0); all tokens, so no SLM tie
# can fall differently.
EXACT = {"lr": 1.0, "adam_eps": 1.0, "grad_clip": 0.1, "tokens": "all"}
NO_TF32 = {"NVIDIA_TF32_OVERRIDE": "0"}


def assert_same_training(out_a: Path, out_b: Path, init: str) -> None:
    for a, b in zip(log(out_a), log(out_b), strict=True):
        for key in ("loss", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), (a["step"], key)
    w0, wa, wb = load_file(Path(init) / "model.safetensors"), weights(out_a), weights(out_b)
    assert wa.keys() == wb.keys()
    for key in wa:
        if wa[key].dim() == 2:
            assert (wa[key] - w0[key]).abs().max() > 1e-3, key  # moved well beyond the tolerance
        torch.testing.assert_close(wb[key], wa[key], rtol=0, atol=1e-4)


def test_fp32_on_one_gpu_matches_the_cpu_path(data, init, tmp_path):
    """Same weights, data and schedule: the GPU run (nccl, Megatron DDP + distributed optimizer, TE
    spec when importable) follows the CPU run (gloo, host modules, torch AdamW)."""
    cpu = train(spec(data, tmp_path / "cpu", **EXACT) | {"init": init}, gpus=0)
    gpu = train(spec(data, tmp_path / "gpu", **EXACT) | {"init": init}, gpus=1, extra_env=NO_TF32)
    assert gpu["tokens_seen"] == cpu["tokens_seen"]
    assert_same_training(tmp_path / "cpu", tmp_path / "gpu", init)


def test_bf16_slm_training_learns_and_resumes_from_its_checkpoint(data, init, tmp_path):
    """bf16 with SLM on one GPU: the loss falls, SLM keeps its ratio, and a run restarted from its
    step-3 checkpoint ends where the uninterrupted run ends."""
    training = {"bf16": True, "checkpoint_every": 3, "steps": 8, "peak_tflops": 989.0}
    full = train(spec(data, tmp_path / "full", **training) | {"init": init}, gpus=1)
    records = log(tmp_path / "full")
    assert records[-1]["loss"] < records[0]["loss"] - 0.5
    assert all(abs(r["kept_fraction"] - 0.6) < 0.02 for r in records)
    assert 0 < records[-1]["mfu"] < 1 and records[-1]["tokens_per_s"] > 0
    killed = spec(data, tmp_path / "killed", **training) | {"init": init, "keep_checkpoints": True}
    train(killed, gpus=1)
    (tmp_path / "killed" / "model" / "model.safetensors").unlink()
    shutil.rmtree(tmp_path / "killed" / "ckpt" / "step_00000006")  # as if killed before step 6 saved
    resumed = train(killed, gpus=1)
    assert resumed["final_loss"] == pytest.approx(full["final_loss"], rel=1e-3)
    a, b = weights(tmp_path / "full"), weights(tmp_path / "killed")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-2)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
@pytest.mark.parametrize("parallel", [{}, {"tensor_parallel": 2}, {"pipeline_parallel": 2}])
def test_two_gpus_match_one(data, init, tmp_path, parallel):
    """Data, tensor and pipeline parallelism over 2 GPUs (nccl) train like one GPU (fp32)."""
    train(spec(data, tmp_path / "one", **EXACT) | {"init": init}, gpus=1, extra_env=NO_TF32)
    two = train(spec(data, tmp_path / "two", **EXACT, **parallel) | {"init": init}, gpus=2, extra_env=NO_TF32)
    assert two["data_parallel"] == (1 if parallel else 2)
    assert_same_training(tmp_path / "one", tmp_path / "two", init)


def test_transformer_engine_spec_matches_the_local_spec():
    """The TE layer spec computes the same logits as the local spec from the same weights."""
    code = r"""
import torch
from rhocluster.model.megatron import build_gpt_model, init_distributed, lm_forward, _transformer_engine_available
from rhocluster.model.mcore_format import load_into_model
from rhocluster.model.shape import LlamaShape
if not _transformer_engine_available():
    print("SKIP"); raise SystemExit(0)
s = LlamaShape.from_dict(%r)
init_distributed(0)
local = build_gpt_model(s, transformer_engine=False).cuda()
te = build_gpt_model(s, transformer_engine=True).cuda()
state = {k: v for k, v in local.state_dict().items() if torch.is_tensor(v) and not k.endswith("_extra_state")}
load_into_model(te, state, s, s)
tokens = torch.randint(0, s.vocab_size, (2, 16), device="cuda")
with torch.no_grad():
    a, b = lm_forward(local, tokens), lm_forward(te, tokens)
torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)
print("OK")
""" % (SHAPE.to_dict(),)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    if out.stdout.strip().endswith("SKIP"):
        pytest.skip("transformer_engine is not importable")
    assert out.stdout.strip().endswith("OK"), out.stdout + out.stderr
