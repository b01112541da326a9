"""Per-job costs of the workflow's rules, and the plan they add up to with the DAG's job counts.

FLOPs come from the model shape (``LlamaShape.num_parameters``) and token counts: 6·N per trained
token and 2·N per forward token (``plan.flops: simple``, the convention of the Rho-1 and Chinchilla
papers), or ``rhocluster.training.flops`` (``detailed``: non-embedding weights plus causal attention).
GPU-hours are FLOPs / (peak FLOP/s x MFU). Which rules run and how often is Snakemake's answer (a dry
run, ``rhocluster.planner.dag``); this module only says what one job of each rule costs, and each
stage's figures are those per-job costs times the DAG's counts.
"""

from __future__ import annotations

from pathlib import Path

from rhocluster.clustering.sizing import kmeans_flops
from rhocluster.clustering.trees import tree_seeds
from rhocluster.evaluation.benchmarks import HARNESS_ITEMS  # what evaluation.source fetch runs
from rhocluster.model.shape import LlamaShape
from rhocluster.planner.inputs import config_gpus, shard_lists, token_counts
from rhocluster.planner.render import human_count
from rhocluster.planner.stages import Plan, Stage, StageSpec, group_jobs
from rhocluster.training.flops import forward_flops_per_token, train_flops_per_token
from rhocluster.workflow.variants import cpt_seeds, load_variants

CHECKPOINT_BYTES_PER_PARAM = 16  # fp32 weights + Adam moments + bf16 copy, rounded up
KEEP_CHECKPOINTS = 2  # training.checkpoint.save_checkpoint(keep_last=2)
MODEL_BYTES_PER_PARAM = 4  # mcore and HF exports are float32


def flops_per_token(config: dict, shape: LlamaShape) -> tuple[float, float]:
    """FLOPs per trained and per forward token under ``plan.flops``."""
    n = shape.num_parameters()
    if config["plan"]["flops"] == "detailed":
        seq = config["data"]["seq_len"]
        return train_flops_per_token(shape, seq), forward_flops_per_token(shape, seq)
    return 6.0 * n, 2.0 * n


def trained_tokens(training: dict, seq_len: int) -> float:
    """Tokens one training run trains on: steps x global batch x seq_len."""
    return float(training["steps"]) * training["global_batch"] * seq_len


def eval_items(config: dict, benchmark: str) -> int:
    """Items of one benchmark that an evaluation runs (evaluation.limit applied)."""
    ev = config["evaluation"]
    n = ev.get("tiny_items_per_benchmark", 12) if ev["source"] == "tiny" else HARNESS_ITEMS[benchmark]
    return min(n, ev["limit"]) if ev.get("limit") else n


def representation_depth(layer: int | str, n_layers: int) -> float:
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


