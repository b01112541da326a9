"""Rewrite the README's results block between its markers, the details page (held-out loss per seed,
accuracy intervals and tests), and copy the main figure."""

from pathlib import Path

from rhocluster.workflow.provenance import code_fingerprint
from rhocluster.reporting.readme import write_readme
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    readme_changed, figure_changed = write_readme(
        sm.params.readme,
        sm.params.run,
        results_md=sm.input.results,
        labels_md=sm.input.labels,
        significance_md=sm.input.significance,
        figure=sm.input.figure,
        figure_dest=sm.params.figure,
        heldout_md=sm.input.get("heldout"),
        heldout_seeds_md=sm.input.get("heldout_seeds"),
        ci_md=sm.input.ci,
        page=sm.params.page,
        # the code as it is now, when the run's last job writes the README (the workflow directory is
        # the scripts' parent; not a param, which would rerun this job wherever the checkout moves)
        fingerprint=code_fingerprint(Path(sm.scriptdir).parent),
    )
    log.info("README/page %s, figure %s", *("updated" if c else "unchanged" for c in (readme_changed, figure_changed)))
