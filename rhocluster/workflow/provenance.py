"""Which code produced a run: a fingerprint of every file that decides its results.

README's results block records the fingerprint of the code that wrote it (rule update_readme), as
information: the suite checks the committed tables by reproducing them (rhocluster.reporting.reproduce),
not by comparing this fingerprint with the checkout's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# What decides the tiny default's results: the package, the rules and their scripts, the default
# config and its schema (defaults). Tests, docs, benchmarks and other configs do not.
CODE_PATHS = ("rhocluster", "rules", "scripts", "Snakefile", "config/config.yaml", "config/schema.yaml")
SUFFIXES = (".py", ".smk", ".yaml", ".json")


def code_files(root: Path | str) -> list[Path]:
    """The files of ``CODE_PATHS`` under ``root``, sorted by relative path."""
    root = Path(root)
    files: list[Path] = []
    for rel in CODE_PATHS:
        path = root / rel
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def code_fingerprint(root: Path | str) -> str:
    """sha256 (first 16 hex digits) over the relative paths and bytes of :func:`code_files`."""
    root = Path(root)
    h = hashlib.sha256()
    for path in code_files(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