class CostModel:
    """What one job of each rule costs under a config, given its token counts; one method per stage
    fills in the stage's FLOPs, GPU-hours, disk and memory as per-job cost x the stage's job counts.
    ``jobs`` is the whole DAG's, for the costs that depend on another stage's count (the embedding
    sample is as large as its embed_sample jobs make it)."""

    def __init__(self, config: dict, jobs: dict[str, int], tokens: dict[str, float],
                 gpus_per_job: dict[str, int] | None = None) -> None:
        self.config, self.tokens = config, tokens
        self.p = config["plan"]
        self.shape = LlamaShape.from_dict(dict(config["model"]))
        self.n = self.shape.num_parameters()
        self.train_fpt, self.fwd_fpt = flops_per_token(config, self.shape)
        self.seq = config["data"]["seq_len"]
        self.shards = {split: len(ids) for split, ids in shard_lists(config).items()}
        # GPUs per job of each rule (nodes x gpus per node): the config's job sizes unless given
        self.gpus = config_gpus(config) if gpus_per_job is None else gpus_per_job
        self.model_bytes = MODEL_BYTES_PER_PARAM * self.n
        self.ckpt_bytes = KEEP_CHECKPOINTS * CHECKPOINT_BYTES_PER_PARAM * self.n
        self.scoring = config["scoring"]
        self.depth = representation_depth(self.scoring.get("layer", "middle"), self.shape.num_layers)
        proj = self.scoring.get("projection", {})
        self.dim = self.shape.hidden_size if proj.get("kind", "pca") == "none" else proj.get("dim", 32)
        # the token representations one tree is fitted on: embed_sample's sample of each shard it runs on
        self.sample = self.scoring.get("sample_tokens_per_shard", 3000) * jobs.get("embed_sample", 0)
        # the cluster trees (one per training seed unless clustering.trees: shared): each has its own
        # sample, projection and levels; embed_sample and assign serve every tree from one pass
        self.trees = len(tree_seeds(config, cpt_seeds(config))) if jobs.get("cluster_level") else 0

    def per_shard(self, *splits: str) -> float:
        """Tokens per shard of these splits (their tokens over their shards)."""
        n = sum(self.shards[s] for s in splits)
        return sum(self.tokens[s] for s in splits) / n if n else 0.0

    def hours(self, flops: float, mfu: float) -> float:
        """GPU-hours of ``flops`` at plan.peak_tflops x ``mfu``."""
        return flops / (self.p["peak_tflops"] * 1e12 * mfu) / 3600

    def search_hours(self, flops: float) -> float:
        """GPU-hours of k-means and centroid-search ``flops`` at plan.search_tflops."""
        return flops / (self.p["search_tflops"] * 1e12) / 3600

    def processes(self, rule: str) -> int:
        """Training processes of a job of ``rule``: its GPUs (resources.<rule>), or 1 without."""
        return max(1, self.gpus.get(rule, 0))

    def train_hours(self, flops: float, section: str, rule: str) -> float:
        """GPU-hours of training ``flops`` of config[section], pipeline bubbles included."""
        efficiency = pipeline_efficiency(self.config[section]["training"], self.processes(rule))
        return self.hours(flops, self.p["mfu_train"]) / efficiency

    # --- one method per stage --------------------------------------------------------------------

    def fetch(self, s: Stage) -> None:
        """Downloads: the web corpus, each HQ dataset (the mixture's mean), the base model."""
        j, bpt = s.jobs, self.p["download_bytes_per_token"]
        hq_sets = max(1, len(self.config["data"].get("hq", {}).get("datasets", [])))
        web = self.tokens["web"] * j.get("fetch_owm", 0)
        hq = self.tokens["hq"] / hq_sets * j.get("fetch_hq_dataset", 0)
        s.disk_bytes = bpt * (web + hq) + self.model_bytes * j.get("fetch_base_model", 0)

    def prepare(self, s: Stage) -> None:
        """Documents as text: one job per web shard (held-out ones too), one for the HQ mixture and its
        held-out documents, or one per shard of every split (synthetic corpus)."""
        j, t = s.jobs, self.tokens
        text = self.per_shard("web", "heldout_web") * j.get("prepare_web", 0)
        text += (t["hq"] + t["heldout_hq"]) * j.get("prepare_hq", 0)
        text += self.per_shard(*self.shards) * j.get("prepare_corpus", 0)
        s.disk_bytes = text * self.p["text_bytes_per_token"]

    def tokenize(self, s: Stage) -> None:
        """Token ids and uint8 labels of one shard per job."""
        token_bytes = 2 if self.shape.vocab_size < 65500 else 4
        s.disk_bytes = self.per_shard(*self.shards) * s.jobs.get("tokenize", 0) * (token_bytes + 1)

    def base(self, s: Stage) -> None:
        """The base model: pretrained here (GPU) or imported from the HF weights."""
        jobs = s.jobs["pretrain_base"]
        s.disk_bytes = self.model_bytes * jobs
        if self.config["base"]["source"] != "pretrain":
            s.note = "imports the HF weights (CPU)"
            return
        s.gpu = True
        s.flops = self.train_fpt * trained_tokens(self.config["base"]["training"], self.seq) * jobs
        s.gpu_hours = self.train_hours(s.flops, "base", "pretrain_base")
        s.disk_bytes += self.ckpt_bytes * jobs

    def reference(self, s: Stage) -> None:
        """The reference model, trained on the HQ mixture."""
        jobs = s.jobs["train_reference"]
        tokens = trained_tokens(self.config["reference"]["training"], self.seq)
        s.flops = self.train_fpt * tokens * jobs
        s.gpu_hours = self.train_hours(s.flops, "reference", "train_reference")
        s.disk_bytes = (self.model_bytes + self.ckpt_bytes) * jobs
        if self.tokens["hq"]:
            epochs = tokens / (self.tokens["hq"] * self.seq / (self.seq + 1))
            s.note = f"{human_count(tokens)} tokens = {epochs:.2f} epochs of the HQ mixture"

    def score(self, s: Stage) -> None:
        """Per web shard: a full forward pass for each loss (reference, base), and embed_sample's pass up
        to scoring.layer over the windows holding any tree's sampled tokens (the union of the trees' draws)."""
        per = self.per_shard("web")
        losses = s.jobs.get("score_reference", 0) + s.jobs.get("score_base", 0)
        s.flops = self.fwd_fpt * per * losses
        s.disk_bytes = 2 * per * losses  # fp16 loss per token
        embeds = s.jobs.get("embed_sample", 0)
        windows = self.scoring.get("sample_windows_per_shard")
        trees = max(1, self.trees)
        sampled = per if not windows else min(trees * windows, per / (self.seq + 1)) * (self.seq + 1)
        s.flops += self.depth * self.fwd_fpt * sampled * embeds
        s.disk_bytes += self.scoring.get("sample_tokens_per_shard", 3000) * self.shape.hidden_size * 2 * embeds * trees
        s.gpu_hours = self.hours(s.flops, self.p["mfu_forward"])

    def fit_projection(self, s: Stage) -> None:
        """The projection of the whole embedding sample, held in memory at once."""
        s.disk_bytes = self.sample * self.dim * 4 * s.jobs["fit_projection"]
        s.memory_bytes = self.sample * self.shape.hidden_size * 4
        s.note = f"{human_count(self.sample)} sampled token embeddings held in fp32"

    def cluster_levels(self, s: Stage) -> None:
        """One job per tree and level of clustering.levels: a k-means fit on every point, then
        resampling_rounds fresh fits on the points closest to the centroids; each fit seeds (k-means++),
        iterates and reassigns every point (clustering.sizing). Level 1 clusters the tree's sample, level l
        level l-1's centroids; every tree costs the same."""
        levels = self.config["clustering"]["levels"]
        points, parts = self.sample, {"seeding": 0.0, "lloyd": 0.0, "assign": 0.0}
        for lv in levels:
            cost = kmeans_flops(
                points, lv["k"], self.dim, n_iter=lv.get("n_iter", 50), init=lv.get("init", "kmeans++"),
                init_sample=lv.get("init_sample"), resampling_rounds=lv.get("resampling_rounds", 0),
                resampling_fraction=lv.get("resampling_fraction", 0.5),
                max_points_per_centroid=lv.get("max_points_per_centroid", 256),
            )
            for part in parts:
                parts[part] += cost[part]
            points = lv["k"]
        trees = max(1, s.jobs["cluster_level"] // len(levels))
        s.flops = trees * sum(parts.values())
        s.gpu_hours = self.search_hours(s.flops)
        fits = trees * sum(1 + lv.get("resampling_rounds", 0) for lv in levels)
        s.note = f"{trees} tree(s), {fits} k-means fits; " + ", ".join(
            f"{part} {trees * v / 1e15:.3g} PFLOP" for part, v in parts.items()
        )
        s.disk_bytes = trees * sum(lv["k"] * self.dim * 4 for lv in levels)

    def assign(self, s: Stage) -> None:
        """Per web shard: one pass up to the representation's layer (under fused_pass the loss pass too: the
        same pass for position predict, a second, full-depth one for read) and a nearest-centroid search in
        every tree."""
        jobs, per = s.jobs["assign"], self.per_shard("web")
        fused = self.scoring.get("fused_pass", False)
        passes = self.depth
        if fused:
            passes = 1.0 if self.scoring.get("position", "read") == "predict" else 1.0 + self.depth
        trees = max(1, self.trees)
        search = 2.0 * per * self.config["clustering"]["levels"][0]["k"] * self.dim * jobs * trees
        forward = passes * self.fwd_fpt * per * jobs
        s.flops = forward + search
        s.gpu_hours = self.hours(forward, self.p["mfu_forward"]) + self.search_hours(search)
        # int32 leaf and fp16 distance per tree (and the fp16 loss)
        s.disk_bytes = per * jobs * ((4 + 2) * trees + (2 if fused else 0))
        s.note = f"nearest-centroid search in {trees} tree(s): {self.search_hours(search):.1f} of these GPU-hours"

    def select(self, s: Stage) -> None:
        """A uint8 mask per token of the whole web corpus per select_tokens job (one per mask directory)."""
        s.disk_bytes = self.tokens["web"] * s.jobs.get("select_tokens", 0)

    def cpt(self, s: Stage) -> None:
        """One job per CPT run (variant x seed); the SLM runs also rank each global batch in a
        forward-only pass where a rank runs several micro-batches per step (the runs' mean per job)."""
        jobs = s.jobs["train_cpt"]
        training = self.config["cpt"]["training"]
        tokens = trained_tokens(training, self.seq)
        rows = load_variants(self.config)
        slm = [v for v, row in rows.items() if row.tokens == "slm"]
        ranking = bool(slm) and slm_ranking_pass(training, self.processes("train_cpt"))
        slm_share = len(slm) / len(rows) if ranking else 0.0  # of the runs, each variant once per seed
        s.flops = (self.train_fpt + slm_share * self.fwd_fpt) * tokens * jobs
        n_seeds = len(cpt_seeds(self.config))
        s.note = f"{human_count(tokens)} tokens per variant" + (f", {n_seeds} seeds each" if n_seeds > 1 else "")
        if ranking:
            s.note += f"; {', '.join(slm)} also rank each global batch in a forward-only pass"
        s.gpu_hours = self.train_hours(s.flops, "cpt", "train_cpt")
        s.disk_bytes = (self.model_bytes + self.ckpt_bytes) * jobs

    def export(self, s: Stage) -> None:
        """HF weights of each evaluated model (the held-out loss reads mcore checkpoints)."""
        s.disk_bytes = self.model_bytes * s.jobs["export_hf"]

    def heldout(self, s: Stage) -> None:
        """Per model: a forward pass over every held-out token."""
        held = self.tokens["heldout_web"] + self.tokens["heldout_hq"]
        s.flops = self.fwd_fpt * held * s.jobs["score_heldout"]
        s.gpu_hours = self.hours(s.flops, self.p["mfu_forward"])
        s.note = f"{human_count(held)} held-out tokens per model"

    def evaluate(self, s: Stage) -> None:
        """Per model: one job running every benchmark's items (prompt and generated tokens)."""
        benchmarks = list(self.config["evaluation"]["benchmarks"])
        items = sum(eval_items(self.config, b) for b in benchmarks)
        per_item = (self.p["eval_prompt_tokens"] + self.p["eval_generated_tokens"]) * self.fwd_fpt
        s.flops = s.jobs.get("evaluate", 0) * items * per_item
        s.gpu_hours = self.hours(s.flops, self.p["mfu_eval"])
        s.note = f"{items} items per model, its {len(benchmarks)} benchmarks in one job"


# The stage table: every rule of the workflow's DAG (`all` aside) in the stage whose cost model counts it.
STAGES: tuple[StageSpec, ...] = (
    StageSpec("fetch (local rules)", ("fetch_owm", "fetch_hq_dataset", "fetch_base_model"), cost=CostModel.fetch,
              note="hub.cache_dir"),
    StageSpec("prepare documents", ("prepare_web", "prepare_hq", "prepare_corpus"), cost=CostModel.prepare),
    StageSpec("tokenize", ("import_tokenizer", "train_tokenizer", "tokenize"), cost=CostModel.tokenize),
    StageSpec("base model", ("pretrain_base",), cost=CostModel.base),
    StageSpec("train reference", ("train_reference",), gpu=True, cost=CostModel.reference),
    StageSpec("score (reference / base loss)", ("score_reference", "score_base", "embed_sample"), gpu=True,
              cost=CostModel.score),
    StageSpec("fit projection", ("fit_projection",), cost=CostModel.fit_projection),
    StageSpec("cluster levels", ("cluster_level",), gpu=True, cost=CostModel.cluster_levels),
    StageSpec("assign leaves", ("assign",), gpu=True, cost=CostModel.assign),
    StageSpec("select tokens (static masks)", ("select_tokens",),
              cost=CostModel.select),
    StageSpec("train CPT variants", ("train_cpt",), gpu=True, cost=CostModel.cpt),
    StageSpec("export HF", ("export_hf",), cost=CostModel.export),
    StageSpec("held-out loss", ("score_heldout",), gpu=True, cost=CostModel.heldout),
    StageSpec("evaluate", ("tiny_benchmarks", "fetch_benchmarks", "normalize_benchmark", "evaluate"), gpu=True,
              cost=CostModel.evaluate),
    StageSpec("report", ("tables", "heldout_overlap", "heldout_tables", "significance", "figure_accuracy",
                         "figure_training", "figure_clusters", "inspect_clusters", "update_readme"),
              note="tables, figures and the README block (CPU, minutes)"),
)


def make_plan(config: dict, jobs: dict[str, int], results: Path | None = None,
              gpus_per_job: dict[str, int] | None = None) -> Plan:
    """The plan of a validated config (schema defaults filled in) whose DAG runs ``jobs`` (jobs per rule,
    ``dag_job_counts``); ``results`` is ``results/<run>``, where shards are measured once they exist;
    ``gpus_per_job`` (GPUs of one job per rule) defaults to the config's job sizes (``config_gpus``)."""
    tokens, sources = token_counts(config, results)
    model = CostModel(config, jobs, tokens, gpus_per_job)
    stages = []
    for spec, stage_jobs in group_jobs(jobs, STAGES):
        stage = Stage(spec.name, stage_jobs, gpu=spec.gpu, note=spec.note)
        if spec.cost is not None:
            spec.cost(model, stage)
        stages.append(stage)
    for s in stages:
        if s.gpu and not any(model.gpus.get(rule) for rule in s.jobs):
            s.gpu = False
            cpu = "CPU (no resources.<rule>.gpus): hours are GPU-equivalent"
            s.note = f"{s.note}; {cpu}" if s.note else cpu
        g = max(model.gpus.get(rule, 0) for rule in s.jobs)
        main_rule = max(s.jobs, key=lambda r: (model.gpus.get(r, 0) > 0, s.jobs[r]))  # the GPU rule
        if g and s.gpu_hours:
            s.wall_hours = s.gpu_hours / s.jobs[main_rule] / g
    p = config["plan"]
    keys = ("gpu", "peak_tflops", "mfu_train", "mfu_forward", "mfu_eval", "search_tflops", "flops")
    assumptions = {k: p[k] for k in keys}
    assumptions.update(train_flops_per_token=model.train_fpt, forward_flops_per_token=model.fwd_fpt)
    return Plan(config["run"], model.n, tokens, sources, assumptions, stages)
