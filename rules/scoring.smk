# Reference-model passes over the web shards: per-token losses (reference and base) and the token
# embedding sample that the cluster tree is fitted on.
#
# scoring.fused_pass decides where the reference model runs over the whole corpus:
#   false (default): score_reference (loss + sample) and assign (leaf ids) are two full passes. A
#     clustering change reruns assign only; the reference loss depends on no clustering parameter.
#   true: assign also writes the reference loss from its own pass, read by the cluster variants only,
#     and the sample comes from embed_sample, which runs just the windows holding sampled tokens (set
#     scoring.sample_windows_per_shard to make that a small fraction). score_reference then runs only
#     when rho1 is a variant: a run without rho1 saves one full reference pass.
FUSED = config["scoring"].get("fused_pass", False)
SAMPLE_DIR = f"{R}/embeddings/{'sampled' if FUSED else 'shards'}"
ASSIGN_REF_LOSS = (
    {"ref_loss": f"{R}/clusters/assign/{{shard}}.refloss.npy"} if FUSED else {}
)


rule score_reference:
    input:
        model=f"{R}/models/reference/hf",
        shard=shard_files("web", "{shard}"),
    output:
        loss=f"{R}/scores/reference/{{shard}}.loss.npy",
        sample=f"{R}/embeddings/shards/{{shard}}.npz",
    log:
        f"{LOGS}/score_reference/{{shard}}.log",
    benchmark:
        f"{BENCH}/score_reference/{{shard}}.tsv"
    # the clustering variants' critical path runs before the many independent evaluations
    priority: 10
    conda:
        "../envs/training.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpus=gpu(1),
    params:
        prefix=lambda wc: f"{R}/shards/web/{wc.shard}",
        batch_size=config["scoring"].get("batch_size", 32),
        layer=config["scoring"].get("layer", -1),
        sample_tokens=config["scoring"].get("sample_tokens_per_shard", 3000),
        sample_windows=config["scoring"].get("sample_windows_per_shard"),
        seed=lambda wc: config["seed"] * 100003 + int(wc.shard),
    script:
        "../scripts/score.py"


rule embed_sample:
    input:
        model=f"{R}/models/reference/hf",
        shard=shard_files("web", "{shard}"),
    output:
        sample=f"{R}/embeddings/sampled/{{shard}}.npz",
    log:
        f"{LOGS}/embed_sample/{{shard}}.log",
    benchmark:
        f"{BENCH}/embed_sample/{{shard}}.tsv"
    # the clustering variants' critical path runs before the many independent evaluations
    priority: 10
    conda:
        "../envs/training.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpus=gpu(1),
    params:
        prefix=lambda wc: f"{R}/shards/web/{wc.shard}",
        batch_size=config["scoring"].get("batch_size", 32),
        layer=config["scoring"].get("layer", -1),
        sample_tokens=config["scoring"].get("sample_tokens_per_shard", 3000),
        sample_windows=config["scoring"].get("sample_windows_per_shard"),
        seed=lambda wc: config["seed"] * 100003 + int(wc.shard),
    script:
        "../scripts/score.py"


rule score_base:
    input:
        model=f"{R}/models/base/hf",
        shard=shard_files("web", "{shard}"),
    output:
        loss=f"{R}/scores/base/{{shard}}.loss.npy",
    log:
        f"{LOGS}/score_base/{{shard}}.log",
    benchmark:
        f"{BENCH}/score_base/{{shard}}.tsv"
    # the clustering variants' critical path runs before the many independent evaluations
    priority: 10
    conda:
        "../envs/training.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpus=gpu(1),
    params:
        prefix=lambda wc: f"{R}/shards/web/{wc.shard}",
        batch_size=config["scoring"].get("batch_size", 32),
    script:
        "../scripts/score.py"


rule fit_projection:
    input:
        expand(f"{SAMPLE_DIR}/{{shard}}.npz", shard=WEB_SHARDS),
    output:
        sample=f"{R}/embeddings/sample.npy",
        index=f"{R}/embeddings/sample_index.npz",
        projection=f"{R}/embeddings/projection.npz",
    log:
        f"{LOGS}/fit_projection.log",
    benchmark:
        f"{BENCH}/fit_projection.tsv"
    # the clustering variants' critical path runs before the many independent evaluations
    priority: 10
    conda:
        "../envs/clustering.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=120,
    params:
        projection=config["scoring"].get("projection", {}),
        normalize=config["scoring"].get("normalize", "l2"),
        seed=config["seed"],
    script:
        "../scripts/fit_projection.py"
