"""Generate one shard of a synthetic corpus (web, hq, pretrain or a held-out split)."""

from rhocluster.corpus.jsonl import write_jsonl
from rhocluster.corpus.synthetic import generate_hq_math, generate_math_web, generate_pretrain
from rhocluster.workflow import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    split, shard = sm.wildcards.split, int(sm.wildcards.shard)
    syn = sm.params.synthetic
    offset = {"web": 0, "hq": 1, "pretrain": 2, "heldout_web": 3, "heldout_hq": 4}[split]
    seed = sm.params.seed * 1000 + offset * 100 + shard  # held-out splits: seeds no training split uses
    if split == "web":
        docs = generate_math_web(syn.get("web_docs_per_shard", 300), seed)
    elif split == "heldout_web":
        docs = generate_math_web(syn["heldout_web_docs"], seed)
    elif split == "hq":
        docs = generate_hq_math(syn.get("hq_docs", 600), seed)
    elif split == "heldout_hq":
        docs = generate_hq_math(syn["heldout_hq_docs"], seed)
    else:
        docs = generate_pretrain(syn.get("pretrain_docs_per_shard", 600), seed)
    write_jsonl(docs, sm.output[0])
    log.info("%s shard %d: %d documents", split, shard, len(docs))
