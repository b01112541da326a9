"""What the Snakefile, the rules and every stage share (no stage of their own):

- :mod:`.variants` + ``variants.yaml``: the variant table (rows as data), read by rules, planner, trainer
  settings and reports;
- :mod:`.preflight`: the checks ``onstart`` runs before any job (SLURM, GPUs, model-parallel sizes);
- :mod:`.sizes`: the job sizes (threads, memory, GPUs, nodes) of each rule from the config's ``resources``;
- :mod:`.provenance`: the fingerprint of the code that wrote a run;
- :mod:`.scripts`: what every thin ``scripts/`` entry point uses (the rule's log, threads, start-up line).

Light on purpose: rules/common.smk imports it while it builds the DAG.
"""
