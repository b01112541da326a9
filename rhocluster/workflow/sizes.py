"""Job sizes: a rule's threads and resources from the config's ``resources`` section.

Sizes scale with model and data, so they belong to the config; profiles/slurm holds the site's settings
only (a profile's set-resources and set-threads would override a rule's). Read by rules/common.smk
(``job_threads``, ``job_resources``) while it builds the DAG.
"""

from __future__ import annotations

from typing import Any, Mapping


def job_size(sizes: Mapping[str, Mapping[str, Any]], rule: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Threads and resources of ``rule``'s jobs: the rule's own small CPU sizes (``defaults``), each key
    overridden by the config's job sizes (``sizes``: its ``resources`` section, ``resources.<rule>``);
    a null there drops the key (no ``mpi``, say). ``gpus`` (per node) is also asked of SLURM, as gres
    ``gpu:<gpus>`` unless the config sets ``gres``."""
    size = {**defaults, **(sizes.get(rule) or {})}
    size = {key: value for key, value in size.items() if value is not None}
    if size.get("gpus"):
        size.setdefault("gres", f"gpu:{size['gpus']}")
    return size
