"""Held-out loss per model and label, with intervals over documents and seeds, and paired differences."""

import json
from pathlib import Path

from rhocluster.corpus.tokenizer import load_tokenizer
from rhocluster.reporting.heldout import write_heldout_tables
from rhocluster.workflow import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    overlap = dict(sm.input.items()).get("overlap")  # optional: tables/heldout_overlap.json
    write_heldout_tables(
        shards={k: list(v) for k, v in sm.params.shards.items()},
        losses={m: {k: list(v) for k, v in splits.items()} for m, splits in sm.params.losses.items()},
        replicates={k: list(v) for k, v in sm.params.replicates.items()},
        baselines=list(sm.params.baselines),
        eos_id=load_tokenizer(sm.input.tokenizer).eos_token_id,
        n_resamples=sm.params.resamples,
        seed=sm.params.seed,
        run=sm.params.run,
        out=dict(sm.output.items()),
        overlap=json.loads(Path(overlap).read_text()) if overlap else None,
    )
