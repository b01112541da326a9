"""The reference model's mixture: every hub dataset rendered through its template, shuffled, sharded."""

from rhocluster.corpus.hf import build_hq_mixture
from rhocluster.hub.download import load_manifest
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    manifests = [load_manifest(path) for path in sm.input]
    counts = build_hq_mixture(
        [dict(d) for d in sm.params.datasets],
        manifests,
        list(sm.output.train),
        sm.params.seed,
        sm.params.cache_dir,
        heldout_path=sm.output.heldout[0] if sm.output.heldout else None,
        heldout_docs=sm.params.heldout_docs,
    )
    log.info("documents per dataset: %s", counts)
