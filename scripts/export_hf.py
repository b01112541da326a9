"""Export a trained model (mcore format) to a Hugging Face directory with the tokenizer."""

from pathlib import Path

from rhocluster.model.convert import export_hf
from rhocluster.model.mcore_format import load_mcore
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    state, shape = load_mcore(Path(sm.input.model))
    export_hf(state, shape, Path(sm.output[0]), tokenizer_dir=Path(sm.input.tokenizer))
