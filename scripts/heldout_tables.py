"""Held-out loss per model and label (mean token loss and type-balanced mean loss), with intervals over
documents and seeds, and paired differences over the variant table's one-factor pairs."""

import json
from pathlib import Path

from rhocluster.corpus.tokenizer import load_tokenizer
from rhocluster.reporting.heldout_tables import write_heldout_tables
from rhocluster.workflow.variants import Pair
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    skipped = [Pair(**p) for p in sm.params.skipped_pairs]
    for p in skipped:
        log.info("pair %s skipped: %s is not among the run's variants", p.label, p.counterpart)
    overlap = dict(sm.input.items()).get("overlap")  # optional: tables/heldout_overlap.json
    write_heldout_tables(
        shards={k: list(v) for k, v in sm.params.shards.items()},
        losses={m: {k: list(v) for k, v in splits.items()} for m, splits in sm.params.losses.items()},
        replicates={k: list(v) for k, v in sm.params.replicates.items()},
        pairs=[Pair(**p) for p in sm.params.pairs],
        eos_id=load_tokenizer(sm.input.tokenizer).eos_token_id,
        n_resamples=sm.params.resamples,
        seed=sm.params.seed,
        run=sm.params.run,
        out=dict(sm.output.items()),
        note=sm.params.note,
        skipped=skipped,
        overlap=json.loads(Path(overlap).read_text()) if overlap else None,
    )
