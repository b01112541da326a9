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
        f"{BENCH}/score_heldout/{{model}}.tsv"
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
        gpus=gpu(1),
    params:
        prefixes=[f"{R}/shards/{key}" for key in HELDOUT],
        batch_size=config["scoring"]["batch_size"],
    script:
        "../scripts/score_heldout.py"
