"""Entry points of the hub fetch rules (rules/fetch.smk): a config source in, a verified manifest out.

fetch_owm and fetch_hq_dataset fetch a dataset (:func:`fetch_dataset`), fetch_base_model a model
(:func:`fetch_model`). Each rule's ``params`` name the source: ``spec`` (the config mapping with
``repo``, ``revision``, ``files``, ``sha256``), ``repo_type``, ``key`` (the config key, for messages),
``cache_dir`` and ``allow_unpinned``. See :mod:`rhocluster.hub.download`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rhocluster.corpus.hf import add_row_counts
from rhocluster.hub.download import HubError, HubSource, Manifest, fetch, materialize
from rhocluster.workflow.scripts import logged


def _fetched(params: Any, log: logging.Logger, workers: int) -> Manifest:
    """Fetch (or reuse from the cache) the source that a fetch rule's ``params`` name."""
    source = HubSource.from_config(dict(params.spec), params.repo_type, params.key)
    manifest = fetch(source, params.cache_dir, allow_unpinned=params.allow_unpinned, log=log, workers=workers)
    log.info("%s at commit %s: %d files", source.repo, manifest.commit, len(manifest.files))
    return manifest


def fetch_dataset(params: Any, out_manifest: Path | str, log_path: Path | str, *, workers: int) -> None:
    """Fetch the dataset that ``params`` name, ``workers`` files at a time; write its manifest, with the
    row count of every parquet file, to ``out_manifest``, logging to ``log_path``."""
    with logged(log_path) as log:
        add_row_counts(_fetched(params, log, workers)).save(out_manifest)


def check_model_files(manifest: Manifest, key: str = "base.hub") -> None:
    """A model repository must give a ``config.json``, weights (``*.safetensors`` or ``*.bin``) and a
    tokenizer (``tokenizer.json`` or ``tokenizer.model``); HubError naming the repository and what is missing."""
    names = {Path(f.path).name for f in manifest.files}
    missing = []
    if "config.json" not in names:
        missing.append("config.json")
    if not any(n.endswith((".safetensors", ".bin")) for n in names):
        missing.append("weights (*.safetensors)")
    if not names & {"tokenizer.json", "tokenizer.model"}:
        missing.append("a tokenizer (tokenizer.json or tokenizer.model)")
    if missing:
        raise HubError(
            f"{key}: model {manifest.repo} lacks {'; '.join(missing)} among the fetched files "
            f"({', '.join(sorted(names))}); fix {key}.files or {key}.repo"
        )


def fetch_model(params: Any, out_dir: Path | str, log_path: Path | str, *, workers: int) -> None:
    """Fetch the model that ``params`` name, ``workers`` files at a time, into the directory ``out_dir``
    (its files and manifest; nothing when a file it needs is missing), logging to ``log_path``."""
    with logged(log_path) as log:
        manifest = _fetched(params, log, workers)
        check_model_files(manifest, params.key)
        materialize(manifest, out_dir)
