"""Throughput of our Megatron-core trainer against a plain Hugging Face training loop, on CPU or GPU.

Both train the same Llama shape from the same initial weights on the same windows in the same order,
with the same AdamW (torch's fused kernel, decay on matrices only), cosine schedule, gradient
clipping and micro-batching, for the same number of steps. Our side is
``rhocluster.training.trainer.train`` as the workflow runs it (data loading, token selection, logging
included); the HF side is ``LlamaForCausalLM`` (SDPA attention, no KV cache) with a plain
cross-entropy on its logits. Step times are taken between consecutive steps, alternating the two
loops over several rounds, and the median after warm-up is reported.

On CPU both loops run float32 and MFU divides model FLOPs (``training.flops``) by the peak of a large
fp32 GEMM measured on this machine with the same thread count. With CUDA our trainer runs as the
workflow runs it there (bf16 parameters, Megatron DDP + distributed optimizer, the Transformer Engine
spec when importable) and the HF loop runs float32 parameters under bf16 autocast (what HF's Trainer
does with ``bf16=True``); MFU divides by ``--peak-tflops`` (dense bf16 peak of one GPU: 989 for
H100/H200 SXM, 312 for A100). ``--shape tinyllama`` is the real TinyLlama-1.1B shape (use 2048-token
windows on a GPU).

    python bench/trainer.py OUT.json [--steps 20] [--rounds 3] [--threads 1]
    python bench/trainer.py OUT.json --shape tinyllama --seq 2048 --batch 16 --micro-batch 4  # GPU
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from rhocluster.model.convert import mcore_to_hf
from rhocluster.data.shards import write_shard
from rhocluster.model.megatron import build_gpt_model, init_distributed
from rhocluster.model.shape import TINYLLAMA, LlamaShape
from rhocluster.training.config import TrainConfig
from rhocluster.training.data import TokenStream
from rhocluster.training.flops import train_flops_per_token
from rhocluster.training.schedule import cosine_lr
from rhocluster.training.trainer import StepInfo, train

TINY = LlamaShape(
    vocab_size=1024,
    hidden_size=128,
    ffn_hidden_size=352,
    num_layers=4,
    num_attention_heads=4,
    num_query_groups=2,
    max_position_embeddings=512,
)


def gemm_peak_flops(n: int = 1024, repeats: int = 8) -> float:
    """Best fp32 FLOP/s of an n x n x n matmul on this machine (the MFU denominator)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def run_ours(
    shape: LlamaShape, cfg: TrainConfig, shard: Path, init: Path, work: Path
) -> tuple[list[float], list[float]]:
    """Step times (s) and losses of our trainer."""
    marks: list[float] = []
    losses: list[float] = []

    def hook(info: StepInfo) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        marks.append(time.perf_counter())
        losses.append(info.record["loss"])

    marks.append(time.perf_counter())
    train(
        shape,
        cfg,
        TokenStream([shard], with_labels=False),
        out_dir=work / "model",
        ckpt_root=work / "ckpt",
        log_path=work / "log.jsonl",
        summary_path=work / "summary.json",
        init_from=init,
        on_step=hook,
    )
    return list(np.diff(marks)), losses


