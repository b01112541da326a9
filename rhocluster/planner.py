"""Resource plan of a workflow config: jobs, GPU-hours, disk and memory per stage, before running it.

FLOPs come from the model shape (``LlamaShape.num_parameters``) and token counts: 6·N per trained
token and 2·N per forward token (``plan.flops: simple``, the convention of the Rho-1 and Chinchilla
papers), or ``rhocluster.training.flops`` (``detailed``: non-embedding weights plus causal attention).
GPU-hours are FLOPs / (peak FLOP/s x MFU). Token counts are read from the tokenized shards when they
exist (``results/<run>/shards/*/*.json``; a partial set is extrapolated), else taken from the config's
estimates. Every assumption is in the ``plan`` section of the config and printed with the plan.

    python -m rhocluster.planner --configfile config/rho1-tinyllama.yaml [--profile profiles/slurm]
        [--out results/rho1-tinyllama/plan]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rhocluster.clustering.sizing import kmeans_flops
from rhocluster.evaluation.benchmarks import HARNESS_ITEMS  # what evaluation.source fetch runs
from rhocluster.model.shape import LlamaShape
from rhocluster.variants import cpt_models, load_variants
from rhocluster.training.flops import forward_flops_per_token, train_flops_per_token

CHECKPOINT_BYTES_PER_PARAM = 16  # fp32 weights + Adam moments + bf16 copy, rounded up
KEEP_CHECKPOINTS = 2  # training.checkpoint.save_checkpoint(keep_last=2)
MODEL_BYTES_PER_PARAM = 4  # mcore and HF exports are float32


@dataclass
class Stage:
    """One stage of the DAG: its jobs per rule, compute and the disk it leaves behind."""

    name: str
    jobs: dict[str, int]
    gpu: bool = False  # runs on GPUs when resources.gpu_rules
    flops: float = 0.0
    gpu_hours: float = 0.0
    disk_bytes: float = 0.0
    memory_bytes: float = 0.0  # peak host memory of one job, where it is the binding constraint
    note: str = ""
    wall_hours: float | None = None  # per job, with the profile's GPUs per job


@dataclass
class Plan:
    """The whole plan: inputs (model size, tokens and where they came from), assumptions, stages."""

    run: str
    parameters: int
    tokens: dict[str, float]
    token_sources: dict[str, str]
    assumptions: dict[str, Any]
    stages: list[Stage] = field(default_factory=list)

    @property
    def total_gpu_hours(self) -> float:
        return sum(s.gpu_hours for s in self.stages)

    @property
    def total_disk_bytes(self) -> float:
        return sum(s.disk_bytes for s in self.stages)

    @property
    def total_jobs(self) -> int:
        return sum(sum(s.jobs.values()) for s in self.stages)

    def jobs_per_rule(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.stages:
            for rule, n in s.jobs.items():
                out[rule] = out.get(rule, 0) + n
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "total_gpu_hours": self.total_gpu_hours,
            "total_disk_bytes": self.total_disk_bytes,
            "total_jobs": self.total_jobs,
            "jobs_per_rule": self.jobs_per_rule(),
        }


# --- inputs --------------------------------------------------------------------------------------


def shard_ids(n: int) -> list[str]:
    return [f"{i:05d}" for i in range(n)]


def shard_lists(config: dict) -> dict[str, list[str]]:
    """Shard ids per split, as rules/common.smk defines them."""
    data = config["data"]
    if data["source"] == "hf":
        web = data["web"]
        return {
            "web": shard_ids(web.get("use_shards") or web["num_shards"]),
            "hq": shard_ids(data["hq"]["num_shards"]),
            "pretrain": [],
            "heldout_web": shard_ids(web.get("heldout_shards", 0)),
            "heldout_hq": shard_ids(1 if data["hq"].get("heldout_docs", 0) else 0),
        }
    syn = data.get("synthetic", {})
    return {
        "web": shard_ids(syn.get("web_shards", 4)),
        "hq": ["00000"],
        "pretrain": shard_ids(syn.get("pretrain_shards", 2)),
        "heldout_web": shard_ids(1 if syn.get("heldout_web_docs", 0) else 0),
        "heldout_hq": shard_ids(1 if syn.get("heldout_hq_docs", 0) else 0),
    }


def _estimated_tokens(config: dict, split: str, n_shards: int) -> tuple[float, str]:
    data, plan = config["data"], config["plan"]
    if data["source"] == "hf":
        if split in ("web", "heldout_web"):
            if "approx_tokens" not in data["web"]:
                raise ValueError("data.web.approx_tokens is needed to plan before the web shards exist")
            # approx_tokens is the whole corpus, cut into num_shards ranges (plus the held-out ones)
            part = n_shards / (data["web"]["num_shards"] + data["web"].get("heldout_shards", 0))
            return float(data["web"]["approx_tokens"]) * part, "config estimate (data.web.approx_tokens)"
        if split == "heldout_hq":
            docs = data["hq"].get("heldout_docs", 0)
            return docs * plan["tokens_per_doc"], f"estimate ({docs} documents x plan.tokens_per_doc)"
        if split == "hq":
            sets = data["hq"]["datasets"]
            missing = [d["name"] for d in sets if "approx_tokens" not in d]
            if missing:
                raise ValueError(f"data.hq.datasets {missing} lack approx_tokens, needed to plan before tokenizing")
            return float(sum(d["approx_tokens"] for d in sets)), "config estimate (data.hq.datasets[*].approx_tokens)"
        return 0.0, "none"
    syn = data.get("synthetic", {})
    docs = {
        "web": n_shards * syn.get("web_docs_per_shard", 300),
        "hq": syn.get("hq_docs", 600),
        "pretrain": n_shards * syn.get("pretrain_docs_per_shard", 600),
        "heldout_web": syn.get("heldout_web_docs", 0),
        "heldout_hq": syn.get("heldout_hq_docs", 0),
    }[split]
    return docs * plan["tokens_per_doc"], f"estimate ({docs} generated documents x plan.tokens_per_doc)"


def token_counts(config: dict, results: Path | None) -> tuple[dict[str, float], dict[str, str]]:
    """Tokens stored per split (windows x (seq_len + 1)): measured from shard metadata where shards
    exist (extrapolated from a partial set), else estimated from the config."""
    tokens, sources = {}, {}
    for split, shards in shard_lists(config).items():
        if not shards:
            tokens[split], sources[split] = 0.0, "none"
            continue
        metas = []
        if results is not None:
            for shard in shards:
                meta = results / "shards" / split / f"{shard}.json"
                if meta.is_file():
                    metas.append(json.loads(meta.read_text()))
        if metas:
            measured = sum(m["n_windows"] * m["seq_len"] for m in metas)
            tokens[split] = measured * len(shards) / len(metas)
            sources[split] = f"measured on {len(metas)} of {len(shards)} shards"
        else:
            tokens[split], sources[split] = _estimated_tokens(config, split, len(shards))
    return tokens, sources


def profile_gpus(profile_dir: Path | str) -> dict[str, int]:
    """GPUs per job of each rule from a profile's set-resources (nodes x per-node gres/gpus)."""
    import yaml

    from rhocluster.preflight import gpu_count

    path = Path(profile_dir)
    path = path / "config.yaml" if path.is_dir() else path
    prof = yaml.safe_load(path.read_text()) or {}
    out = {}
    for rule, res in (prof.get("set-resources") or {}).items():
        out[rule] = gpu_count(res) * int(res.get("nodes", 1))
    return out


