# Held-out loss: every model (base, reference, every CPT model of every seed) scored on text it never
# trained on: the held-out web split (per ground-truth label in the generated corpus) and held-out
# problem/solution documents like the reference mixture. One job per model scores every held-out shard,
# from its mcore checkpoint with the trainer's forward (no HF export needed).


rule score_heldout:
    input:
        model=f"{R}/models/{{model}}/mcore",
        shards=[f"{R}/shards/{key}.bin" for key in HELDOUT],
    output:
        [f"{R}/heldout/{{model}}/{key}.loss.npy" for key in HELDOUT],
    log:
        f"{LOGS}/score_heldout/{{model}}.log",
    benchmark:
        f"{TIMINGS}/score_heldout/{{model}}.tsv"
    conda:
        "../envs/training.yaml"
    threads: job_threads("score_heldout", 1)
    resources:
        **job_resources("score_heldout", mem_mb=8000, runtime=60, gpus=0),
    params:
        prefixes=[f"{R}/shards/{key}" for key in HELDOUT],
        batch_size=config["scoring"]["batch_size"],
    script:
        "../scripts/score_heldout.py"


# Held-out text that also occurs verbatim in the training text: the share of held-out characters inside a
# 50-character run that a training document holds, per ground-truth label where the documents carry labels,
# from the documents themselves (the jsonl that tokenize reads). Splits above report.heldout_overlap's
# budgets are read as seeded samples of their documents.


rule heldout_overlap:
    input:
        heldout=[f"{R}/corpus/{key}.jsonl" for key in HELDOUT],
        training=[
            f"{R}/corpus/{split}/{shard}.jsonl"
            for split in ("web", "hq", "pretrain")
            for shard in SHARDS[split]
        ],
    output:
        md=f"{R}/tables/heldout_overlap.md",
        json=f"{R}/tables/heldout_overlap.json",
    log:
        f"{LOGS}/heldout_overlap.log",
    benchmark:
        f"{TIMINGS}/heldout_overlap.tsv"
    conda:
        "../envs/report.yaml"
    threads: job_threads("heldout_overlap", 1)
    resources:
        **job_resources("heldout_overlap", mem_mb=8000, runtime=2 * 60),
    params:
        heldout={
            split: [f"{R}/corpus/{split}/{shard}.jsonl" for shard in SHARDS[split]]
            for split in ("heldout_web", "heldout_hq")
            if SHARDS[split]
        },
        training={
            split: [f"{R}/corpus/{split}/{shard}.jsonl" for shard in SHARDS[split]]
            for split in ("web", "hq", "pretrain")
            if SHARDS[split]
        },
        heldout_chars=config["report"]["heldout_overlap"]["heldout_chars"],
        training_chars=config["report"]["heldout_overlap"]["training_chars"],
        seed=config["seed"],
        run=RUN,
    script:
        "../scripts/heldout_overlap.py"
