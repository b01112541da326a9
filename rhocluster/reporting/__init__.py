"""Results from the workflow's files only: tables beside the published rows, bootstrap intervals and
paired tests (``stats``), figures, and the README block between its markers."""
