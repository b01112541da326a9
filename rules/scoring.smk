# Reference-model passes over the web shards: per-token losses (reference and base) and the token
# representation sample that the cluster tree is fitted on.
#
# The loss and the sample are separate jobs: the sample (embed_sample) depends on scoring.layer and
# scoring.position, the reference loss (score_reference) on neither, so changing the representation
# reruns the sample, the projection, the tree, assign and the cluster variants' selections, never the
# reference loss nor what reads it (rho1, excess_static, ...). embed_sample runs only the windows
# holding sampled tokens (scoring.sample_windows_per_shard bounds them); see docs/representation.md.
#
# scoring.fused_pass decides where the reference loss of the cluster variants comes from:
#   false (default): score_reference's. assign makes its own pass (leaf ids, no LM head); a clustering
#     change reruns assign only.
#   true: assign also writes the reference loss (the same pass for position predict, a second pass for
#     read), read by the cluster variants only; score_reference then runs only when a row needs it
#     (rho1, cluster_slm, excess_static): a run without them saves one full reference pass.
# (ASSIGN_REF_LOSS, assign's optional output, lives in the paths registry, rules/common.smk.)


rule score_reference:
    input:
        model=f"{R}/models/reference/hf",
        shard=shard_files("web", "{shard}"),
    output:
        loss=f"{R}/scores/reference/{{shard}}.loss.npy",
    log:
        f"{LOGS}/score_reference/{{shard}}.log",
    benchmark:
        f"{TIMINGS}/score_reference/{{shard}}.tsv"
    priority: 10
    conda:
        "../envs/training.yaml"
    threads: job_threads("score_reference", 1)
    resources:
        **job_resources("score_reference", mem_mb=8000, runtime=240, gpus=0),
    params:
        prefix=shard_prefix,
        batch_size=config["scoring"]["batch_size"],
    script:
        "../scripts/score_reference.py"


rule embed_sample:
    input:
        model=f"{R}/models/reference/hf",
        shard=shard_files("web", "{shard}"),
    output:
        samples=[f"{R}/embeddings/{tree}/sampled/{{shard}}.npz" for tree in TREES],
    log:
        f"{LOGS}/embed_sample/{{shard}}.log",
    benchmark:
        f"{TIMINGS}/embed_sample/{{shard}}.tsv"
    priority: 10
    conda:
        "../envs/training.yaml"
    threads: job_threads("embed_sample", 1)
    resources:
        **job_resources("embed_sample", mem_mb=8000, runtime=60, gpus=0),
    params:
        prefix=shard_prefix,
        batch_size=config["scoring"]["batch_size"],
        layer=config["scoring"]["layer"],
        position=config["scoring"]["position"],
        sample_tokens=config["scoring"]["sample_tokens_per_shard"],
        sample_windows=config["scoring"]["sample_windows_per_shard"],
        # one seeded draw per cluster tree, all from one pass over the union of their windows
        seeds=lambda wc: [seed * 100003 + int(wc.shard) for seed in TREES.values()],
    script:
        "../scripts/embed_sample.py"


rule score_base:
    input:
        model=f"{R}/models/base/hf",
        shard=shard_files("web", "{shard}"),
    output:
        loss=f"{R}/scores/base/{{shard}}.loss.npy",
    log:
        f"{LOGS}/score_base/{{shard}}.log",
    benchmark:
        f"{TIMINGS}/score_base/{{shard}}.tsv"
    priority: 10
    conda:
        "../envs/training.yaml"
    threads: job_threads("score_base", 1)
    resources:
        **job_resources("score_base", mem_mb=8000, runtime=240, gpus=0),
    params:
        prefix=shard_prefix,
        batch_size=config["scoring"]["batch_size"],
    script:
        "../scripts/score_base.py"


rule fit_projection:
    input:
        lambda wc: expand(
            f"{R}/embeddings/{wc.tree}/sampled/{{shard}}.npz", shard=WEB_SHARDS
        ),
    output:
        sample=f"{R}/embeddings/{{tree}}/sample.npy",
        index=f"{R}/embeddings/{{tree}}/sample_index.npz",
        projection=f"{R}/embeddings/{{tree}}/projection.npz",
    log:
        f"{LOGS}/fit_projection/{{tree}}.log",
    benchmark:
        f"{TIMINGS}/fit_projection/{{tree}}.tsv"
    priority: 10
    conda:
        "../envs/clustering.yaml"
    threads: job_threads("fit_projection", 1)
    resources:
        **job_resources("fit_projection", mem_mb=16000, runtime=120),
    params:
        projection=config["scoring"]["projection"],
        normalize=config["scoring"]["normalize"],
        seed=lambda wc: TREES[wc.tree],
    script:
        "../scripts/fit_projection.py"
