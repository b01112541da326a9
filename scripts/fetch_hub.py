"""Fetch one hub source (dataset: a manifest with row counts; model: a directory of its files)."""

from rhocluster.corpus.hf import add_row_counts
from rhocluster.hub import HubSource, fetch, materialize
from rhocluster.workflow import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    source = HubSource.from_config(dict(sm.params.spec), sm.params.repo_type, sm.params.key)
    manifest = fetch(source, sm.params.cache_dir, allow_unpinned=sm.params.allow_unpinned, log=log, workers=sm.threads)
    log.info("%s at commit %s: %d files", source.repo, manifest.commit, len(manifest.files))
    if source.repo_type == "model":
        materialize(manifest, sm.output[0])
    else:
        add_row_counts(manifest).save(sm.output[0])