def run_hf(shape: LlamaShape, cfg: TrainConfig, shard: Path, init_state: dict) -> tuple[list[float], list[float]]:
    """Step times (s) and losses of a plain LlamaForCausalLM loop on the same data and optimizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    model = LlamaForCausalLM(LlamaConfig(**shape.to_hf_config(), attn_implementation="sdpa"))
    model.load_state_dict(init_state)
    model.to(device).train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps,
        fused=True,  # the implementation our trainer uses on CPU (rhocluster.training.optimizer.Optimizer)
    )
    stream = TokenStream([shard], with_labels=False)
    accum = cfg.global_batch // cfg.micro_batch
    marks, losses = [time.perf_counter()], []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(
                step, lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps, total_steps=cfg.steps
            )
        ids = stream.sample_ids(cfg.seed, step * cfg.global_batch, cfg.global_batch)
        opt.zero_grad()
        total = 0.0
        for i in range(0, cfg.global_batch, cfg.micro_batch):
            tokens = torch.from_numpy(stream.batch(ids[i : i + cfg.micro_batch]).tokens).to(device)
            # use_cache=False: LlamaConfig defaults to use_cache=True, which makes every training forward
            # build a DynamicCache and concatenate each layer's keys and values into it, work a training
            # loop has no use for (our trainer keeps no KV cache).
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                logits = model(input_ids=tokens[:, :-1], use_cache=False).logits
            # Every next token is a target, as in our trainer (HF's labels= would drop the last one).
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())
            (loss / accum).backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(float(total / accum))  # synchronises with the device
        marks.append(time.perf_counter())
    del model, opt
    if cuda:
        torch.cuda.empty_cache()
    return list(np.diff(marks)), losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="JSON file for the results")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="first steps of each run left out")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each loop")
    parser.add_argument("--batch", type=int, default=16, help="windows per step")
    parser.add_argument("--seq", type=int, default=128, help="prediction targets per window")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--shape", choices=("tiny", "tinyllama"), default="tiny", help="model shape")
    parser.add_argument("--micro-batch", type=int, help="windows per forward pass (default: --batch)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="GPU dense bf16 peak, for MFU")
    args = parser.parse_args(argv)

    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    shape = TINYLLAMA if args.shape == "tinyllama" else TINY
    if args.seq > shape.max_position_embeddings:
        parser.error(f"--seq {args.seq} exceeds the shape's {shape.max_position_embeddings} positions")
    cfg = TrainConfig(
        steps=args.steps,
        global_batch=args.batch,
        micro_batch=args.micro_batch or args.batch,
        lr=1e-3 if shape is TINY else 8e-5,
        min_lr=1e-4 if shape is TINY else 8e-6,
        warmup_steps=2,
        seed=0,
        log_every=args.steps,
        bf16=cuda,
        peak_tflops=args.peak_tflops,
    )
    flops_per_token = train_flops_per_token(shape, args.seq)
    tokens_per_step = args.batch * args.seq
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rng = np.random.default_rng(0)
        windows = rng.integers(0, shape.vocab_size, size=(args.steps * args.batch, args.seq + 1))
        write_shard(work / "shard", windows, None, shape.vocab_size, n_documents=len(windows), n_dropped=0)
        init_distributed(cfg.seed)
        from rhocluster.model.mcore_format import save_mcore

        initial = {
            k: v.to("cpu", torch.float32)
            for k, v in build_gpt_model(shape).state_dict().items()
            if torch.is_tensor(v) and not k.endswith("_extra_state")
        }
        save_mcore(initial, shape, work / "init")
        hf_init = mcore_to_hf(initial, shape)
        peak = args.peak_tflops * 1e12 if cuda else gemm_peak_flops()
        times: dict[str, list[float]] = {"megatron": [], "hf": []}
        losses: dict[str, list[float]] = {}
        for r in range(args.rounds):
            t, losses["megatron"] = run_ours(shape, cfg, work / "shard", work / "init", work / f"ours{r}")
            times["megatron"] += t[args.warmup :]
            t, losses["hf"] = run_hf(shape, cfg, work / "shard", hf_init)
            times["hf"] += t[args.warmup :]

    rows = {}
    for name, ts in times.items():
        step = statistics.median(ts)
        tps = tokens_per_step / step
        mfu = tps * flops_per_token / peak
        rows[name] = {"step_ms": 1e3 * step, "tokens_per_s": tps, "mfu": mfu, "steps_timed": len(ts)}
    ratio = rows["megatron"]["tokens_per_s"] / rows["hf"]["tokens_per_s"]
    result = {
        "shape": shape.to_dict(),
        "batch": args.batch,
        "seq": args.seq,
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "micro_batch": cfg.micro_batch,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "precision": "bf16" if cuda else "fp32",
        "peak_gflops": peak / 1e9,
        "peak_source": "--peak-tflops" if cuda else "measured fp32 GEMM",
        "train_flops_per_token": flops_per_token,
        "loops": rows,
        "speed_ratio": ratio,
        "first_step_loss": {k: v[0] for k, v in losses.items()},
        "max_loss_gap": max(abs(a - b) for a, b in zip(losses["megatron"], losses["hf"])),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    where = (f"{result['machine']}, bf16, peak {peak / 1e12:.0f} TFLOP/s" if cuda
             else f"CPU, {args.threads} thread(s), fp32 GEMM peak {peak / 1e9:.1f} GFLOP/s")
    print(f"{where}; {shape.num_parameters():,} params, batch {args.batch} x {args.seq} tokens "
          f"(micro-batch {cfg.micro_batch}), median of {rows['hf']['steps_timed']} steps\n")
    print("| training loop | step (ms) | tokens/s | MFU |")
    print("|---|---:|---:|---:|")
    labels = {"megatron": "rhocluster trainer (megatron-core GPTModel)", "hf": "plain HF LlamaForCausalLM loop"}
    for name, label in labels.items():
        row = rows[name]
        print(f"| {label} | {row['step_ms']:.1f} | {row['tokens_per_s']:,.0f} | {100 * row['mfu']:.1f}% |")
    print(f"| **ratio (ours / HF)** | | **{ratio:.2f}x** | |")
    print(f"\nfirst-step loss: ours {losses['megatron'][0]:.5f}, HF {losses['hf'][0]:.5f}; "
          f"largest gap over {args.steps} steps {result['max_loss_gap']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
