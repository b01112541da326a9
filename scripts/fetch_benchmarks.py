"""Download the harness' test and prompt files listed in the manifest, verified by sha256 (from the
mirrors in RHO_BENCHMARK_MIRROR first, if any)."""

import sys
from pathlib import Path

from rhocluster.evaluation.fetch import fetch_files, load_manifest, mirrors_from_env, unpinned_notice
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    manifest = load_manifest(Path(sm.input.manifest))
    fetched = fetch_files(
        manifest,
        Path(sm.output[0]),
        benchmarks=sm.params.benchmarks,
        cache_dir=Path(sm.params.cache_dir),
        mirrors=mirrors_from_env(),
        retries=sm.params.retries,
        timeout_s=sm.params.timeout_s,
    )
    log.info("%d files (%d downloaded)", len(fetched), sum(f.downloaded for f in fetched))
    notice = unpinned_notice(fetched, manifest)
    if notice:
        log.warning("%s", notice)
        sys.__stderr__.write(notice + "\n")  # on the console too, not only in the log