# --- the plan ------------------------------------------------------------------------------------


def _flops_per_token(config: dict, shape: LlamaShape) -> tuple[float, float]:
    n = shape.num_parameters()
    if config["plan"]["flops"] == "detailed":
        seq = config["data"]["seq_len"]
        return train_flops_per_token(shape, seq), forward_flops_per_token(shape, seq)
    return 6.0 * n, 2.0 * n


def _trained_tokens(training: dict, seq_len: int) -> float:
    return float(training["steps"]) * training["global_batch"] * seq_len


def _eval_items(config: dict, benchmark: str) -> int:
    ev = config["evaluation"]
    n = ev.get("tiny_items_per_benchmark", 12) if ev["source"] == "tiny" else HARNESS_ITEMS[benchmark]
    return min(n, ev["limit"]) if ev.get("limit") else n


def _representation_depth(layer: int | str, n_layers: int) -> float:
    """Fraction of the decoder layers a pass up to ``scoring.layer`` runs (as scoring.forward resolves it)."""
    if layer == "middle":
        return (n_layers // 2) / n_layers
    idx = int(layer) + n_layers + 1 if int(layer) < 0 else int(layer)
    return min(idx, n_layers) / n_layers


def _micro_batches_per_rank(training: dict, processes: int) -> int:
    """Micro-batches each data-parallel rank runs per step (``TrainConfig.grad_accumulation``)."""
    model_parallel = training.get("tensor_parallel", 1) * training.get("pipeline_parallel", 1)
    data_parallel = max(1, processes // model_parallel)
    return max(1, training["global_batch"] // (data_parallel * training["micro_batch"]))


def pipeline_efficiency(training: dict, processes: int) -> float:
    """Busy fraction of a 1F1B pipeline of P stages running M micro-batches per step: M / (M + P - 1)
    (the warm-up and drain bubbles; 1 without pipeline parallelism)."""
    stages = training.get("pipeline_parallel", 1)
    m = _micro_batches_per_rank(training, processes)
    return m / (m + stages - 1)


def slm_ranking_pass(training: dict, processes: int) -> bool:
    """Whether SLM ranks the global batch in a forward-only pass before training on it: with several
    micro-batches per rank the trainer cannot keep every micro-batch's graph until the ranking."""
    return _micro_batches_per_rank(training, processes) > 1


def make_plan(config: dict, results: Path | None = None, gpus_per_job: dict[str, int] | None = None) -> Plan:
    """The plan of a validated config (schema defaults filled in); ``results`` is ``results/<run>``."""
    p = config["plan"]
    shape = LlamaShape.from_dict(dict(config["model"]))
    n = shape.num_parameters()
    train_fpt, fwd_fpt = _flops_per_token(config, shape)
    peak = p["peak_tflops"] * 1e12
    seq = config["data"]["seq_len"]
    shards = shard_lists(config)
    s_web, s_hq, s_pre = len(shards["web"]), len(shards["hq"]), len(shards["pretrain"])
    s_held = len(shards["heldout_web"]) + len(shards["heldout_hq"])
    tokens, sources = token_counts(config, results)
    t_web = tokens["web"]
    t_held = tokens["heldout_web"] + tokens["heldout_hq"]
    rows = load_variants(config)
    variants = list(rows)
    cpt_runs = cpt_models(config)  # every variant once per seed
    cluster_variants = [v for v, row in rows.items() if row.uses_tree]
    models = ["base", "reference", *cpt_runs]
    eval_models = [m for m in models if config["evaluation"]["seeds"] == "all" or m not in cpt_runs or cpt_runs[m].replicate == 0]
    benchmarks = list(config["evaluation"]["benchmarks"])
    levels = config["clustering"]["levels"]
    scoring = config["scoring"]
    proj = scoring.get("projection", {})
    dim = shape.hidden_size if proj.get("kind", "pca") == "none" else proj.get("dim", 32)
    token_bytes = 2 if shape.vocab_size < 65500 else 4
    hf = config["data"]["source"] == "hf"
    model_bytes = MODEL_BYTES_PER_PARAM * n
    ckpt_bytes = KEEP_CHECKPOINTS * CHECKPOINT_BYTES_PER_PARAM * n

    def hours(flops: float, mfu: float) -> float:
        return flops / (peak * mfu) / 3600

    gpu_rules = config.get("resources", {}).get("gpu_rules", False)

    def processes(rule: str) -> int:
        """Training processes of a job of ``rule``: its GPUs (from the profile), or 1 without."""
        return max(1, (gpus_per_job or {}).get(rule, 1)) if gpu_rules else 1

    def train_hours(flops: float, section: str, rule: str) -> float:
        return hours(flops, p["mfu_train"]) / pipeline_efficiency(config[section]["training"], processes(rule))

    def search_hours(flops: float) -> float:
        return flops / (p["search_tflops"] * 1e12) / 3600

    stages: list[Stage] = []
    # Downloads and documents.
    if hf:
        fetch_jobs = {"fetch_owm": 1, "fetch_hq_dataset": len(config["data"]["hq"]["datasets"])}
        download = (t_web + tokens["hq"]) * p["download_bytes_per_token"]
        if config["base"].get("hub"):
            fetch_jobs["fetch_base_model"] = 1
            download += model_bytes
        stages.append(Stage("fetch (local rules)", fetch_jobs, disk_bytes=download, note="hub.cache_dir"))
        prepare = {"prepare_web": s_web + len(shards["heldout_web"]), "prepare_hq": 1}
    else:
        prepare = {"prepare_corpus": s_web + s_hq + s_pre + s_held}
    text_tokens = t_web + tokens["hq"] + tokens["pretrain"] + t_held
    stages.append(Stage("prepare documents", prepare, disk_bytes=text_tokens * p["text_bytes_per_token"]))
    tokenizer_rule = "import_tokenizer" if config["tokenizer"]["source"] == "hf" else "train_tokenizer"
    stages.append(
        Stage(
            "tokenize",
            {tokenizer_rule: 1, "tokenize": s_web + s_hq + s_pre + s_held},
            disk_bytes=text_tokens * (token_bytes + 1),  # token ids + uint8 labels
        )
    )
    # Models.
    base = Stage("base model", {"pretrain_base": 1}, disk_bytes=model_bytes)
    if config["base"]["source"] == "pretrain":
        base.gpu = True
        base.flops = train_fpt * _trained_tokens(config["base"]["training"], seq)
        base.gpu_hours = train_hours(base.flops, "base", "pretrain_base")
        base.disk_bytes += ckpt_bytes
    else:
        base.note = "imports the HF weights (CPU)"
    stages.append(base)
    ref_tokens = _trained_tokens(config["reference"]["training"], seq)
    ref = Stage("train reference", {"train_reference": 1}, gpu=True, flops=train_fpt * ref_tokens)
    ref.gpu_hours = train_hours(ref.flops, "reference", "train_reference")
    ref.disk_bytes = model_bytes + ckpt_bytes
    if tokens["hq"]:
        epochs = ref_tokens / (tokens["hq"] * seq / (seq + 1))
        ref.note = f"{_count(ref_tokens)} tokens = {epochs:.2f} epochs of the HQ mixture"
    stages.append(ref)
    # Scoring, clustering, selection.
    # scoring.fused_pass (rules/scoring.smk): assign's pass also writes the reference loss of the
    # variants using the tree, the embedding sample comes from embed_sample (the sampled windows only),
    # and score_reference runs for the SLM and top-excess rows alone.
    fused = scoring.get("fused_pass", False)
    # score_reference's loss is read by the SLM and top-excess rows, and by the balanced excess-loss
    # rows unless fused_pass gives them assign's (the embedding sample comes from embed_sample)
    own_ref_loss = any(row.tokens == "slm" or row.mask == "top_excess" for row in rows.values())
    leaf_excess = any(row.leaf_policy == "excess_loss" for row in rows.values())
    score_jobs = {"score_reference": s_web} if own_ref_loss or (leaf_excess and not fused) else {}
    if any(row.ranks_fixed_excess for row in rows.values()):
        score_jobs["score_base"] = s_web
    sample = scoring.get("sample_tokens_per_shard", 3000) * s_web
    score = Stage("score (reference / base loss)", score_jobs, gpu=True)
    score.flops = fwd_fpt * t_web * len(score_jobs)
    score.disk_bytes = 2 * t_web * len(score_jobs)
    depth = _representation_depth(scoring.get("layer", "middle"), shape.num_layers)
    if cluster_variants:
        # the sample comes from embed_sample: the windows holding sampled tokens, up to the layer
        score.jobs["embed_sample"] = s_web
        windows = scoring.get("sample_windows_per_shard")
        window_tokens = t_web / max(s_web, 1) / (seq + 1)
        sampled = t_web if not windows else min(windows, window_tokens) * (seq + 1) * s_web
        score.flops += depth * fwd_fpt * sampled
    if cluster_variants:
        score.disk_bytes += sample * shape.hidden_size * 2
    score.gpu_hours = hours(score.flops, p["mfu_forward"])
    if score.jobs:
        stages.append(score)
    if cluster_variants:
        stages.append(
            Stage(
                "fit projection",
                {"fit_projection": 1},
                disk_bytes=sample * dim * 4,
                memory_bytes=sample * shape.hidden_size * 4,
                note=f"{_count(sample)} sampled token embeddings held in fp32",
            )
        )
        # Each level: a fit on every point, then resampling_rounds fresh fits on the points closest to
        # the centroids; each fit seeds (k-means++), iterates and reassigns every point (clustering.sizing).
        cl = Stage("cluster levels", {"cluster_level": len(levels)}, gpu=True)
        points, parts = sample, {"seeding": 0.0, "lloyd": 0.0, "assign": 0.0}
        for lv in levels:
            cost = kmeans_flops(
                points, lv["k"], dim, n_iter=lv.get("n_iter", 50), init=lv.get("init", "kmeans++"),
                init_sample=lv.get("init_sample"), resampling_rounds=lv.get("resampling_rounds", 0),
                resampling_fraction=lv.get("resampling_fraction", 0.5),
                max_points_per_centroid=lv.get("max_points_per_centroid", 256),
            )
            for part in parts:
                parts[part] += cost[part]
            points = lv["k"]
        cl.flops = sum(parts.values())
        cl.gpu_hours = search_hours(cl.flops)
        fits = sum(1 + lv.get("resampling_rounds", 0) for lv in levels)
        cl.note = f"{fits} k-means fits; " + ", ".join(f"{part} {v / 1e15:.3g} PFLOP" for part, v in parts.items())
        cl.disk_bytes = sum(lv["k"] * dim * 4 for lv in levels)
        stages.append(cl)
        assign = Stage("assign leaves", {"assign": s_web}, gpu=True)
        search = 2.0 * t_web * levels[0]["k"] * dim
        # a pass up to the representation's layer; under fused_pass the loss pass too (the same pass
        # for position predict, a second, full-depth one for read)
        passes = depth
        if fused:
            passes = 1.0 if scoring.get("position", "read") == "predict" else 1.0 + depth
        assign.flops = passes * fwd_fpt * t_web + search
        assign.gpu_hours = hours(passes * fwd_fpt * t_web, p["mfu_forward"]) + search_hours(search)
        assign.disk_bytes = t_web * (4 + 2 + (2 if fused else 0))  # int32 leaf, fp16 distance (and loss)
        assign.note = f"nearest-centroid search: {search_hours(search):.1f} of these GPU-hours"
        stages.append(assign)
    # one mask per variant, or per seed where the mask is drawn at random (CptModel.mask_key)
    keys = {m.mask_key: m.variant.mask for m in cpt_runs.values() if m.variant.tokens == "mask"}
    masks = list(keys.values())
    per_variant = {"balanced": "select_cluster_tokens", "top_excess": "select_excess_tokens"}
    select_jobs: dict[str, int] = {}
    for kind in masks:
        rule, jobs = (per_variant[kind], 1) if kind in per_variant else ("random_mask", s_web)
        select_jobs[rule] = select_jobs.get(rule, 0) + jobs
    if select_jobs:
        static = len(masks)
        stages.append(Stage("select tokens (static masks)", select_jobs, disk_bytes=t_web * static))
    # CPT and evaluation.
    cpt_tokens = _trained_tokens(config["cpt"]["training"], seq)
    n_seeds = len(cpt_runs) // max(1, len(variants))
    cpt = Stage("train CPT variants", {"train_cpt": len(cpt_runs)}, gpu=True)
    cpt.flops = train_fpt * cpt_tokens * len(cpt_runs)
    cpt.note = f"{_count(cpt_tokens)} tokens per variant" + (f", {n_seeds} seeds each" if n_seeds > 1 else "")
    slm = [v for v, row in rows.items() if row.tokens == "slm"]
    if slm and slm_ranking_pass(config["cpt"]["training"], processes("train_cpt")):
        cpt.flops += len(slm) * n_seeds * fwd_fpt * cpt_tokens
        cpt.note += f"; {', '.join(slm)} also rank each global batch in a forward-only pass"
    cpt.gpu_hours = train_hours(cpt.flops, "cpt", "train_cpt")
    cpt.disk_bytes = len(cpt_runs) * (model_bytes + ckpt_bytes)
    stages.append(cpt)
    # only the models the benchmarks evaluate are exported (the held-out loss reads mcore checkpoints)
    stages.append(Stage("export HF", {"export_hf": len(eval_models)}, disk_bytes=len(eval_models) * model_bytes))
    if s_held:
        held = Stage("held-out loss", {"score_heldout": len(models)}, gpu=True)
        held.flops = fwd_fpt * t_held * len(models)
        held.gpu_hours = hours(held.flops, p["mfu_forward"])
        held.note = f"{_count(t_held)} held-out tokens per model"
        stages.append(held)
    bench_rule = {"tiny": "tiny_benchmarks", "fetch": "fetch_benchmarks"}.get(config["evaluation"]["source"])
    ev_jobs = {**({bench_rule: 1} if bench_rule else {}), "normalize_benchmark": len(benchmarks)}
    ev_jobs["evaluate"] = len(eval_models)  # one job per model runs every benchmark
    items = sum(_eval_items(config, b) for b in benchmarks)
    ev = Stage("evaluate", ev_jobs, gpu=True)
    ev.flops = len(eval_models) * items * (p["eval_prompt_tokens"] + p["eval_generated_tokens"]) * fwd_fpt
    ev.gpu_hours = hours(ev.flops, p["mfu_eval"])
    ev.note = f"{items} items per model, its {len(benchmarks)} benchmarks in one job"
    stages.append(ev)
    if not config.get("resources", {}).get("gpu_rules", False):
        for s in stages:
            if s.gpu:
                s.gpu = False
                cpu = "CPU (resources.gpu_rules: false): hours are GPU-equivalent"
                s.note = f"{s.note}; {cpu}" if s.note else cpu
    for s in stages:
        g = max((gpus_per_job or {}).get(rule, 0) for rule in s.jobs)
        main_rule = max(s.jobs, key=lambda r: ((gpus_per_job or {}).get(r, 0) > 0, s.jobs[r]))  # the GPU rule
        if g and s.gpu_hours:
            s.wall_hours = s.gpu_hours / s.jobs[main_rule] / g
    assumptions = {
        k: p[k]
        for k in ("gpu", "peak_tflops", "mfu_train", "mfu_forward", "mfu_eval", "search_tflops", "flops")
    }
    assumptions.update(train_flops_per_token=train_fpt, forward_flops_per_token=fwd_fpt)
    return Plan(config["run"], n, tokens, sources, assumptions, stages)


# --- output --------------------------------------------------------------------------------------


def _size(b: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            return f"{b / scale:.1f} {unit}"
    return f"{b:.0f} B"


def _count(x: float) -> str:
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
            lines.append(f"| {split} | {_count(t)} | {plan.token_sources[split]} |")
    lines += [
        "",
        "| stage | jobs | GPU | PFLOP | GPU-hours | h per job | disk | note |",
        "|---|---|:-:|---:|---:|---:|---:|---|",
    ]
    for s in plan.stages:
        jobs = ", ".join(f"{r} x{n}" for r, n in s.jobs.items())
        wall = _num(s.wall_hours) if s.wall_hours is not None else ""
        note = s.note + (f"; {_size(s.memory_bytes)} RAM" if s.memory_bytes else "")
        lines.append(
            f"| {s.name} | {jobs} | {'yes' if s.gpu else ''} | {_num(s.flops / 1e15)} | {_num(s.gpu_hours)} | "
            f"{wall} | {_size(s.disk_bytes)} | {note} |"
        )
    lines += [
        f"| **total** | {plan.total_jobs} jobs | | {_num(sum(s.flops for s in plan.stages) / 1e15)} | "
        f"**{_num(plan.total_gpu_hours)}** | | **{_size(plan.total_disk_bytes)}** | |",
        "",
        "h per job: wall-clock hours of one job with the GPUs the profile gives it. Disk: what each stage "
        "leaves behind (downloads in hub.cache_dir, the rest under results/); intermediate files of "
        "finished stages can be removed once their consumers are done. Report-only jobs (tables, figures) "
        "are not listed.",
    ]
    return "\n".join(lines) + "\n"


def write_plan(plan: Plan, md_path: Path | str, json_path: Path | str) -> None:
    """Write the Markdown and JSON forms atomically."""
    from rhocluster.data.atomic import save_json, save_text

    save_text(md_path, render_markdown(plan))
    save_json(json_path, plan.to_dict())


def load_config(paths: Sequence[Path | str], schema: Path | str = "config/schema.yaml") -> dict:
    """Merge config files (later ones win, as Snakemake merges --configfile) and validate them against
    the workflow's schema, filling its defaults."""
    import yaml
    from snakemake.utils import update_config, validate

    config: dict = {}
    for path in paths:
        update_config(config, yaml.safe_load(Path(path).read_text()))
    validate(config, str(schema))
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print the plan of a config (and write plan.md / plan.json with --out)."""
    parser = argparse.ArgumentParser(prog="python -m rhocluster.planner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", nargs="+", type=Path, default=[Path("config/config.yaml")])
    parser.add_argument("--schema", type=Path, default=Path("config/schema.yaml"))
    parser.add_argument("--profile", type=Path, help="profile directory, for wall-clock hours per job")
    parser.add_argument("--results", type=Path, help="results/<run> directory to measure shards in")
    parser.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = parser.parse_args(argv)
    config = load_config(args.configfile, args.schema)
    results = args.results or Path("results") / config["run"]
    gpus = profile_gpus(args.profile) if args.profile else None
    plan = make_plan(config, results, gpus)
    if args.out:
        write_plan(plan, args.out.with_suffix(".md"), args.out.with_suffix(".json"))
    sys.stdout.write(render_markdown(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
