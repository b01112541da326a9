"""Tables and the README results table, regenerated from the workflow's files only."""
