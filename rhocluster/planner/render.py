"""The plan as Markdown (printed, plan.md) and JSON (plan.json)."""

from __future__ import annotations

from pathlib import Path

from rhocluster.planner.stages import Plan


def human_size(b: float) -> str:
    """Bytes with a decimal unit: 1.5 GB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            return f"{b / scale:.1f} {unit}"
    return f"{b:.0f} B"


def human_count(x: float) -> str:
    """A count with a decimal suffix, 3 significant digits: 15B."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def render_markdown(plan: Plan) -> str:
    """The plan as a Markdown report."""
    a = plan.assumptions
    lines = [
        f"# Resource plan: run `{plan.run}`",
        "",
        f"Model: {plan.parameters:,} parameters. FLOPs per token: {a['train_flops_per_token']:.4g} trained, "
        f"{a['forward_flops_per_token']:.4g} forward ({a['flops']}). GPU: {a['gpu']}, {a['peak_tflops']:g} TFLOP/s "
        f"peak; MFU {a['mfu_train']:g} training, {a['mfu_forward']:g} forward, {a['mfu_eval']:g} evaluation; "
        f"k-means and centroid search at {a['search_tflops']:g} TFLOP/s.",
        "",
        "| split | tokens | source |",
        "|---|---:|---|",
    ]
    for split, t in plan.tokens.items():
        if t:
            lines.append(f"| {split} | {human_count(t)} | {plan.token_sources[split]} |")
    lines += [
        "",
        "| stage | jobs | GPU | PFLOP | GPU-hours | h per job | disk | note |",
        "|---|---|:-:|---:|---:|---:|---:|---|",
    ]
    for s in plan.stages:
        jobs = ", ".join(f"{r} x{n}" for r, n in s.jobs.items())
        wall = _num(s.wall_hours) if s.wall_hours is not None else ""
        note = s.note + (f"; {human_size(s.memory_bytes)} RAM" if s.memory_bytes else "")
        lines.append(
            f"| {s.name} | {jobs} | {'yes' if s.gpu else ''} | {_num(s.flops / 1e15)} | {_num(s.gpu_hours)} | "
            f"{wall} | {human_size(s.disk_bytes)} | {note} |"
        )
    lines += [
        f"| **total** | {plan.total_jobs} jobs | | {_num(sum(s.flops for s in plan.stages) / 1e15)} | "
        f"**{_num(plan.total_gpu_hours)}** | | **{human_size(plan.total_disk_bytes)}** | |",
        "",
        "Jobs: Snakemake's own count, a dry run of the config (`all` left out). h per job: wall-clock hours "
        "of one job with the GPUs the config gives it (resources). Disk: what each stage leaves behind (downloads in "
        "hub.cache_dir, the rest under results/); intermediate files of finished stages can be removed once "
        "their consumers are done.",
    ]
    return "\n".join(lines) + "\n"


def write_plan(plan: Plan, md_path: Path | str, json_path: Path | str) -> None:
    """Write the Markdown and JSON forms atomically."""
    from rhocluster.common.atomic import save_json, save_text

    save_text(md_path, render_markdown(plan))
    save_json(json_path, plan.to_dict())
